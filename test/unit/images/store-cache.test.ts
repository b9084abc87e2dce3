import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { isWasmletError } from "../../../src/errors.ts";
import { ContentStore, type ImageRecord } from "../../../src/images/content-store.ts";
import { ImportChecker, ModuleCache } from "../../../src/images/module-cache.ts";
import { memoryLimits } from "../../../src/wasm/binary.ts";
import { buildModule } from "./support/wasm.ts";

const digestOf = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
async function* chunks(bytes: Uint8Array, size = 7) {
  for (let i = 0; i < bytes.length; i += size) {
    await sleep(0);
    yield bytes.subarray(i, i + size);
  }
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wasmlet-store-"));
});
after(() => rm(dir, { recursive: true, force: true }));

function record(reference: string, blobs: string[], lastUsedAt: string): ImageRecord {
  return {
    reference,
    repository: reference.split(":")[0]!,
    digest: blobs[0]!,
    manifestDigest: blobs[0]!,
    blobs,
    pulledAt: lastUsedAt,
    lastUsedAt,
    details: {},
  };
}

describe("content store", () => {
  it("streams, verifies and shares one download between concurrent ingests", async () => {
    const store = new ContentStore(join(dir, "a"));
    await store.open();
    const bytes = Buffer.from("hello blob ".repeat(100));
    const digest = digestOf(bytes);
    let sources = 0;
    const source = async () => {
      sources++;
      return { body: chunks(bytes), origin: "test" };
    };
    const results = await Promise.all(
      [1, 2, 3, 4].map(() => store.ingest(digest, bytes.length, 1 << 20, source)),
    );
    assert.equal(sources, 1);
    assert.deepEqual(results, [true, true, true, true]);
    assert.equal(await store.ingest(digest, bytes.length, 1 << 20, source), false);
    assert.equal(sources, 1);
    assert.deepEqual(await store.read(digest), bytes);
    assert.equal(store.size, bytes.length);
  });

  it("detects a digest mismatch, a short body and an overlong body, and keeps nothing", async () => {
    const store = new ContentStore(join(dir, "b"));
    await store.open();
    const bytes = Buffer.from("the real content");
    const digest = digestOf(bytes);
    const tampered = Buffer.from(bytes);
    tampered[3] = tampered[3]! ^ 1;
    const cases: [Uint8Array, RegExp][] = [
      [tampered, /has digest sha256:[0-9a-f]{64}, expected/],
      [bytes.subarray(0, 5), /has 5 bytes, its descriptor declares 16/],
      [Buffer.concat([bytes, Buffer.from("more")]), /longer than the 16 bytes/],
    ];
    for (const [body, message] of cases) {
      await assert.rejects(
        store.ingest(digest, bytes.length, 1 << 20, async () => ({
          body: chunks(body),
          origin: "registry r",
        })),
        (e) =>
          isWasmletError(e, "WASMLET_ERR_IMAGE_DIGEST_MISMATCH") &&
          message.test(e.message) &&
          e.message.includes("registry r"),
      );
    }
    assert.equal(store.has(digest), false);
    assert.deepEqual(await readdir(join(dir, "b", "ingest")), []);
    assert.deepEqual(await readdir(join(dir, "b", "blobs", "sha256")), []);
  });

  it("downloads again when the body breaks off, and says so when it keeps breaking", async () => {
    const store = new ContentStore(join(dir, "broken"));
    await store.open();
    const bytes = Buffer.from("a blob over a flaky link ".repeat(40));
    const digest = digestOf(bytes);
    async function* breaking() {
      yield bytes.subarray(0, 100);
      await sleep(0);
      throw Object.assign(new TypeError("terminated"), {
        cause: Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" }),
      });
    }
    let sources = 0;
    const flaky = async () => ({
      body: ++sources < 3 ? breaking() : chunks(bytes),
      origin: "registry r",
    });
    assert.equal(await store.ingest(digest, bytes.length, 1 << 20, flaky), true);
    assert.equal(sources, 3);
    assert.deepEqual(await store.read(digest), bytes);

    const other = Buffer.from("never arrives whole ".repeat(25));
    await assert.rejects(
      store.ingest(digestOf(other), other.length, 1 << 20, async () => ({
        body: breaking(),
        origin: "registry r",
      })),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_REGISTRY_UNAVAILABLE") &&
        e.message.includes(
          "from registry r broke off 3 times (last after 100 of 500 bytes: UND_ERR_SOCKET)",
        ),
    );
    assert.deepEqual(await readdir(join(dir, "broken", "ingest")), []);
  });

  it("refuses a blob over the limit before downloading", async () => {
    const store = new ContentStore(join(dir, "c"));
    await store.open();
    let called = false;
    await assert.rejects(
      store.ingest(`sha256:${"1".repeat(64)}`, 2000, 1000, async () => {
        called = true;
        return { body: chunks(Buffer.alloc(0)), origin: "x" };
      }),
      (e) => isWasmletError(e, "WASMLET_ERR_IMAGE_TOO_LARGE"),
    );
    assert.equal(called, false);
  });

  it("detects a blob corrupted on disk, drops it and the records needing it", async () => {
    const root = join(dir, "d");
    const store = new ContentStore(root);
    await store.open();
    const digest = await store.putBytes(Buffer.from("module bytes"));
    await store.putRecord(record("r/a:1", [digest], new Date().toISOString()));
    await writeFile(store.blobPath(digest), "module bytez");
    await assert.rejects(
      store.read(digest),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_DIGEST_MISMATCH") && e.message.includes("corrupt"),
    );
    assert.equal(store.has(digest), false);
    assert.equal(store.record("r/a:1"), undefined);
    // Records survive a restart; a record whose blob is gone is not "present".
    const again = new ContentStore(root);
    await again.open();
    assert.equal(again.records().length, 0);
  });

  it("collects least recently used images that are not in use, then unreferenced blobs", async () => {
    const store = new ContentStore(join(dir, "e"));
    await store.open();
    const shared = await store.putBytes(Buffer.alloc(1000, 1));
    const a = await store.putBytes(Buffer.alloc(1000, 2));
    const b = await store.putBytes(Buffer.alloc(1000, 3));
    const c = await store.putBytes(Buffer.alloc(1000, 4));
    const orphan = await store.putBytes(Buffer.alloc(10, 5));
    await store.putRecord(record("r/a:1", [a, shared], "2020-01-01T00:00:00.000Z"));
    await store.putRecord(record("r/b:1", [b, shared], "2020-01-02T00:00:00.000Z"));
    await store.putRecord(record("r/c:1", [c], "2020-01-03T00:00:00.000Z"));
    assert.equal(await store.bytesOverPolicy({ highBytes: 5000 }), 0);
    const toFree = await store.bytesOverPolicy({ highBytes: 3000, lowBytes: 2500 });
    assert.equal(toFree, 4010 - 2500);
    // a is oldest but in use: b then c go (b alone frees 1000 + the orphan).
    const result = await store.collect((r) => r.reference === "r/a:1", toFree);
    assert.deepEqual(result.removedImages, ["r/b:1", "r/c:1"]);
    assert.equal(result.freedBytes, 2010);
    assert.equal(store.has(shared) && store.has(a), true);
    assert.equal(store.has(b) || store.has(c) || store.has(orphan), false);
    assert.equal(result.storeBytes, 2000);
  });

  it("never collects pinned blobs", async () => {
    const store = new ContentStore(join(dir, "f"));
    await store.open();
    const x = await store.putBytes(Buffer.from("pinned"));
    await store.withPins([x], async () => {
      await store.collect(() => false, Number.POSITIVE_INFINITY);
      assert.equal(store.has(x), true);
    });
    await store.collect(() => false, Number.POSITIVE_INFINITY);
    assert.equal(store.has(x), false);
  });
});

describe("module cache", () => {
  const wasi = ["wasi_snapshot_preview1.*"];

  it("compiles once per digest and memory cap, applying the cap before compiling", async () => {
    const bytes = buildModule({ memory: { min: 1 } });
    let loads = 0;
    const cache = new ModuleCache({ supportedImports: wasi });
    const request = (memoryLimitBytes?: number) => ({
      digest: digestOf(bytes),
      what: "image t",
      ...(memoryLimitBytes === undefined ? {} : { memoryLimitBytes }),
      load: async () => {
        loads++;
        return bytes;
      },
    });
    const [m1, m2] = await Promise.all([cache.get(request()), cache.get(request())]);
    assert.equal(m1, m2);
    assert.equal(cache.compilations, 1);
    const capped = await cache.get(request(4 * 65536));
    assert.notEqual(capped, m1);
    assert.equal(
      await cache.get(request(4 * 65536 + 100)),
      capped,
      "same number of pages, same module",
    );
    assert.equal(cache.compilations, 2);
    assert.equal(loads, 2);
    // The cap is in the compiled module: its memory cannot grow past 4 pages; the uncapped one can.
    // (Compiled modules carry wasmlet's yield point as an import.)
    const imports = { wasmlet: { yield: () => 1000 } };
    const memory = new WebAssembly.Instance(capped, imports).exports.memory as WebAssembly.Memory;
    memory.grow(3);
    assert.throws(() => memory.grow(1), RangeError);
    (new WebAssembly.Instance(m1, imports).exports.memory as WebAssembly.Memory).grow(10);
    assert.equal(memoryLimits(bytes)?.maxPages, undefined, "the stored bytes are not changed");
  });

  it("names every import the runtime does not provide", async () => {
    const bytes = buildModule({
      imports: [
        ["wasi_snapshot_preview1", "fd_write"],
        ["env", "host_log"],
        ["wasi:io/streams", "read"],
      ],
    });
    const cache = new ModuleCache({ supportedImports: [...wasi, "env.other"] });
    await assert.rejects(
      cache.get({ digest: digestOf(bytes), what: "image r/app:1", load: async () => bytes }),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_UNSUPPORTED_IMPORTS") &&
        e.message.includes("image r/app:1 imports 2 functions") &&
        e.message.includes("env.host_log (function)") &&
        e.message.includes("wasi:io/streams.read (function)") &&
        !e.message.includes("fd_write"),
    );
    assert.equal(cache.size, 0, "failures are not cached");
    const checker = new ImportChecker(["env.host_log", "wasi:io/streams.read", ...wasi]);
    assert.deepEqual(checker.missing(await WebAssembly.compile(bytes)), []);
  });

  it("keeps at most maxEntries modules and forgets collected digests", async () => {
    const cache = new ModuleCache({ maxEntries: 2 });
    const modules = [1, 2, 3].map((salt) => buildModule({ targetBytes: 2000, salt }));
    for (const m of modules)
      await cache.get({ digest: digestOf(m), what: "x", load: async () => m });
    assert.equal(cache.size, 2);
    cache.retain((d) => d !== digestOf(modules[2]!));
    assert.equal(cache.size, 1);
  });
});
