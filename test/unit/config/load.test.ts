import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { OPTIONS } from "../../../src/config/config.ts";
import { helpText, loadConfig } from "../../../src/config/load.ts";
import { isWasmletError } from "../../../src/errors.ts";

const host = { hostname: () => "testhost", primaryIP: () => "10.1.2.3" };
let dir: string;
let kubeconfig: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wasmlet-config-"));
  kubeconfig = join(dir, "kubeconfig");
  await writeFile(kubeconfig, "apiVersion: v1\nkind: Config\n");
});
after(() => rm(dir, { recursive: true, force: true }));

function load(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const result = loadConfig({ argv: ["--kubeconfig", kubeconfig, ...argv], env, host, cwd: dir });
  assert.equal(result.help, false);
  if (result.help) throw new Error("unreachable");
  return result.config;
}

function failure(argv: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    loadConfig({ argv, env, host, cwd: dir });
  } catch (error) {
    assert.ok(isWasmletError(error), `expected a WasmletError, got ${error}`);
    assert.ok(!error.message.includes("\n"), "one line");
    return error.message;
  }
  assert.fail("expected loading to fail");
}

describe("loadConfig", () => {
  it("fills defaults from the host and documented values", () => {
    const config = load([]);
    assert.equal(config.nodeName, "testhost");
    assert.equal(config.nodeIP, "10.1.2.3");
    assert.equal(config.port, 10250);
    assert.equal(config.maxPods, 500);
    assert.equal(config.nodeLeaseDurationSeconds, 40);
    assert.equal(config.nodeLeaseRenewIntervalMs, 10_000);
    assert.equal(config.tlsBootstrap, true);
    assert.equal(config.allowSelfSigned, false);
    assert.equal(config.kubeconfig, kubeconfig);
    assert.deepEqual(config.reserved, { cpuMillis: 0, memoryBytes: 0, ephemeralStorageBytes: 0 });
    // The kubelet's containerLogMaxSize and containerLogMaxFiles.
    assert.equal(config.containerLogMaxSizeBytes, 10 * 1024 * 1024);
    assert.equal(config.containerLogMaxFiles, 5);
  });

  it("takes flags over environment over file", async () => {
    const file = join(dir, "precedence.yaml");
    await writeFile(file, "nodeName: from-file\nport: 11000\nmaxPods: 42\nnodeLabels: {zone: a}\n");
    const config = load(["--config", file, "--node-name", "from-flag"], {
      WASMLET_NODE_NAME: "from-env",
      WASMLET_PORT: "12000",
    });
    assert.equal(config.nodeName, "from-flag");
    assert.equal(config.port, 12000);
    assert.equal(config.maxPods, 42);
    assert.deepEqual(config.nodeLabels, { zone: "a" });
  });

  it("accumulates repeatable flags and understands boolean switches", () => {
    const config = load([
      "--node-labels",
      "a=1",
      "--node-labels=b=2",
      "--no-tls-bootstrap",
      "--allow-self-signed",
      "--node-lease-renew-interval=2s",
    ]);
    assert.deepEqual(config.nodeLabels, { a: "1", b: "2" });
    assert.equal(config.tlsBootstrap, false);
    assert.equal(config.allowSelfSigned, true);
    assert.equal(config.nodeLeaseRenewIntervalMs, 2000);
  });

  it("resolves relative paths in a config file against the file's directory", async () => {
    const file = join(dir, "paths.yaml");
    await writeFile(file, "kubeconfig: kubeconfig\ndataDir: state\n");
    const result = loadConfig({ argv: ["--config", file], env: {}, host, cwd: "/" });
    assert.equal(result.help, false);
    if (result.help) return;
    assert.equal(result.config.kubeconfig, kubeconfig);
    assert.equal(result.config.dataDir, join(dir, "state"));
  });

  it("takes the registry hosts directory from a flag, the environment or the file", async () => {
    assert.equal(load([]).registryConfigDir, undefined);
    assert.equal(
      load(["--registry-config-dir", "certs.d"]).registryConfigDir,
      join(dir, "certs.d"),
    );
    assert.equal(
      load([], { WASMLET_REGISTRY_CONFIG_DIR: "/etc/wasmlet/certs.d" }).registryConfigDir,
      "/etc/wasmlet/certs.d",
    );
    const file = join(dir, "hosts.yaml");
    await writeFile(file, "registryConfigDir: certs.d\n");
    const result = loadConfig({
      argv: ["--kubeconfig", kubeconfig, "--config", file],
      env: {},
      host,
      cwd: "/",
    });
    assert.equal(result.help, false);
    if (result.help) return;
    assert.equal(result.config.registryConfigDir, join(dir, "certs.d"));
  });

  it("fails with one line naming the option as the user wrote it", async () => {
    assert.match(
      failure(["--kubeconfig", kubeconfig, "--node-ip", "nope"]),
      /^invalid --node-ip: "nope" is not an IP address$/,
    );
    assert.match(
      failure(["--kubeconfig", kubeconfig], { WASMLET_MAX_PODS: "lots" }),
      /^invalid WASMLET_MAX_PODS \(--max-pods\): "lots" is not a whole number$/,
    );
    const file = join(dir, "bad.yaml");
    await writeFile(file, "nodeLeaseRenewInterval: soon\n");
    assert.match(
      failure(["--kubeconfig", kubeconfig, "--config", file]),
      /^invalid nodeLeaseRenewInterval in .*bad\.yaml \(--node-lease-renew-interval\): "soon" is not a duration/,
    );
    await writeFile(file, "nodename: x\n");
    assert.match(
      failure(["--kubeconfig", kubeconfig, "--config", file]),
      /has an unknown key "nodename"/,
    );
    assert.match(
      failure(["--kubeconfig", kubeconfig, "--nodename", "x"]),
      /^unknown option --nodename/,
    );
    assert.match(failure(["--kubeconfig", kubeconfig, "--port"]), /^--port needs a value/);
    assert.match(
      failure(["--kubeconfig", kubeconfig, "--port", "1", "--port", "2"]),
      /given more than once/,
    );
    assert.match(
      failure(["--kubeconfig", join(dir, "missing")]),
      /^invalid --kubeconfig: .*missing does not exist$/,
    );
    assert.match(failure(["--kubeconfig", kubeconfig, "stray"]), /^unexpected argument "stray"/);
  });

  it("checks options that only make sense together", () => {
    assert.match(
      failure(["--kubeconfig", kubeconfig, "--tls-cert-file", kubeconfig]),
      /go together/,
    );
    assert.match(
      failure(["--kubeconfig", kubeconfig, "--no-tls-bootstrap"]),
      /no serving certificate/,
    );
    assert.match(
      failure([
        "--kubeconfig",
        kubeconfig,
        "--node-lease-duration",
        "5",
        "--node-lease-renew-interval",
        "5s",
      ]),
      /must be shorter than --node-lease-duration/,
    );
    assert.match(
      failure(["--kubeconfig", kubeconfig, "--image-gc-low-threshold", "90%"]),
      /--image-gc-low-threshold \(90%\) must be below --image-gc-high-threshold \(85%\)/,
    );
    assert.match(failure([]), /no API server to talk to/);
    const inCluster = loadConfig({
      argv: [],
      env: { KUBERNETES_SERVICE_HOST: "10.0.0.1" },
      host,
      cwd: dir,
    });
    assert.equal(inCluster.help === false && inCluster.config.kubeconfig, undefined);
  });

  it("says when the host offers no default node IP", () => {
    const message = (() => {
      try {
        loadConfig({
          argv: ["--kubeconfig", kubeconfig],
          env: {},
          host: { hostname: () => "h", primaryIP: () => undefined },
          cwd: dir,
        });
      } catch (error) {
        return (error as Error).message;
      }
      return "";
    })();
    assert.match(message, /--node-ip has no default here: the host has no non-loopback address/);
  });

  it("documents every option in --help with its flag, environment variable and file key", () => {
    assert.deepEqual(loadConfig({ argv: ["run", "--help"].slice(1), env: {}, host }), {
      help: true,
    });
    const help = helpText();
    for (const spec of OPTIONS) {
      assert.ok(help.includes(`--${spec.flag}`), `--${spec.flag} documented`);
      assert.ok(help.includes(spec.env), `${spec.env} documented`);
      assert.ok(help.includes(`file key ${spec.fileKey}`), `${spec.fileKey} documented`);
    }
    assert.equal(new Set(OPTIONS.map((o) => o.flag)).size, OPTIONS.length, "flags are unique");
  });
});
