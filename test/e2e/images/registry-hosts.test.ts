// containerd's hosts.toml (`--registry-config-dir`) against real registries: a TLS mirror with a
// private CA used before the registry, a plain-HTTP mirror, a registry that wants a client
// certificate, skip_verify, the registry's credentials kept from the mirrors; the CLI and a node
// honouring the flag; a malformed hosts.toml stopping both at start.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import type { V1Pod } from "@kubernetes/client-node";
import { LocalRegistry } from "../../../src/devcluster/registry.ts";
import { isWasmletError } from "../../../src/errors.ts";
import {
  CredentialSet,
  ImageService,
  pushWasmArtifact,
  RegistryClient,
  RegistryHosts,
} from "../../../src/images/index.ts";
import { buildGuest } from "../../support/guests.ts";
import { Wasmlet } from "../../support/wasmlet.ts";
import { createTestCA, type IssuedCert, issue, type TestCA } from "../../unit/server/test-pki.ts";
import { applyJson, type PodTestBed, startPodTestBed, waitForPod } from "../pods/support.ts";
import { CountingProxy } from "./support/proxy.ts";

const exec = promisify(execFile);
const main = new URL("../../../src/cli/main.ts", import.meta.url).pathname;
const alice = { username: "alice", password: "origin only" };

let dir: string;
let hostsDir: string;
let ca: TestCA;
let clientCa: TestCA;
let client: IssuedCert;
/** The registry the images are named after: basic auth, plain HTTP, holds only team/origin. */
let origin: LocalRegistry;
/** A TLS mirror (private CA): holds team/app, which the origin does not have. */
let tlsMirror: LocalRegistry;
/** A plain-HTTP mirror behind a recording proxy: holds team/plain. */
let plainMirror: LocalRegistry;
let proxy: CountingProxy;
/** A TLS registry that serves only clients with a certificate from clientCa. */
let mutual: LocalRegistry;
let ticker: Buffer;
let tickerPath: string;

async function files(root: string, entries: Record<string, string>): Promise<string> {
  for (const [path, text] of Object.entries(entries)) {
    await mkdir(join(root, path, ".."), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wasmlet-hosts-e2e-"));
  ca = await createTestCA("registry-ca");
  clientCa = await createTestCA("registry-client-ca");
  client = await issue(clientCa, "wasmlet");
  const serving = await issue(ca, "localhost", {
    server: { dns: ["localhost"], ips: ["127.0.0.1"] },
  });
  [origin, tlsMirror, plainMirror, mutual] = await Promise.all([
    LocalRegistry.start({ basicAuth: alice }),
    LocalRegistry.start({ tls: serving }),
    LocalRegistry.start(),
    LocalRegistry.start({ tls: { ...serving, clientCAs: [clientCa.cert] } }),
  ]);
  proxy = await CountingProxy.start({ target: plainMirror.address });
  tickerPath = await buildGuest("ticker");
  ticker = await readFile(tickerPath);

  hostsDir = await files(join(dir, "certs.d"), {
    // The origin's mirrors: the plain one first, then the TLS one (by host name, verified
    // against the private CA), then the origin itself (no server: the registry's own host).
    [`${origin.address}/hosts.toml`]: `
[host."http://${proxy.address}"]
  capabilities = ["pull", "resolve"]

[host."https://localhost:${tlsMirror.port}"]
  capabilities = ["pull", "resolve"]
  ca = "ca.pem"
`,
    [`${origin.address}/ca.pem`]: ca.cert,
    // Docker's certificate files work too (no hosts.toml): CA and client pair.
    [`${mutual.address}/ca.crt`]: ca.cert,
    [`${mutual.address}/wasmlet.cert`]: client.cert,
    [`${mutual.address}/wasmlet.key`]: client.key,
    // The TLS mirror reached by its own name, certificate unchecked.
    [`${tlsMirror.address}/hosts.toml`]: "skip_verify = true\n",
  });
  const pushClient = new RegistryClient({ hosts: RegistryHosts.load(hostsDir) });
  const publish = (
    reference: string,
    credentials = [] as { username: string; password: string }[],
  ) =>
    pushWasmArtifact(ticker, reference, {
      client: pushClient,
      credentials: credentials.map((c) => ({ ...c, source: "test" })),
    });
  await publish(`${tlsMirror.address}/team/app:1`);
  await publish(`${plainMirror.address}/team/plain:1`);
  await publish(`${origin.address}/team/origin:1`, [alice]);
  await publish(`${mutual.address}/team/mutual:1`);
  await pushClient.close();
  proxy.log.length = 0;
});
after(async () => {
  await proxy?.stop();
  await Promise.all([origin, tlsMirror, plainMirror, mutual].map((r) => r?.stop()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function service(name: string, hosts = hostsDir): Promise<ImageService> {
  const s = new ImageService({
    dataDir: join(dir, "data", name),
    registry: { hosts: RegistryHosts.load(hosts), retries: 0 },
  });
  await s.start();
  return s;
}

const originCredentials = () =>
  CredentialSet.parse(
    { auths: { [origin.address]: { username: alice.username, password: alice.password } } },
    "test",
  );

describe("an image service with a registry config dir", () => {
  it("pulls through the TLS mirror (private CA) before the registry, which lacks the image", async () => {
    const s = await service("tls-mirror");
    const image = await s.ensure(`${origin.address}/team/app:1`);
    assert.equal(image.pulled, true);
    assert.ok(
      proxy.count("GET", /\/v2\/team\/app\/manifests\/1\?ns=/) >= 1,
      "plain mirror asked first",
    );
    await s.close();
    // Without the mirror's CA its certificate is not trusted: the origin is the last resort and
    // wants credentials.
    const noCa = await files(join(dir, "no-ca"), {
      [`${origin.address}/hosts.toml`]: `[host."https://localhost:${tlsMirror.port}"]\n`,
    });
    const s2 = await service("no-ca", noCa);
    await assert.rejects(s2.ensure(`${origin.address}/team/app:1`), (e) =>
      isWasmletError(e, "WASMLET_ERR_IMAGE_AUTH_FAILED"),
    );
    await s2.close();
  });

  it("pulls from a plain-HTTP mirror and never sends it the registry's credentials", async () => {
    proxy.log.length = 0;
    const s = await service("plain-mirror");
    const plain = await s.ensure(`${origin.address}/team/plain:1`, {
      credentials: originCredentials(),
    });
    assert.equal(plain.pulled, true);
    // The origin's own image: both mirrors miss it, the origin serves it with the credentials.
    const own = await s.ensure(`${origin.address}/team/origin:1`, {
      credentials: originCredentials(),
    });
    assert.equal(own.pulled, true);
    await s.close();
    assert.ok(proxy.count("GET", /\/team\/plain\/blobs\//) >= 1, "the blobs came from the mirror");
    assert.ok(proxy.count("GET", /\/team\/origin\/manifests\/1/) >= 1);
    for (const entry of proxy.log)
      assert.equal(
        entry.authorization,
        undefined,
        `${entry.method} ${entry.path} carried credentials`,
      );
  });

  it("presents the client certificate a registry requires (Docker's certificate files)", async () => {
    const s = await service("mutual");
    assert.equal((await s.ensure(`${mutual.address}/team/mutual:1`)).pulled, true);
    await s.close();
    const caOnly = await files(join(dir, "ca-only"), {
      [`${mutual.address}/hosts.toml`]: 'ca = "ca.pem"\n',
      [`${mutual.address}/ca.pem`]: ca.cert,
    });
    const s2 = await service("mutual-no-cert", caOnly);
    await assert.rejects(s2.ensure(`${mutual.address}/team/mutual:1`), (e) =>
      isWasmletError(e, "WASMLET_ERR_IMAGE_REGISTRY_UNAVAILABLE"),
    );
    await s2.close();
  });

  it("skip_verify reaches a TLS registry whose certificate it cannot verify", async () => {
    const s = await service("skip-verify");
    assert.equal((await s.ensure(`${tlsMirror.address}/team/app:1`)).pulled, true);
    await s.close();
    const verify = await files(join(dir, "verify"), {
      [`${tlsMirror.address}/hosts.toml`]: "skip_verify = false\n",
    });
    const s2 = await service("verify", verify);
    await assert.rejects(
      s2.ensure(`${tlsMirror.address}/team/app:1`),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_REGISTRY_UNAVAILABLE") &&
        /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|unable to verify/i.test(e.message),
    );
    await s2.close();
  });
});

async function wasmlet(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [main, ...args], {
      env: {
        ...process.env,
        WASMLET_DATA_DIR: join(dir, "cli"),
        DOCKER_CONFIG: join(dir, "docker"),
      },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("wasmlet pull / inspect --registry-config-dir", () => {
  it("pull and inspect go through the mirror", async () => {
    const ref = `${origin.address}/team/app:1`;
    const withoutHosts = await wasmlet(["pull", ref]);
    assert.equal(withoutHosts.code, 1, "the origin alone has no such image");
    const pulled = await wasmlet(["pull", "--registry-config-dir", hostsDir, ref]);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.match(pulled.stdout, /: pulled \(wasm-artifact/);
    const inspected = await wasmlet([
      "inspect",
      "--json",
      "--pull",
      "Always",
      "--registry-config-dir",
      hostsDir,
      `${origin.address}/team/plain:1`,
    ]);
    assert.equal(inspected.code, 0, inspected.stderr);
    assert.equal(JSON.parse(inspected.stdout).format, "wasm-artifact");
  });

  it("push presents the client certificate, then pull reads it back", async () => {
    const ref = `${mutual.address}/cli/pushed:1`;
    const refused = await wasmlet(["push", tickerPath, ref]);
    assert.equal(refused.code, 1, "plain HTTP to a TLS registry fails without the hosts");
    const pushed = await wasmlet(["push", "--registry-config-dir", hostsDir, tickerPath, ref]);
    assert.equal(pushed.code, 0, pushed.stderr);
    const pulled = await wasmlet(["pull", "--registry-config-dir", hostsDir, ref]);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.match(pulled.stdout, /: pulled/);
  });

  it("a malformed hosts.toml stops the command, naming the file and the mistake", async () => {
    const bad = await files(join(dir, "bad"), {
      [`${origin.address}/hosts.toml`]: '[host."https://m"]\ncapabilities = ["pul"]\n',
    });
    const result = await wasmlet([
      "pull",
      "--registry-config-dir",
      bad,
      `${origin.address}/team/app:1`,
    ]);
    assert.equal(result.code, 1);
    assert.ok(
      result.stderr.includes(
        `${join(bad, origin.address, "hosts.toml")}: [host."https://m"]: unknown capability "pul"`,
      ),
      result.stderr,
    );
  });
});

describe("a node with --registry-config-dir", () => {
  let bed: PodTestBed | undefined;
  after(async () => {
    await bed?.cleanup();
  });

  it("refuses to start with a malformed hosts.toml", async () => {
    const bad = await files(join(dir, "bad-node"), { "_default/hosts.toml": "server = \n" });
    const node = await Wasmlet.start({
      args: ["--allow-self-signed", "--no-tls-bootstrap", "--registry-config-dir", bad],
    });
    try {
      const { code } = await node.exited;
      assert.notEqual(code, 0);
      assert.ok(
        node.output.includes(`${join(bad, "_default", "hosts.toml")}: not valid TOML at line 1`),
        node.output.slice(-2000),
      );
    } finally {
      await node.cleanup();
    }
  });

  it("runs a pod whose image only the TLS mirror has", async () => {
    bed = await startPodTestBed("hosts", ["--registry-config-dir", hostsDir]);
    await applyJson(bed.namespace, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "mirrored" },
      spec: {
        runtimeClassName: bed.runtimeClass,
        containers: [{ name: "main", image: `${origin.address}/team/app:1` }],
      },
    });
    await waitForPod(
      bed.namespace,
      "mirrored",
      "Running",
      (p: V1Pod) => p.status?.phase === "Running",
      90_000,
    );
  });
});
