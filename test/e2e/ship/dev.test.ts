// `wasmlet dev` as a newcomer runs it: `--detach` returns once the node is Ready and the demo pod
// Running, prints an `export KUBECONFIG=` line that real kubectl works with, and `wasmlet dev stop`
// leaves no process behind. Every cluster here has its own state directory, registry port and
// kubelet port, so a developer's own dev cluster (ports 5000 and 10250) is never touched. With the
// control-plane cache warm (the test bed's global setup sees to it) no Go build happens: a `go` that
// records being called is first on PATH.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import { freePort } from "../../../src/devcluster/ports.ts";
import { KUBERNETES_VERSION } from "../../../src/devcluster/versions.ts";
import { eventually, kubectl, kubectlOk } from "../../support/cluster.ts";
import { killLeftovers, processesMentioning, ROOT, spawnWasmlet, wasmlet } from "./support.ts";

let base: string;
let env: NodeJS.ProcessEnv;
let goCalls: string;

before(async () => {
  base = await mkdtemp(join(tmpdir(), "wasmlet-ship-dev-"));
  const fakeBin = join(base, "bin");
  await mkdir(fakeBin);
  goCalls = join(base, "go-was-called");
  await writeFile(join(fakeBin, "go"), `#!/bin/sh\necho "$@" >> ${goCalls}\nexit 1\n`);
  await chmod(join(fakeBin, "go"), 0o755);
  env = {
    ...process.env,
    PATH: [fakeBin, join(ROOT, "node_modules/.bin"), process.env.PATH].join(":"),
  };
});

after(async () => {
  // Only if a test failed half-way: its clusters' processes all name a directory under `base`.
  await killLeftovers(base);
  await rm(base, { recursive: true, force: true });
});

async function stateDir(name: string): Promise<string> {
  const dir = join(base, name);
  await mkdir(dir);
  return dir;
}

function exportedKubeconfig(stdout: string): string {
  const match = /^export KUBECONFIG=(\S+)$/m.exec(stdout);
  assert.ok(match, `no "export KUBECONFIG=" line in:\n${stdout}`);
  return match[1] as string;
}

async function nodes(kubeconfig: string): Promise<V1Node[]> {
  return JSON.parse(await kubectlOk(["get", "nodes", "-o", "json"], { kubeconfig })).items;
}

function internalIP(node: V1Node): string | undefined {
  return node.status?.addresses?.find((a) => a.type === "InternalIP")?.address;
}

async function stop(dir: string): Promise<void> {
  const stopped = await wasmlet(["dev", "stop", "--state-dir", dir], { env, timeoutMs: 90_000 });
  assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
  assert.match(stopped.stdout, /wasmlet dev stopped/);
  assert.deepEqual(await processesMentioning(dir), [], "processes left after `wasmlet dev stop`");
  assert.equal(existsSync(join(dir, "status.json")), false);
}

describe("wasmlet dev", () => {
  it("--detach: the printed KUBECONFIG shows a Ready node and the demo pod running with logs; stop ends it all", async () => {
    const dir = await stateDir("one");
    const [registryPort, port] = [await freePort(), await freePort()];
    const started = await wasmlet(
      [
        "dev",
        "--detach",
        "--state-dir",
        dir,
        "--registry-port",
        String(registryPort),
        "--port",
        String(port),
      ],
      { env, timeoutMs: 150_000 },
    );
    assert.equal(started.code, 0, started.stdout + started.stderr);
    const kubeconfig = exportedKubeconfig(started.stdout);
    assert.match(started.stdout, /wasmlet dev is up in [\d.]+ s: wasmlet-dev on Kubernetes v1\./);
    // Commands to paste, as this checkout runs wasmlet (the installed bin would say `wasmlet`).
    // The registry port asked for may have been taken meanwhile (tests run side by side): then
    // dev says so and prints the one it took.
    const push = /npm run wasmlet -- push app\.wasm localhost:(\d+)\/app:v1/.exec(started.stdout);
    assert.ok(push, started.stdout);
    if (Number(push[1]) !== registryPort)
      assert.match(started.stdout + started.stderr, new RegExp(`port ${registryPort} is taken`));
    assert.ok(
      started.stdout.includes(`Stop it with: npm run wasmlet -- dev stop --state-dir ${dir}`),
    );
    assert.equal(existsSync(goCalls), false, "the warm cache must not need Go");

    const table = await kubectlOk(["get", "nodes", "--no-headers"], { kubeconfig });
    assert.match(table, /^wasmlet-dev\s+Ready\s/m, table);
    const [node, ...others] = await nodes(kubeconfig);
    assert.equal(others.length, 0);
    assert.equal(internalIP(node as V1Node), "127.0.0.1");
    assert.equal(node?.status?.daemonEndpoints?.kubeletEndpoint?.Port, port);

    const pod: V1Pod = JSON.parse(
      await kubectlOk(["get", "pod", "hello", "-o", "json"], { kubeconfig }),
    );
    assert.equal(pod.status?.phase, "Running");
    assert.equal(pod.spec?.runtimeClassName, "wasm");
    assert.equal(pod.spec?.nodeName, "wasmlet-dev");
    const logs = await eventually(async () => {
      const result = await kubectl(["logs", "hello"], { kubeconfig });
      return result.code === 0 && result.stdout.includes("Hello from WebAssembly") && result;
    }, "the demo pod's logs");
    assert.match(logs.stdout, /^Hello from WebAssembly on wasmlet!/m);

    const again = await wasmlet(["dev", "--detach", "--state-dir", dir], { env });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /a wasmlet dev cluster is already running \(pid \d+\)/);
    assert.ok(again.stderr.includes(`npm run wasmlet -- dev stop --state-dir ${dir}`));

    await stop(dir);
    const gone = await kubectl(["get", "nodes"], { kubeconfig, timeoutMs: 15_000 });
    assert.notEqual(gone.code, 0, "the API server still answers after stop");
    const twice = await wasmlet(["dev", "stop", "--state-dir", dir], { env });
    assert.equal(twice.code, 0);
    assert.match(twice.stdout, /no wasmlet dev cluster is running/);
  });

  it("--nodes 2: two Ready nodes on 127.0.0.1 and 127.0.0.2; a kubelet port taken on one address is replaced there", async () => {
    const dir = await stateDir("two");
    const [registryPort, port] = [await freePort(), await freePort()];
    // Something else (say, another cluster's node) holds the port on 127.0.0.2 only.
    const squatter: Server = createServer();
    await new Promise<void>((resolve, reject) => {
      squatter.once("error", reject);
      squatter.listen(port, "127.0.0.2", resolve);
    });
    try {
      const started = await wasmlet(
        [
          "dev",
          "--detach",
          "--nodes",
          "2",
          "--no-demo",
          `--state-dir=${dir}`,
          `--registry-port=${registryPort}`,
          `--port=${port}`,
        ],
        { env, timeoutMs: 150_000 },
      );
      assert.equal(started.code, 0, started.stdout + started.stderr);
      const kubeconfig = exportedKubeconfig(started.stdout);
      assert.match(started.stdout, /wasmlet-dev-1, wasmlet-dev-2/);

      const table = await kubectlOk(["get", "nodes", "--no-headers"], { kubeconfig });
      assert.match(table, /^wasmlet-dev-1\s+Ready\s/m, table);
      assert.match(table, /^wasmlet-dev-2\s+Ready\s/m, table);
      const byName = new Map((await nodes(kubeconfig)).map((n) => [n.metadata?.name, n]));
      assert.equal(byName.size, 2);
      const first = byName.get("wasmlet-dev-1") as V1Node;
      const second = byName.get("wasmlet-dev-2") as V1Node;
      assert.equal(internalIP(first), "127.0.0.1");
      assert.equal(internalIP(second), "127.0.0.2");
      assert.equal(first.status?.daemonEndpoints?.kubeletEndpoint?.Port, port);
      const replaced = second.status?.daemonEndpoints?.kubeletEndpoint?.Port;
      assert.ok(replaced && replaced !== port, `node 2 advertises port ${replaced}`);
      assert.match(
        await readFile(join(dir, "dev.log"), "utf8"),
        new RegExp(`wasmlet-dev-2: port 127\\.0\\.0\\.2:${port} is taken: using ${replaced}`),
      );
      const demo = await kubectl(["get", "pod", "hello"], { kubeconfig });
      assert.notEqual(demo.code, 0, "--no-demo must not start the demo pod");
      assert.match(demo.stderr, /NotFound|not found/);

      await stop(dir);
    } finally {
      squatter.close();
    }
  });

  it("with no cached control plane it says how it gets one and how long that takes, and fails cleanly", async () => {
    const dir = await stateDir("cold");
    const cache = join(dir, "empty-cache");
    const bin = join(dir, "bin");
    await mkdir(bin);
    // A Go that fails at once: the message comes before any build starts.
    await writeFile(join(bin, "go"), "#!/bin/sh\necho 'go: no network here' >&2\nexit 1\n");
    await chmod(join(bin, "go"), 0o755);
    const { WASMLET_KUBE_BIN_DIR: _ignored, ...rest } = env;
    const result = await wasmlet(
      [
        "dev",
        `--state-dir=${dir}`,
        `--registry-port=${await freePort()}`,
        `--port=${await freePort()}`,
      ],
      { env: { ...rest, XDG_CACHE_HOME: cache, PATH: `${bin}:${env.PATH}` }, timeoutMs: 60_000 },
    );
    assert.equal(result.code, 1, result.stdout + result.stderr);
    const binDir = join(cache, "wasmlet", "kubernetes", KUBERNETES_VERSION);
    assert.ok(
      result.stdout.includes(`not cached in ${binDir}: building them from the Go module proxy.`),
      result.stdout,
    );
    assert.match(result.stdout, /A first build takes about 10 minutes on 2 cores/);
    assert.match(result.stdout, /✗ control-plane binaries/);
    assert.match(result.stderr, /^wasmlet dev: .*go mod download/m);
    assert.match(result.stderr, new RegExp(`see ${binDir}/build\\.log`));
    assert.deepEqual(await processesMentioning(dir), []);
    assert.equal(existsSync(join(dir, "status.json")), false);
  });

  it("Ctrl-C while the cluster is starting stops what started and leaves nothing behind", async () => {
    const dir = await stateDir("interrupted");
    const [registryPort, port] = [await freePort(), await freePort()];
    const dev = spawnWasmlet(
      [
        "dev",
        "--no-demo",
        `--state-dir=${dir}`,
        `--registry-port=${registryPort}`,
        `--port=${port}`,
      ],
      env,
    );
    // Interrupt while the control plane is coming up: the step in progress still finishes.
    await eventually(
      async () => dev.output().includes("… control plane"),
      "the control-plane step to begin",
      60_000,
      20,
    );
    dev.child.kill("SIGINT");
    const exit = await Promise.race([
      dev.exited,
      new Promise<"hung">((resolve) => setTimeout(() => resolve("hung"), 60_000).unref()),
    ]);
    assert.notEqual(exit, "hung", `wasmlet dev did not exit after Ctrl-C:\n${dev.output()}`);
    assert.deepEqual(exit, { code: 130, signal: null }, dev.output());
    assert.match(dev.output(), /stopping wasmlet dev…/);
    assert.match(dev.output(), /wasmlet dev stopped/);
    assert.doesNotMatch(dev.output(), /local OCI registry/, "no step may start after Ctrl-C");
    assert.deepEqual(await processesMentioning(dir), [], "processes left after Ctrl-C");
    assert.equal(existsSync(join(dir, "status.json")), false);
  });
});
