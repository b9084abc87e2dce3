// Cancellation from the caller down to the socket: shared work reference-counted by its waiters,
// the registry client's fetch and retry sleeps, the content store's shared downloads, and the
// image service's shared pulls, aborted only when the last caller waiting for them goes.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ContentStore } from "../../../src/images/content-store.ts";
import { ImageService } from "../../../src/images/image-service.ts";
import { buildWasmArtifact } from "../../../src/images/push.ts";
import { RegistryClient, sha256Digest } from "../../../src/images/registry-client.ts";
import { SharedWork } from "../../../src/images/shared-work.ts";
import { until } from "../../support/until.ts";
import { buildModule } from "./support/wasm.ts";

const servers: Server[] = [];
const dirs: string[] = [];
after(async () => {
  for (const server of servers) server.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function serve(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ address: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    handler(req, res);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { address: `127.0.0.1:${(server.address() as { port: number }).port}`, requests };
}

const reasonOf = (controller: AbortController) => controller.signal.reason as unknown;

describe("shared work", { timeout: 10_000 }, () => {
  it("runs once for every waiter and aborts only when the last one leaves", async () => {
    const shared = new SharedWork<string>();
    let starts = 0;
    let workSignal: AbortSignal | undefined;
    const work = (signal: AbortSignal) => {
      starts++;
      workSignal = signal;
      return new Promise<string>((resolve, reject) => {
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        setTimeout(() => resolve("done"), 60_000).unref();
      });
    };
    const first = new AbortController();
    const second = new AbortController();
    const a = shared.run("k", work, first.signal);
    const b = shared.run("k", work, second.signal);
    assert.equal(starts, 1);
    first.abort();
    await assert.rejects(a, (error) => error === reasonOf(first));
    assert.equal(workSignal?.aborted, false, "another waiter is left");
    assert.ok(shared.has("k"));
    second.abort();
    await assert.rejects(b, (error) => error === reasonOf(second));
    assert.equal(workSignal?.aborted, true, "the last waiter left");
    assert.equal(shared.has("k"), false, "a later caller starts afresh");
    const fresh = shared.run("k", async () => "again");
    assert.equal(await fresh, "again");
    assert.equal(starts, 1);
  });

  it("keeps the work for a waiter without a signal, and refuses a signal already aborted", async () => {
    const shared = new SharedWork<number>();
    let workSignal: AbortSignal | undefined;
    let finish!: (value: number) => void;
    const work = (signal: AbortSignal) => {
      workSignal = signal;
      return new Promise<number>((resolve) => {
        finish = resolve;
      });
    };
    const leaving = new AbortController();
    const stays = shared.run("k", work);
    const leaves = shared.run("k", work, leaving.signal);
    leaving.abort();
    await assert.rejects(leaves);
    assert.equal(workSignal?.aborted, false);
    finish(7);
    assert.equal(await stays, 7);
    await assert.rejects(
      shared.run("k", work, AbortSignal.abort("gone")),
      (error) => error === "gone",
    );
  });
});

describe("registry client cancellation", { timeout: 10_000 }, () => {
  it("a retry sleep ends when the signal aborts, with its reason", async () => {
    const { address, requests } = await serve((_req, res) => res.writeHead(503).end());
    const client = new RegistryClient({ retries: 5, retryBaseMs: 60_000, retryMaxMs: 60_000 });
    const controller = new AbortController();
    const pending = client.repository(address, "a/b").getManifest("v1", 1 << 20, controller.signal);
    await until(() => requests.length === 1, "the first attempt");
    controller.abort(new Error("pod deleted"));
    await assert.rejects(pending, { message: "pod deleted" });
    assert.equal(requests.length, 1, "no retry after the abort");
  });

  it("aborting a blob in flight closes its connection", async () => {
    let closed = false;
    const { address } = await serve((_req, res) => {
      res.writeHead(200, { "content-length": "1000" });
      res.write(Buffer.alloc(10));
      res.on("close", () => {
        closed = true;
      });
    });
    const controller = new AbortController();
    const blob = await new RegistryClient()
      .repository(address, "a/b")
      .getBlob(`sha256:${"0".repeat(64)}`, controller.signal);
    const reader = blob.body.getReader();
    await reader.read();
    controller.abort(new Error("stop"));
    await assert.rejects(reader.read(), { message: "stop" });
    await until(() => closed, "the server to see the connection closed");
  });
});

describe("content store cancellation", { timeout: 10_000 }, () => {
  it("a shared download is aborted when the last ingest waiting for it leaves", async () => {
    const dir = await mkdtemp(join(tmpdir(), "wasmlet-cancel-"));
    dirs.push(dir);
    const store = new ContentStore(join(dir, "store"));
    await store.open();
    const bytes = Buffer.from("x".repeat(100));
    const digest = sha256Digest(bytes);
    let sourceSignal: AbortSignal | undefined;
    const source = async (signal: AbortSignal) => {
      sourceSignal = signal;
      // A body that never ends on its own.
      const body = new ReadableStream<Uint8Array>({
        start(stream) {
          stream.enqueue(bytes.subarray(0, 10));
        },
      });
      return { body, origin: "test" };
    };
    const first = new AbortController();
    const second = new AbortController();
    const a = store.ingest(digest, bytes.length, 1 << 20, source, first.signal);
    const b = store.ingest(digest, bytes.length, 1 << 20, source, second.signal);
    first.abort();
    await assert.rejects(a);
    await until(() => sourceSignal !== undefined, "the download to start");
    assert.equal(sourceSignal!.aborted, false);
    second.abort();
    await assert.rejects(b);
    assert.equal(sourceSignal!.aborted, true);
    assert.equal(store.has(digest), false);
  });
});

/** A registry with one wasm artifact whose module blob stalls after 8 bytes until `finish`. */
async function stallingRegistry() {
  const module = buildModule();
  const artifact = buildWasmArtifact(module, { created: new Date(0) });
  const manifestDigest = sha256Digest(artifact.manifest);
  const layers: { res: ServerResponse; closed: boolean }[] = [];
  const { address, requests } = await serve((req, res) => {
    const url = req.url ?? "";
    if (url.includes("/manifests/")) {
      res
        .writeHead(200, {
          "content-type": "application/vnd.oci.image.manifest.v1+json",
          "docker-content-digest": manifestDigest,
          "content-length": String(artifact.manifest.length),
        })
        .end(req.method === "HEAD" ? undefined : artifact.manifest);
    } else if (url.endsWith(artifact.configDescriptor.digest)) {
      res.writeHead(200, { "content-length": String(artifact.config.length) }).end(artifact.config);
    } else if (url.endsWith(artifact.layer.digest)) {
      const layer = { res, closed: false };
      layers.push(layer);
      res.writeHead(200, { "content-length": String(module.length) });
      res.write(module.subarray(0, 8));
      res.on("close", () => {
        layer.closed = true;
      });
    } else res.writeHead(404).end();
  });
  const dir = await mkdtemp(join(tmpdir(), "wasmlet-cancel-"));
  dirs.push(dir);
  return {
    images: new ImageService({ dataDir: dir, registry: { retries: 0 } }),
    reference: `${address}/demo/app:1`,
    layers,
    manifestRequests: () => requests.filter((r) => r.includes("/manifests/")).length,
    finish: (index: number) => layers[index]!.res.end(module.subarray(8)),
  };
}

describe("image service cancellation", { timeout: 10_000 }, () => {
  it("a pull shared by two callers goes on for the one still waiting when the other leaves", async () => {
    const registry = await stallingRegistry();
    const leaving = new AbortController();
    const a = registry.images.ensure(registry.reference, { signal: leaving.signal });
    const b = registry.images.ensure(registry.reference, { signal: new AbortController().signal });
    await until(() => registry.layers.length === 1, "the module's download");
    leaving.abort(new Error("first pod deleted"));
    await assert.rejects(a, { message: "first pod deleted" });
    registry.finish(0);
    const image = await b;
    assert.equal(image.pulled, true);
    assert.equal(registry.layers.length, 1, "one download, never restarted");
    await registry.images.close();
  });

  it("a pull is aborted, down to the socket, when the last caller waiting for it leaves; the next caller starts afresh", async () => {
    const registry = await stallingRegistry();
    const first = new AbortController();
    const second = new AbortController();
    const a = registry.images.ensure(registry.reference, { signal: first.signal });
    const b = registry.images.ensure(registry.reference, { signal: second.signal });
    await until(() => registry.layers.length === 1, "the module's download");
    first.abort(new Error("first pod deleted"));
    second.abort(new Error("second pod deleted"));
    await assert.rejects(a, { message: "first pod deleted" });
    await assert.rejects(b, { message: "second pod deleted" });
    await until(() => registry.layers[0]!.closed, "the registry to see the download end");
    const manifests = registry.manifestRequests();
    const c = registry.images.ensure(registry.reference, { signal: new AbortController().signal });
    await until(() => registry.layers.length === 2, "a fresh download for a new caller");
    assert.equal(registry.manifestRequests(), manifests + 1);
    registry.finish(1);
    assert.equal((await c).pulled, true);
    await registry.images.close();
  });
});
