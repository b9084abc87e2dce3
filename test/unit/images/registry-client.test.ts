import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { freePort } from "../../../src/devcluster/ports.ts";
import { isWasmletError } from "../../../src/errors.ts";
import { MediaType } from "../../../src/images/manifest.ts";
import { RegistryClient, retryAfterMs, sha256Digest } from "../../../src/images/registry-client.ts";
import { RegistryHosts } from "../../../src/images/registry-hosts.ts";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const servers: Server[] = [];
after(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));

async function serve(handler: Handler): Promise<{ address: string; requests: IncomingMessage[] }> {
  const requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return { address: `127.0.0.1:${port}`, requests };
}

const manifest = Buffer.from(
  JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: {}, layers: [] }),
);
const sendManifest = (res: ServerResponse) =>
  res
    .writeHead(200, {
      "content-type": MediaType.ociManifest,
      "docker-content-digest": sha256Digest(manifest),
    })
    .end(manifest);
const fast = { retries: 3, retryBaseMs: 1, retryMaxMs: 5 };

describe("registry client", () => {
  it("retries 5xx and 429 with backoff, then succeeds", async () => {
    let n = 0;
    const { address, requests } = await serve((_req, res) => {
      n++;
      if (n === 1) res.writeHead(503).end();
      else if (n === 2) res.writeHead(429, { "retry-after": "0" }).end();
      else sendManifest(res);
    });
    const repo = new RegistryClient(fast).repository(address, "a/b");
    const result = await repo.getManifest("v1", 1 << 20);
    assert.equal(result.digest, sha256Digest(manifest));
    assert.equal(requests.length, 3);
    const accept = requests[2]!.headers.accept ?? "";
    for (const type of [
      MediaType.ociIndex,
      MediaType.ociManifest,
      MediaType.dockerManifestList,
      MediaType.dockerManifest,
    ]) {
      assert.ok(accept.includes(type), type);
    }
  });

  it("backs off between retries unless Retry-After says how long to wait", async () => {
    const times: number[] = [];
    const { address } = await serve((_req, res) => {
      times.push(performance.now());
      if (times.length < 3) res.writeHead(503).end();
      else sendManifest(res);
    });
    const client = new RegistryClient({ retries: 3, retryBaseMs: 100, retryMaxMs: 1000 });
    await client.repository(address, "a/b").getManifest("v1", 1 << 20);
    // Jittered exponential: 50–100 ms, then 100–200 ms.
    assert.ok(times[1]! - times[0]! >= 45, `first wait ${times[1]! - times[0]!} ms`);
    assert.ok(times[2]! - times[1]! >= 95, `second wait ${times[2]! - times[1]!} ms`);

    assert.equal(retryAfterMs("3", 0), 3000);
    assert.equal(retryAfterMs(new Date(5000).toUTCString(), 2000), 3000);
    assert.equal(retryAfterMs(null, 0), undefined);
    assert.equal(retryAfterMs("soon", 0), undefined);
  });

  it("gives up on a registry that keeps failing or cannot be reached, naming it", async () => {
    const { address, requests } = await serve((_req, res) => res.writeHead(502).end());
    await assert.rejects(
      new RegistryClient(fast).repository(address, "a").getManifest("t", 1 << 20),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_REGISTRY_ERROR") &&
        e.message.includes(`registry ${address} answered 502`),
    );
    assert.equal(requests.length, 4);
    const closed = `127.0.0.1:${await freePort()}`;
    await assert.rejects(
      new RegistryClient(fast).repository(closed, "a").getManifest("t", 1 << 20),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_REGISTRY_UNAVAILABLE") &&
        e.message.includes(`registry ${closed} is unreachable (ECONNREFUSED) after 4 attempts`),
    );
  });

  it("answers a bearer challenge anonymously and caches the token per scope", async () => {
    let tokens = 0;
    const token = await serve((req, res) => {
      tokens++;
      const url = new URL(req.url!, "http://x");
      assert.equal(url.searchParams.get("service"), "svc");
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ token: `t-${url.searchParams.get("scope")}`, expires_in: 300 }));
    });
    const { address } = await serve((req, res) => {
      if (req.headers.authorization === "Bearer t-repository:lib/app:pull")
        return sendManifest(res);
      res
        .writeHead(401, {
          "www-authenticate": `Bearer realm="http://${token.address}/token",service="svc"`,
        })
        .end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
    });
    const client = new RegistryClient(fast);
    for (let i = 0; i < 3; i++)
      await client.repository(address, "lib/app").getManifest("1", 1 << 20);
    assert.equal(tokens, 1);
    await assert.rejects(
      client.repository(address, "lib/other").getManifest("1", 1 << 20),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_AUTH_FAILED") &&
        e.message.includes(`registry ${address} requires authentication for lib/other`),
    );
    assert.equal(tokens, 2);
  });

  it("asks for a fresh token when the registry no longer takes a cached one", async () => {
    let issued = 0;
    const token = await serve((_req, res) => {
      issued++;
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ token: `t${issued}`, expires_in: 300 }));
    });
    // Only the newest token is good, as after a token server restart with a new signing key.
    const { address } = await serve((req, res) => {
      if (req.headers.authorization === `Bearer t${issued}`) return sendManifest(res);
      res
        .writeHead(401, { "www-authenticate": `Bearer realm="http://${token.address}/token"` })
        .end();
    });
    const client = new RegistryClient(fast);
    const credential = { username: "u", password: "p", source: "pull secret" };
    await client.repository(address, "lib/app", [credential]).getManifest("1", 1 << 20);
    issued++; // t1 is no longer valid anywhere
    await client.repository(address, "lib/app", [credential]).getManifest("1", 1 << 20);
    assert.equal(issued, 3);
  });

  it("tries Basic credentials in order and names the registry when none works", async () => {
    const good = `Basic ${Buffer.from("u:right").toString("base64")}`;
    const { address } = await serve((req, res) => {
      if (req.headers.authorization === good) return sendManifest(res);
      res.writeHead(401, { "www-authenticate": 'Basic realm="r"' }).end();
    });
    const client = new RegistryClient(fast);
    const wrong = { username: "u", password: "wrong", source: "pull secret 1" };
    const right = { username: "u", password: "right", source: "pull secret 2" };
    await client.repository(address, "x", [wrong, right]).getManifest("1", 1 << 20);
    await assert.rejects(
      client.repository(address, "x", [wrong]).getManifest("1", 1 << 20),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_AUTH_FAILED") &&
        e.message.includes(`authentication to registry ${address} failed`) &&
        e.message.includes("pull secret 1"),
    );
    await assert.rejects(client.repository(address, "x").getManifest("1", 1 << 20), (e) =>
      isWasmletError(e, "WASMLET_ERR_IMAGE_AUTH_FAILED"),
    );
  });

  it("reads from mirrors first and falls back to the registry", async () => {
    const upstream = await serve((_req, res) => sendManifest(res));
    const mirror = await serve((req, res) =>
      req.url!.includes("/missing/") ? res.writeHead(404).end() : sendManifest(res),
    );
    const down = `http://127.0.0.1:${await freePort()}`;
    const client = new RegistryClient({
      ...fast,
      retries: 0,
      mirrors: { [upstream.address]: [down, `http://${mirror.address}/v2/`] },
    });
    await client.repository(upstream.address, "present/app").getManifest("1", 1 << 20);
    assert.equal(upstream.requests.length, 0);
    assert.equal(mirror.requests.length, 1);
    await client.repository(upstream.address, "missing/app").getManifest("1", 1 << 20);
    assert.equal(upstream.requests.length, 1);
  });

  it("sends the registry's credentials to the registry only, never to a mirror", async () => {
    const good = `Basic ${Buffer.from("u:secret").toString("base64")}`;
    const needsAuth: Handler = (req, res) =>
      req.headers.authorization === good
        ? sendManifest(res)
        : res.writeHead(401, { "www-authenticate": 'Basic realm="r"' }).end();
    const upstream = await serve(needsAuth);
    // Mirrors that would take the credentials if they were sent: one by the `mirrors` option,
    // one by a hosts.toml with a bearer realm of its own.
    const legacy = await serve(needsAuth);
    const tokens = await serve((req, res) => {
      if (req.headers.authorization) return res.writeHead(200).end('{"token":"leaked"}');
      res.writeHead(401).end();
    });
    const hosted = await serve((req, res) =>
      req.headers.authorization === "Bearer leaked"
        ? sendManifest(res)
        : res
            .writeHead(401, {
              "www-authenticate": `Bearer realm="http://${tokens.address}/token",service="m"`,
            })
            .end(),
    );
    const dir = await mkdtemp(join(tmpdir(), "wasmlet-client-hosts-"));
    after(() => rm(dir, { recursive: true, force: true }));
    await mkdir(join(dir, upstream.address));
    await writeFile(
      join(dir, upstream.address, "hosts.toml"),
      `[host."http://${hosted.address}"]\ncapabilities = ["pull", "resolve"]\n`,
    );
    const client = new RegistryClient({
      ...fast,
      retries: 0,
      mirrors: { [upstream.address]: [`http://${legacy.address}`] },
      hosts: RegistryHosts.load(dir),
    });
    const credential = { username: "u", password: "secret", source: "pull secret 1" };
    const result = await client
      .repository(upstream.address, "team/app", [credential])
      .getManifest("1", 1 << 20);
    assert.equal(result.digest, sha256Digest(manifest));
    assert.ok(legacy.requests.length > 0 && hosted.requests.length > 0, "the mirrors were asked");
    for (const req of [...legacy.requests, ...hosted.requests, ...tokens.requests])
      assert.equal(req.headers.authorization, undefined, `${req.url} got credentials`);
    assert.ok(tokens.requests.every((r) => !r.url!.includes("account=")));
    assert.equal(upstream.requests.at(-1)!.headers.authorization, good, "the registry gets them");
    // A server elsewhere than the registry's own host is another host: no credentials either,
    // and its refusal says why.
    const elsewhere = await serve(needsAuth);
    await mkdir(join(dir, "reg.example"));
    await writeFile(
      join(dir, "reg.example", "hosts.toml"),
      `server = "http://${elsewhere.address}"\n`,
    );
    await assert.rejects(
      new RegistryClient({ ...fast, retries: 0, hosts: RegistryHosts.load(dir) })
        .repository("reg.example", "team/app", [credential])
        .getManifest("1", 1 << 20),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_AUTH_FAILED") &&
        e.message.includes(
          `host http://${elsewhere.address} (for registry reg.example; it gets no credentials`,
        ),
    );
    assert.equal(elsewhere.requests[0]!.headers.authorization, undefined);
  });

  it("verifies manifests fetched by digest and limits their size", async () => {
    const { address } = await serve((_req, res) => sendManifest(res));
    const client = new RegistryClient(fast);
    const wrong = `sha256:${"0".repeat(64)}`;
    await assert.rejects(client.repository(address, "a").getManifest(wrong, 1 << 20), (e) =>
      isWasmletError(e, "WASMLET_ERR_IMAGE_DIGEST_MISMATCH"),
    );
    await assert.rejects(client.repository(address, "a").getManifest("t", 10), (e) =>
      isWasmletError(e, "WASMLET_ERR_IMAGE_TOO_LARGE"),
    );
  });

  it("maps 404 and 403 to not-found and auth errors", async () => {
    const { address } = await serve((req, res) =>
      req.url!.includes("denied")
        ? res.writeHead(403).end('{"errors":[{"code":"DENIED","message":"no"}]}')
        : res
            .writeHead(404)
            .end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'),
    );
    const client = new RegistryClient(fast);
    await assert.rejects(
      client.repository(address, "a").getManifest("t", 1 << 20),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_NOT_FOUND") && e.message.includes("MANIFEST_UNKNOWN"),
    );
    await assert.rejects(
      client.repository(address, "denied").getManifest("t", 1 << 20),
      (e) => isWasmletError(e, "WASMLET_ERR_IMAGE_AUTH_FAILED") && e.message.includes("DENIED"),
    );
  });

  it("uses https except for loopback and configured plain-HTTP registries", () => {
    const client = new RegistryClient({ plainHttp: ["registry.lan:5000"] });
    assert.equal(client.endpoint("ghcr.io").base, "https://ghcr.io");
    assert.equal(client.endpoint("docker.io").base, "https://registry-1.docker.io");
    assert.equal(client.endpoint("registry.lan:5000").base, "http://registry.lan:5000");
    assert.equal(client.endpoint("registry.lan:5001").base, "https://registry.lan:5001");
    assert.equal(client.endpoint("localhost:5000").base, "http://localhost:5000");
    assert.equal(client.endpoint("127.0.0.1:5000").base, "http://127.0.0.1:5000");
  });
});
