// containerd's hosts.toml: parsing, the directory layout, errors naming the file, and what the
// registry client does with it (order, capabilities, per-host TLS) against real local servers.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { isWasmletError } from "../../../src/errors.ts";
import { MediaType } from "../../../src/images/manifest.ts";
import { RegistryClient, sha256Digest } from "../../../src/images/registry-client.ts";
import { RegistryHosts } from "../../../src/images/registry-hosts.ts";
import { createTestCA, type IssuedCert, issue, type TestCA } from "../server/test-pki.ts";

let root: string;
let ca: TestCA;
let otherCa: TestCA;
let serverCert: IssuedCert;
let clientCert: IssuedCert;
const servers: Server[] = [];

before(async () => {
  root = await mkdtemp(join(tmpdir(), "wasmlet-hosts-"));
  ca = await createTestCA("hosts-test-ca");
  otherCa = await createTestCA("other-ca");
  serverCert = await issue(ca, "localhost", {
    server: { dns: ["localhost"], ips: ["127.0.0.1"] },
  });
  clientCert = await issue(ca, "wasmlet-client");
});
after(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  await rm(root, { recursive: true, force: true });
});

/** Writes files under a fresh directory of `root`; returns it. */
async function tree(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(root, "tree-"));
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(dir, path, ".."), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  return dir;
}

function invalid(pattern: RegExp) {
  return (error: unknown) =>
    isWasmletError(error, "WASMLET_ERR_REGISTRY_HOSTS_INVALID") && pattern.test(error.message);
}

const manifest = Buffer.from(
  JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: {}, layers: [] }),
);
const digest = sha256Digest(manifest);
const sendManifest = (res: ServerResponse) =>
  res
    .writeHead(200, { "content-type": MediaType.ociManifest, "docker-content-digest": digest })
    .end(manifest);

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
async function listen(
  server: Server,
  requests: IncomingMessage[],
): Promise<{ port: number; requests: IncomingMessage[] }> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as { port: number }).port, requests };
}
function serve(handler: Handler = (_q, r) => sendManifest(r)) {
  const requests: IncomingMessage[] = [];
  return listen(
    createServer((req, res) => {
      requests.push(req);
      handler(req, res);
    }),
    requests,
  );
}
function serveTls(
  options: { requestCert?: boolean } = {},
  handler: Handler = (_q, r) => sendManifest(r),
) {
  const requests: IncomingMessage[] = [];
  return listen(
    createHttpsServer(
      {
        cert: serverCert.cert,
        key: serverCert.key,
        ...(options.requestCert
          ? { ca: ca.cert, requestCert: true, rejectUnauthorized: true }
          : {}),
      },
      (req, res) => {
        requests.push(req);
        handler(req, res);
      },
    ),
    requests,
  );
}
const fast = { retries: 0, retryBaseMs: 1, retryMaxMs: 5 };

describe("hosts.toml parsing", () => {
  it("keeps the file's order, puts the server last and fills containerd's defaults", () => {
    const ns = RegistryHosts.parse(
      `
server = "https://registry.example.com:5000"

[host."https://b.mirror"]
  capabilities = ["pull"]
[host."http://a.mirror:5001/cache"]
  capabilities = ["pull", "resolve"]
  [host."http://a.mirror:5001/cache".header]
    x-one = "1"
    X-Two = ["a", "b"]
[host."c.mirror/v2/upstream"]
  override_path = true
[host."https://d.mirror/v2"]
`,
      "/etc/certs.d/example",
    );
    assert.deepEqual(
      ns.hosts.map((h) => [h.scheme, h.host, h.path, [...h.capabilities].sort(), h.server]),
      [
        ["https", "b.mirror", "/v2", ["pull"], false],
        ["http", "a.mirror:5001", "/cache/v2", ["pull", "resolve"], false],
        ["https", "c.mirror", "/v2/upstream", ["pull", "push", "resolve"], false],
        ["https", "d.mirror", "/v2", ["pull", "push", "resolve"], false],
        ["https", "registry.example.com:5000", "/v2", ["pull", "push", "resolve"], true],
      ],
    );
    assert.deepEqual(ns.hosts[1]!.headers, { "x-one": ["1"], "x-two": ["a", "b"] });
    assert.equal(ns.hosts[0]!.tls, undefined);
  });

  it("without server, the last host is the registry's own (decided per registry)", () => {
    const ns = RegistryHosts.parse(
      `[host."https://mirror"]\ncapabilities = ["pull", "resolve"]\nskip_verify = true\n`,
      "/x",
    );
    assert.equal(ns.hosts.length, 2);
    const server = ns.hosts[1]!;
    assert.equal(server.server, true);
    assert.equal(server.host, undefined);
    assert.deepEqual([...server.capabilities].sort(), ["pull", "push", "resolve"]);
    assert.equal(ns.hosts[0]!.tls?.skipVerify, true);
    assert.equal(server.tls, undefined);
    assert.equal(
      RegistryHosts.parse('dial_timeout = "1s500ms"\n', "/x").hosts[0]!.dialTimeoutMs,
      1500,
    );
  });

  it("rejects what containerd would misread, naming the key", () => {
    const cases: [string, RegExp][] = [
      ["server = [", /hosts\.toml: not valid TOML at line 1, column \d+/],
      [
        '[host."https://m"]\ncapabilities = ["pul"]\n',
        /\[host\."https:\/\/m"\]: unknown capability "pul"/,
      ],
      ["skip_verfiy = true\n", /top level: unknown key "skip_verfiy"/],
      ['[host."https://m"]\nskip_verify = "yes"\n', /skip_verify must be true or false/],
      ['[host."https://m"]\nserver = "x"\n', /unknown key "server"/],
      ["server = 5\n", /server must be a string/],
      ['server = "ftp://x"\n', /must be http:\/\/ or https:\/\//],
      ['server = "https://u:p@x"\n', /must not hold credentials/],
      [
        '[host."https://m"]\nclient = [["a"]]\n',
        /client entry \["a"\] is neither a path nor \[cert, key\]/,
      ],
      ['[host."https://m"]\nca = 3\n', /ca must be a string or a list of strings/],
      ['[header]\n"bad header" = "x"\n', /not a valid HTTP header name/],
      ['dial_timeout = "soon"\n', /dial_timeout must be a duration/],
      ['host = "x"\n', /host must be tables/],
    ];
    for (const [text, pattern] of cases)
      assert.throws(
        () => RegistryHosts.parse(text, root, "/etc/certs.d/r/hosts.toml"),
        invalid(pattern),
        text,
      );
  });
});

describe("registry config dir", () => {
  it("finds host_port_, then host:port, then _default; relative paths are the file's", async () => {
    const dir = await tree({
      "reg.example:5000/hosts.toml": 'server = "https://colon"\n',
      "reg.example_5000_/hosts.toml": 'server = "https://underscore"\nca = "ca.pem"\n',
      "reg.example_5000_/ca.pem": ca.cert,
      "reg.example:6000/hosts.toml": 'server = "https://six"\nca = ["../shared/ca.pem"]\n',
      "shared/ca.pem": ca.cert,
      "_default/hosts.toml": 'server = "https://fallback"\n',
      "docker.io/hosts.toml": '[host."https://hub-mirror"]\ncapabilities = ["pull"]\n',
      "not-a-dir": "",
    });
    const hosts = RegistryHosts.load(dir);
    assert.equal(hosts.lookup("reg.example:5000")!.hosts[0]!.host, "underscore");
    assert.equal(
      hosts.lookup("reg.example:5000")!.source,
      join(dir, "reg.example_5000_", "hosts.toml"),
    );
    assert.equal(hosts.lookup("reg.example:5000")!.hosts[0]!.tls!.ca[0]!.trim(), ca.cert.trim());
    assert.equal(hosts.lookup("reg.example:6000")!.hosts[0]!.tls!.ca.length, 1);
    assert.equal(hosts.lookup("ghcr.io")!.hosts[0]!.host, "fallback");
    assert.equal(hosts.lookup("docker.io")!.hosts[0]!.host, "hub-mirror");
    const noDefault = RegistryHosts.load(await tree({ "docker.io/hosts.toml": "" }));
    assert.equal(noDefault.lookup("ghcr.io"), undefined);
    // An empty hosts.toml: just the registry itself, as without one.
    assert.deepEqual(
      noDefault.lookup("docker.io")!.hosts.map((h) => [h.host, h.server]),
      [[undefined, true]],
    );
  });

  it("reads Docker's certificate files where there is no hosts.toml", async () => {
    const dir = await tree({
      "reg:5000/ca.crt": ca.cert,
      "reg:5000/client.cert": clientCert.cert,
      "reg:5000/client.key": clientCert.key,
    });
    const server = RegistryHosts.load(dir).lookup("reg:5000")!.hosts[0]!;
    assert.equal(server.tls!.ca.length, 1);
    assert.equal(server.tls!.certs.length, 1);
    assert.equal(server.host, undefined);
  });

  it("reads client certificates as pairs, one file holding both, and checks they match", async () => {
    const other = await issue(otherCa, "someone");
    const dir = await tree({
      "a/hosts.toml": 'client = [["c.pem", "k.pem"], "both.pem", ["both.pem", ""]]\n',
      "a/c.pem": clientCert.cert,
      "a/k.pem": clientCert.key,
      "a/both.pem": `${clientCert.cert}\n${clientCert.key}`,
      "b/hosts.toml": 'client = [["c.pem", "k.pem"]]\n',
      "b/c.pem": clientCert.cert,
      "b/k.pem": other.key,
    });
    await assert.rejects(
      async () => RegistryHosts.load(dir),
      invalid(
        new RegExp(
          `${join(dir, "b", "hosts.toml")}: client key ${join(dir, "b", "k.pem")} does not belong to client certificate`,
        ),
      ),
    );
    await rm(join(dir, "b"), { recursive: true });
    assert.equal(RegistryHosts.load(dir).lookup("a")!.hosts[0]!.tls!.certs.length, 3);
  });

  it("names the file and the missing or broken certificate file", async () => {
    const missing = await tree({ "r/hosts.toml": '[host."https://m"]\nca = "nope.pem"\n' });
    assert.throws(
      () => RegistryHosts.load(missing),
      invalid(
        new RegExp(
          `${join(missing, "r", "hosts.toml")}: ca ${join(missing, "r", "nope.pem")} cannot be read: ENOENT`,
        ),
      ),
    );
    const garbage = await tree({ "r/hosts.toml": 'ca = "ca.pem"\n', "r/ca.pem": "hello" });
    assert.throws(
      () => RegistryHosts.load(garbage),
      invalid(/ca .*ca\.pem holds no PEM certificate/),
    );
    const onlyCert = await tree({
      "r/hosts.toml": 'client = "c.pem"\n',
      "r/c.pem": clientCert.cert,
    });
    assert.throws(() => RegistryHosts.load(onlyCert), invalid(/holds no private key/));
    assert.throws(
      () => RegistryHosts.load(join(root, "does-not-exist")),
      invalid(/registry config dir .*does-not-exist cannot be read: ENOENT/),
    );
  });
});

describe("registry client with hosts", () => {
  async function client(files: Record<string, string>, options = {}) {
    return new RegistryClient({
      ...fast,
      ...options,
      hosts: RegistryHosts.load(await tree(files)),
    });
  }

  it("tries mirrors in order before the server, and only resolve-capable ones for tags", async () => {
    const origin = await serve();
    const pullOnly = await serve();
    const resolver = await serve((req, res) =>
      req.url!.includes("/missing/") ? res.writeHead(404).end() : sendManifest(res),
    );
    const registry = `127.0.0.1:${origin.port}`;
    const c = await client({
      [`${registry}/hosts.toml`]: `
[host."http://127.0.0.1:${pullOnly.port}"]
  capabilities = ["pull"]
[host."http://127.0.0.1:${resolver.port}"]
  capabilities = ["pull", "resolve"]
`,
    });
    await c.repository(registry, "team/app").getManifest("v1", 1 << 20);
    assert.equal(pullOnly.requests.length, 0, "a pull-only mirror never resolves a tag");
    assert.equal(resolver.requests.length, 1);
    assert.equal(origin.requests.length, 0);
    assert.equal(
      new URL(resolver.requests[0]!.url!, "http://x").searchParams.get("ns"),
      registry,
      "mirrors are told the registry (containerd's ns parameter)",
    );
    await c.repository(registry, "team/app").getManifest(digest, 1 << 20);
    assert.equal(pullOnly.requests.length, 1, "a digest comes from the first pull-capable host");
    await c.repository(registry, "missing/app").getManifest("v1", 1 << 20);
    assert.equal(origin.requests.length, 1, "the server is the last resort");
    assert.equal(new URL(origin.requests[0]!.url!, "http://x").searchParams.get("ns"), null);
    await c.close();
  });

  it("pushes to the first push-capable host and fails clearly when none may", async () => {
    const c = await client({
      "reg.example/hosts.toml":
        'server = "https://reg.example"\ncapabilities = ["pull", "resolve"]\n',
    });
    assert.throws(
      () => c.endpointsFor("reg.example", "push"),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_NO_REGISTRY_HOST") &&
        e.message.includes('no host configured for registry reg.example has the "push" capability'),
    );
  });

  it("decides the default server's scheme: loopback and plain-HTTP registries use http unless TLS is configured", async () => {
    const c = await client(
      {
        "127.0.0.1:5000/hosts.toml": "",
        "127.0.0.1:5001/hosts.toml": "skip_verify = true\n",
        "reg.lan:5000/hosts.toml": '[host."https://m"]\n',
        "docker.io/hosts.toml": '[host."https://m"]\n',
      },
      { plainHttp: ["reg.lan:5000"] },
    );
    assert.equal(c.endpoint("127.0.0.1:5000").root, "http://127.0.0.1:5000/v2");
    assert.equal(c.endpoint("127.0.0.1:5001").root, "https://127.0.0.1:5001/v2");
    assert.equal(c.endpoint("reg.lan:5000").root, "http://reg.lan:5000/v2");
    const hub = c.endpoints("docker.io");
    assert.deepEqual(
      hub.map((e) => [e.root, e.credentials, e.mirror]),
      [
        ["https://m/v2", false, true],
        ["https://registry-1.docker.io/v2", true, false],
      ],
    );
  });

  it("verifies hosts with their own CA, presents client certificates, honours skip_verify", async () => {
    const plain = await serveTls();
    const mutual = await serveTls({ requestCert: true });
    const files = (settings: string, port: number) => ({
      [`127.0.0.1:${port}/hosts.toml`]: `server = "https://localhost:${port}"\n${settings}`,
      [`127.0.0.1:${port}/ca.pem`]: ca.cert,
      [`127.0.0.1:${port}/client.crt`]: clientCert.cert,
      [`127.0.0.1:${port}/client.key`]: clientCert.key,
    });
    const get = async (settings: string, port: number) => {
      const c = await client(files(settings, port));
      try {
        return await c.repository(`127.0.0.1:${port}`, "a").getManifest("v1", 1 << 20);
      } finally {
        await c.close();
      }
    };
    // Without the CA the certificate is not trusted; with it, it is.
    await assert.rejects(get("", plain.port), (e) =>
      isWasmletError(e, "WASMLET_ERR_IMAGE_REGISTRY_UNAVAILABLE"),
    );
    assert.equal((await get('ca = "ca.pem"\n', plain.port)).digest, digest);
    assert.equal((await get("skip_verify = true\n", plain.port)).digest, digest);
    // A server that wants a client certificate gets one.
    await assert.rejects(get('ca = "ca.pem"\n', mutual.port), (e) =>
      isWasmletError(e, "WASMLET_ERR_IMAGE_REGISTRY_UNAVAILABLE"),
    );
    const withClient = 'ca = "ca.pem"\nclient = [["client.crt", "client.key"]]\n';
    assert.equal((await get(withClient, mutual.port)).digest, digest);
    assert.equal(mutual.requests.length, 1);
    // A closed client's hosts refuse new requests.
    const c = await client(files(withClient, mutual.port));
    await c.close();
    await c.close();
    await assert.rejects(c.repository(`127.0.0.1:${mutual.port}`, "a").getManifest("v1", 1 << 20));
  });

  it("sends a host's configured headers to that host only", async () => {
    const mirror = await serve((_req, res) => res.writeHead(404).end());
    const origin = await serve();
    const registry = `127.0.0.1:${origin.port}`;
    const c = await client({
      [`${registry}/hosts.toml`]: `
[host."http://127.0.0.1:${mirror.port}"]
  header = { x-mirror = ["a", "b"] }
[header]
  x-origin = "o"
`,
    });
    await c.repository(registry, "a").getManifest("v1", 1 << 20);
    assert.equal(mirror.requests[0]!.headers["x-mirror"], "a, b");
    assert.equal(mirror.requests[0]!.headers["x-origin"], undefined);
    assert.equal(origin.requests[0]!.headers["x-origin"], "o");
    assert.equal(origin.requests[0]!.headers["x-mirror"], undefined);
  });
});
