// `wasmlet dev` as a newcomer runs it: `--detach` returns once the node is Ready and the demo pod
// Running, prints an `export KUBECONFIG=` line that real kubectl works with, `kubectl top` answers
// (metrics-server) and a web server pod serves its pod IP; `wasmlet dev stop` leaves no process
// behind. Every cluster here has its own state directory, registry port and kubelet port, so a
// developer's own dev cluster (ports 5000 and 10250) is never touched. With the control-plane and
// metrics-server caches warm (the test bed's global setup and CI's prepare step see to it) no Go
// build happens: a `go` that records being called is first on PATH.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import { devPodCidr } from "../../../src/cli/dev.ts";
import { METRICS_SERVER_VERSION } from "../../../src/devcluster/metrics-server.ts";
import { freePort } from "../../../src/devcluster/ports.ts";
import { KUBERNETES_VERSION } from "../../../src/devcluster/versions.ts";
import { eventually, kubectl, kubectlOk, testCluster } from "../../support/cluster.ts";
import { buildGuest } from "../../support/guests.ts";
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

/** Rows of a `kubectl top … --no-headers` table, by name. */
function topRows(output: string): Map<string, string[]> {
  return new Map(
    output
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((line) => {
        const [name, ...columns] = line.trim().split(/\s+/);
        return [name as string, columns];
      }),
  );
}

/** `kubectl top ARGS` once it answers with a row for each of `names`, polled until `deadline`. */
async function topOnceListed(
  kubeconfig: string,
  args: string[],
  names: string[],
  deadline: number,
): Promise<Map<string, string[]>> {
  return eventually(
    async () => {
      const result = await kubectl(["top", ...args, "--no-headers"], { kubeconfig });
      const rows = result.code === 0 ? topRows(result.stdout) : undefined;
      return rows && names.every((n) => rows.has(n)) ? rows : undefined;
    },
    `kubectl top ${args.join(" ")} listing ${names.join(", ")}`,
    Math.max(0, deadline - Date.now()),
    1000,
  );
}

async function stop(dir: string): Promise<void> {
  const stopped = await wasmlet(["dev", "stop", "--state-dir", dir], { env, timeoutMs: 90_000 });
  assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
  assert.match(stopped.stdout, /wasmlet dev stopped/);
  assert.deepEqual(await processesMentioning(dir), [], "processes left after `wasmlet dev stop`");
  assert.equal(existsSync(join(dir, "status.json")), false);
}

describe("wasmlet dev", () => {
  it("--detach: the printed KUBECONFIG shows a Ready node, the demo pod running with logs, kubectl top and a web pod at its IP; stop ends it all", async (t) => {
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
    const ready = Date.now();
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

    // metrics-server: its own steps (from the cache), then `kubectl top` for the node and the demo
    // pod within a minute of "ready" (its first numbers need two scrapes, 15 s apart).
    const devLog = await readFile(join(dir, "dev.log"), "utf8");
    assert.match(
      devLog,
      new RegExp(`✓ metrics-server binary \\(${METRICS_SERVER_VERSION}\\) \\([\\d.]+ s\\)`),
    );
    assert.match(devLog, /✓ metrics-server serving kubectl top \([\d.]+ s\)/);
    assert.match(started.stdout, /^ {2}kubectl top pods {2,}# CPU and memory, every 15 s$/m);
    const apiService = JSON.parse(
      await kubectlOk(["get", "apiservice", "v1beta1.metrics.k8s.io", "-o", "json"], {
        kubeconfig,
      }),
    ) as { status?: { conditions?: Array<{ type: string; status: string }> } };
    assert.ok(
      apiService.status?.conditions?.some((c) => c.type === "Available" && c.status === "True"),
      JSON.stringify(apiService.status),
    );
    const topNodes = await topOnceListed(kubeconfig, ["nodes"], ["wasmlet-dev"], ready + 60_000);
    const nodesAfter = Date.now() - ready;
    const [cpu, cpuPercent, memory, memoryPercent] = topNodes.get("wasmlet-dev") as string[];
    assert.match(String(cpu), /^\d+m?$/);
    assert.match(String(cpuPercent), /^\d+%$/);
    assert.match(String(memory), /^[1-9]\d*(Ki|Mi|Gi)$/, "the node's memory");
    assert.match(String(memoryPercent), /^\d+%$/);
    const topPods = await topOnceListed(kubeconfig, ["pods"], ["hello"], ready + 60_000);
    const podsAfter = Date.now() - ready;
    const [podCpu, podMemory] = topPods.get("hello") as string[];
    assert.match(String(podCpu), /^\d+m$/);
    // kubectl rounds to whole Mi: a 300-byte guest's linear memory shows as 0Mi.
    assert.match(String(podMemory), /^\d+Mi$/);
    t.diagnostic(
      `kubectl top nodes answered ${(nodesAfter / 1000).toFixed(1)} s after ready, kubectl top pods ${(podsAfter / 1000).toFixed(1)} s after`,
    );

    // A pod like nginx-wasm.yaml (RuntimeClass wasm, a web server image, containerPort 8080),
    // pushed the way the summary says, answers at its pod IP from the node's 127.100/16 block.
    const image = `localhost:${push[1]}/e2e/c-server:v1`;
    const pushed = await wasmlet(["push", await buildGuest("c-server"), image], { env });
    assert.equal(pushed.code, 0, pushed.stdout + pushed.stderr);
    await kubectlOk(["apply", "-f", "-"], {
      kubeconfig,
      input: JSON.stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "web", labels: { app: "web" } },
        spec: {
          runtimeClassName: "wasm",
          containers: [{ name: "web", image, ports: [{ name: "http", containerPort: 8080 }] }],
        },
      }),
    });
    const web = await eventually(
      async () => {
        const found: V1Pod = JSON.parse(
          await kubectlOk(["get", "pod", "web", "-o", "json"], { kubeconfig }),
        );
        return found.status?.phase === "Running" && found.status.podIP ? found : undefined;
      },
      "the web pod Running with a pod IP",
      60_000,
      250,
    );
    const podIP = web.status?.podIP as string;
    const block = devPodCidr(0).split(".").slice(0, 2).join("\\.");
    assert.match(podIP, new RegExp(`^${block}\\.\\d+\\.\\d+$`));
    assert.equal(web.status?.hostIP, "127.0.0.1");
    const response = await fetch(`http://${podIP}:8080/`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "hello from c, connection 1\n");

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

  it("--nodes 2 --no-metrics-server: two Ready nodes on 127.0.0.1 and 127.0.0.2, no Metrics API; a kubelet port taken on one address is replaced there", async () => {
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
          "--no-metrics-server",
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
      assert.doesNotMatch(await readFile(join(dir, "dev.log"), "utf8"), /metrics-server/);
      assert.doesNotMatch(started.stdout, /kubectl top/);
      const top = await kubectl(["top", "nodes"], { kubeconfig });
      assert.notEqual(top.code, 0, "--no-metrics-server must leave the Metrics API out");
      assert.match(top.stderr, /Metrics API not available/);
      assert.deepEqual(
        (await processesMentioning(dir)).filter((p) =>
          p.command.split(" ")[0]?.endsWith("/metrics-server"),
        ),
        [],
      );

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

  it("with no cached metrics-server it says how it gets one and how long that takes, and fails cleanly", async () => {
    const dir = await stateDir("cold-metrics-server");
    const cache = join(dir, "empty-cache");
    const bin = join(dir, "bin");
    await mkdir(bin);
    await writeFile(join(bin, "go"), "#!/bin/sh\necho 'go: no network here' >&2\nexit 1\n");
    await chmod(join(bin, "go"), 0o755);
    const { WASMLET_METRICS_SERVER: _ignored, ...rest } = env;
    const result = await wasmlet(
      [
        "dev",
        `--state-dir=${dir}`,
        `--registry-port=${await freePort()}`,
        `--port=${await freePort()}`,
      ],
      {
        env: {
          ...rest,
          // The control plane is found (the test bed's binaries); metrics-server is not.
          WASMLET_KUBE_BIN_DIR: testCluster().binDir,
          XDG_CACHE_HOME: cache,
          PATH: `${bin}:${env.PATH}`,
        },
        timeoutMs: 60_000,
      },
    );
    assert.equal(result.code, 1, result.stdout + result.stderr);
    const binDir = join(cache, "wasmlet", "metrics-server", METRICS_SERVER_VERSION);
    assert.match(result.stdout, /✓ control-plane binaries/);
    assert.ok(
      result.stdout.includes(`not cached in ${binDir}: building it from the Go module proxy.`),
      result.stdout,
    );
    assert.match(result.stdout, /A first build takes about 10 minutes on 2 cores/);
    assert.match(result.stdout, /✗ metrics-server binary/);
    assert.doesNotMatch(result.stdout, /control plane: etcd/, "no cluster starts without it");
    assert.match(
      result.stderr,
      /^wasmlet dev: building metrics-server v[\d.]+ failed: go mod exited/m,
    );
    assert.ok(result.stderr.includes(`see ${binDir}/build.log`), result.stderr);
    assert.match(result.stderr, /`--no-metrics-server` starts the cluster without it/);
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
