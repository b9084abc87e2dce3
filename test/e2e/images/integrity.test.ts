// Digest verification against a tampering proxy and on disk, one download for concurrent pulls,
// size limits, and garbage collection.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalRegistry } from "../../../src/devcluster/registry.ts";
import { isWasmletError } from "../../../src/errors.ts";
import { ImageService, RegistryClient } from "../../../src/images/index.ts";
import { buildGuest } from "../../support/guests.ts";
import { buildModule } from "../../unit/images/support/wasm.ts";
import { CountingProxy } from "./support/proxy.ts";
import { pushCncfArtifact, type Target } from "./support/publish.ts";

let registry: LocalRegistry;
let dir: string;
let hello: Buffer;
const client = new RegistryClient();
const target = (repository: string): Target => ({ client, registry: registry.address, repository });

before(async () => {
  registry = await LocalRegistry.start();
  dir = await mkdtemp(join(tmpdir(), "wasmlet-integrity-e2e-"));
  hello = await readFile(await buildGuest("hello"));
});
after(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("integrity", () => {
  it("detects a blob altered in transit and keeps nothing of it", async () => {
    const pushed = await pushCncfArtifact(target("tamper/app"), "1", hello);
    const proxy = await CountingProxy.start({
      target: registry.address,
      tamper: (_path, body) => {
        if (body.length < 1000) return body; // the config passes, the module is altered
        const copy = Buffer.from(body);
        copy[copy.length - 1] = copy[copy.length - 1]! ^ 0xff;
        return copy;
      },
    });
    try {
      const s = new ImageService({ dataDir: join(dir, "tamper") });
      await assert.rejects(
        s.ensure(`${proxy.address}/tamper/app:1`),
        (e) =>
          isWasmletError(e, "WASMLET_ERR_IMAGE_DIGEST_MISMATCH") &&
          e.message.includes(`registry ${proxy.address}`),
      );
      const blobs = await readdir(join(dir, "tamper", "images", "blobs", "sha256"));
      const moduleDigest = createHash("sha256").update(hello).digest("hex");
      assert.ok(!blobs.includes(moduleDigest), "the altered module is not kept");
      assert.ok(blobs.includes(pushed.digest.slice(7)), "the (intact) manifest is");
      assert.deepEqual(await readdir(join(dir, "tamper", "images", "ingest")), []);
    } finally {
      await proxy.stop();
    }
  });

  it("detects a module corrupted on disk before compiling it, and pulls it again", async () => {
    await pushCncfArtifact(target("disk/app"), "1", hello);
    const s = new ImageService({ dataDir: join(dir, "disk") });
    const image = await s.ensure(`${registry.address}/disk/app:1`);
    const bytes = await readFile(image.wasmPath);
    bytes[100] = bytes[100]! ^ 1;
    await writeFile(image.wasmPath, bytes);
    await assert.rejects(
      s.compile(image),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_DIGEST_MISMATCH") && e.message.includes("corrupt"),
    );
    const again = await s.ensure(`${registry.address}/disk/app:1`);
    assert.equal(again.pulled, true);
    assert.ok(await s.compile(again));
  });

  it("downloads each blob once for concurrent pulls of one image (and of two tags of it)", async () => {
    await pushCncfArtifact(target("concurrent/app"), "1", hello);
    await pushCncfArtifact(target("concurrent/app"), "alias", hello);
    const proxy = await CountingProxy.start({ target: registry.address });
    try {
      const s = new ImageService({ dataDir: join(dir, "concurrent") });
      await s.start();
      const images = await Promise.all([
        ...Array.from({ length: 6 }, () => s.ensure(`${proxy.address}/concurrent/app:1`)),
        s.ensure(`${proxy.address}/concurrent/app:alias`),
      ]);
      assert.equal(new Set(images.map((i) => i.wasmPath)).size, 1);
      assert.equal(proxy.count("GET", /\/blobs\/sha256:/), 2, "config and module, once each");
      assert.equal(proxy.count("GET", /\/manifests\/1$/), 1);
    } finally {
      await proxy.stop();
    }
  });

  it("refuses modules over the size limit before downloading them", async () => {
    await pushCncfArtifact(target("huge/app"), "1", hello);
    const s = new ImageService({ dataDir: join(dir, "huge"), limits: { wasmBytes: 1000 } });
    await assert.rejects(s.ensure(`${registry.address}/huge/app:1`), (e) =>
      isWasmletError(e, "WASMLET_ERR_IMAGE_TOO_LARGE"),
    );
  });
});

describe("garbage collection", () => {
  it("removes least recently used images no pod uses once the store passes its threshold", async () => {
    const modules = [1, 2, 3].map((salt) => buildModule({ salt, targetBytes: 40_000 }));
    for (const [i, m] of modules.entries()) await pushCncfArtifact(target(`gc/app${i}`), "1", m);
    const inUse = new Set<string>();
    const s = new ImageService({
      dataDir: join(dir, "gc"),
      gc: { highBytes: 100_000, lowBytes: 50_000, minAgeMs: 0 },
      inUse: () => inUse,
    });
    const a0 = await s.ensure(`${registry.address}/gc/app0:1`);
    inUse.add(`${registry.address}/gc/app0:1`);
    await s.ensure(`${registry.address}/gc/app1:1`);
    assert.equal((await s.list()).length, 2, "under the threshold: nothing collected");
    await s.ensure(`${registry.address}/gc/app2:1`);
    const left = (await s.list()).map((i) => i.reference).sort();
    assert.deepEqual(left, [`${registry.address}/gc/app0:1`, `${registry.address}/gc/app2:1`]);
    assert.ok(s.store.size <= 100_000);
    assert.deepEqual(await readFile(a0.wasmPath), Buffer.from(modules[0]!));
    // Forced collection with nothing in use empties the store.
    inUse.clear();
    const result = await s.gc({ force: true });
    assert.equal(result.storeBytes, 0);
    assert.equal((await s.list()).length, 0);
  });
});
