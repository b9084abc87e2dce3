// bench/pods: create→Running latency (p50/p95 over sequential pods, watch-observed) and a burst of
// pods to all Running, on a wasmlet node and on a "floor" node that marks pods Running without
// doing anything — both behind the same API server and scheduler, in the same run. Figures are
// reported as ratios to the floor.
//
//   node bench/pods/index.ts [--pods 100] [--burst 300]
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CoreV1Api, KubeConfig, type V1Pod, Watch } from "@kubernetes/client-node";
import { obtainControlPlaneBinaries } from "../../src/devcluster/binaries.ts";
import { ControlPlane } from "../../src/devcluster/control-plane.ts";
import { demoModule } from "../../src/devcluster/demo-module.ts";
import { freePort } from "../../src/devcluster/ports.ts";
import { LocalRegistry } from "../../src/devcluster/registry.ts";
import { pushWasmArtifact, RegistryClient } from "../../src/images/index.ts";
import { FloorNode } from "./floor-node.ts";

const { values } = parseArgs({
  options: { pods: { type: "string", default: "100" }, burst: { type: "string", default: "300" } },
});
const SEQUENTIAL = Number(values.pods);
const BURST = Number(values.burst);
const BURST_CONCURRENCY = 30;

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const isRunning = (pod: V1Pod) =>
  pod.status?.phase === "Running" &&
  !!pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True");

/** Resolves `waitFor(name)` when the watch sees that pod Running and Ready. */
class RunningWatcher {
  #waiters = new Map<string, () => void>();
  #seen = new Set<string>();
  #abort: AbortController | undefined;
  #stopped = false;

  async start(kc: KubeConfig, namespace: string): Promise<void> {
    if (this.#stopped) return;
    const core = kc.makeApiClient(CoreV1Api);
    const list = await core.listNamespacedPod({ namespace });
    for (const pod of list.items) this.#observe(pod);
    this.#abort = await new Watch(kc).watch(
      `/api/v1/namespaces/${namespace}/pods`,
      { resourceVersion: list.metadata?.resourceVersion },
      (_type, pod: V1Pod) => this.#observe(pod),
      // A watch that ends starts over from a list, so no pod's Running is missed.
      () => setTimeout(() => void this.start(kc, namespace), 100),
    );
  }

  #observe(pod: V1Pod): void {
    const name = pod.metadata?.name ?? "";
    if (!isRunning(pod) || this.#seen.has(name)) return;
    this.#seen.add(name);
    this.#waiters.get(name)?.();
  }

  waitFor(name: string): Promise<void> {
    if (this.#seen.has(name)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.set(name, resolve));
  }

  stop(): void {
    this.#stopped = true;
    this.#abort?.abort();
  }
}

function podFor(name: string, nodeName: string, image: string): V1Pod {
  return {
    metadata: { name },
    spec: {
      nodeSelector: { "kubernetes.io/hostname": nodeName },
      tolerations: [{ key: "wasmlet.io/wasm", operator: "Exists", effect: "NoSchedule" }],
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: "main",
          image,
          imagePullPolicy: "IfNotPresent",
          resources: { limits: { memory: "16Mi" } },
        },
      ],
    },
  };
}

async function measure(kc: KubeConfig, nodeName: string, image: string) {
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = `bench-${nodeName}-${Date.now() % 100000}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  for (let i = 0; ; i++) {
    try {
      await core.createNamespacedPod({ namespace, body: podFor("warmup", nodeName, image) });
      break;
    } catch (error) {
      if (i > 100) throw error;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const watcher = new RunningWatcher();
  await watcher.start(kc, namespace);
  await watcher.waitFor("warmup");
  process.stderr.write(`${nodeName}: warm-up pod running; ${SEQUENTIAL} sequential pods\n`);

  const latencies: number[] = [];
  for (let i = 0; i < SEQUENTIAL; i++) {
    const name = `seq-${i}`;
    const started = performance.now();
    const running = watcher.waitFor(name);
    await core.createNamespacedPod({ namespace, body: podFor(name, nodeName, image) });
    await running;
    latencies.push(performance.now() - started);
  }
  latencies.sort((a, b) => a - b);

  process.stderr.write(`${nodeName}: burst of ${BURST}\n`);
  const burstStarted = performance.now();
  const names = Array.from({ length: BURST }, (_, i) => `burst-${i}`);
  const allRunning = Promise.all(names.map((n) => watcher.waitFor(n)));
  let next = 0;
  await Promise.all(
    Array.from({ length: BURST_CONCURRENCY }, async () => {
      while (next < names.length) {
        const name = names[next++]!;
        await core.createNamespacedPod({ namespace, body: podFor(name, nodeName, image) });
      }
    }),
  );
  await allRunning;
  const burstMs = performance.now() - burstStarted;
  watcher.stop();
  await core.deleteNamespace({ name: namespace }).catch(() => {});
  return { p50: percentile(latencies, 50), p95: percentile(latencies, 95), burstMs };
}

const dir = await mkdtemp(join(tmpdir(), "wasmlet-bench-pods-"));
const { binaries } = await obtainControlPlaneBinaries({
  onProgress: (l) => process.stderr.write(`${l}\n`),
});
const plane = await ControlPlane.start({ binaries, dir: join(dir, "cluster") });
const registry = await LocalRegistry.start({ dir: join(dir, "registry") });
const kc = new KubeConfig();
kc.loadFromFile(plane.kubeconfig);
const floor = new FloorNode(kc);
const wasmletNode = "wasmlet-bench";
const port = await freePort();
const wasmlet = spawn(
  process.execPath,
  [
    new URL("../../src/cli/main.ts", import.meta.url).pathname,
    "run",
    `--kubeconfig=${plane.kubeconfig}`,
    `--node-name=${wasmletNode}`,
    "--node-ip=127.0.0.1",
    "--address=127.0.0.1",
    `--port=${port}`,
    `--data-dir=${join(dir, "wasmlet")}`,
    "--allow-self-signed",
    "--tls-bootstrap=false",
    `--log-level=${process.env.WASMLET_BENCH_LOG_LEVEL ?? "warn"}`,
  ],
  { stdio: ["ignore", "inherit", "inherit"] },
);
try {
  const image = `${registry.address}/bench/ticker:v1`;
  await pushWasmArtifact(demoModule("bench", 60_000), image, { client: new RegistryClient() });
  await floor.start();
  const floorResult = await measure(kc, floor.name, image);
  const wasmletResult = await measure(kc, wasmletNode, image);
  const row = (label: string, f: number, w: number) =>
    `| ${label} | ${f.toFixed(1)} ms | ${w.toFixed(1)} ms | +${(w - f).toFixed(1)} ms | ${(w / f).toFixed(2)}× |`;
  console.log(
    `\ncreate→Running, ${SEQUENTIAL} sequential pods; burst of ${BURST} (${BURST_CONCURRENCY} creates in flight)\n`,
  );
  console.log("| measure | floor node | wasmlet | difference | ratio |\n|---|---|---|---|---|");
  console.log(row("p50 latency", floorResult.p50, wasmletResult.p50));
  console.log(row("p95 latency", floorResult.p95, wasmletResult.p95));
  console.log(row(`burst ${BURST} to Running`, floorResult.burstMs, wasmletResult.burstMs));
} finally {
  wasmlet.kill("SIGTERM");
  await new Promise((r) => wasmlet.once("exit", r));
  await floor.stop();
  await Promise.allSettled([plane.stop(), registry.stop()]);
  await rm(dir, { recursive: true, force: true });
}
