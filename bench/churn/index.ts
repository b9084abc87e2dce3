// bench/churn: does wasmlet give back what pods took? One node on a real control plane runs
// --cycles cycles of --pods pods; each pod is the toolbox guest serving a containerPort (an echo
// server) with an emptyDir and a configMap volume, and writes a log line. Every pod gets a TCP
// connection that echoes a message, every tenth pod a `kubectl exec`; then all are deleted. After
// each cycle (pods gone, a full GC forced over the inspector) the wasmlet process is sampled: RSS,
// live JS heap, descriptors, threads, files under its data directory. The target: no growth from
// cycle 2 on (within 10 %), cycle 1 being the baseline that brings every lazily made part into being.
//
//   node bench/churn/index.ts [--cycles 10] [--pods 200] [--snapshots DIR]
import { execFile, spawn } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs, promisify } from "node:util";
import { obtainControlPlaneBinaries } from "../../src/devcluster/binaries.ts";
import { ControlPlane } from "../../src/devcluster/control-plane.ts";
import { freePort } from "../../src/devcluster/ports.ts";
import { LocalRegistry } from "../../src/devcluster/registry.ts";
import { pushWasmArtifact, RegistryClient } from "../../src/images/index.ts";
import { KubeClient } from "../../src/kube/client.ts";
import { buildGuest } from "../../test/support/guests.ts";
import { forceGc, takeHeapSnapshot } from "../support/inspector.ts";

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    cycles: { type: "string", default: "10" },
    pods: { type: "string", default: "200" },
    // a directory to write a heap snapshot of wasmlet into after each cycle, for leak hunts (taking
    // one leaves the process's RSS far larger: the RSS column is then no measure)
    snapshots: { type: "string" },
  },
});
const CYCLES = Number(values.cycles);
const PODS = Number(values.pods);
const NODE = "wasmlet-churn";
const NS = "churn";
const MiB = 2 ** 20;
const started = performance.now();
const say = (line: string) =>
  process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0)} s] ${line}\n`);

const dir = await mkdtemp(join(tmpdir(), "wasmlet-bench-churn-"));
const { binaries } = await obtainControlPlaneBinaries({ onProgress: say });
const plane = await ControlPlane.start({ binaries, dir: join(dir, "cluster"), onProgress: say });
const registry = await LocalRegistry.start({ dir: join(dir, "registry") });
const kube = KubeClient.create({ kubeconfig: plane.kubeconfig, apiRequestTimeoutMs: 120_000 });
const kubectl = (...args: string[]) =>
  run(process.env.KUBECTL ?? "kubectl", ["--kubeconfig", plane.kubeconfig, ...args], {
    maxBuffer: 64 * MiB,
  });
const image = `${registry.address}/bench/toolbox:1`;
await pushWasmArtifact(readFileSync(await buildGuest("toolbox")), image, {
  client: new RegistryClient(),
});
await kubectl(
  "apply",
  "-f",
  new URL("../../manifests/runtimeclass.yaml", import.meta.url).pathname,
);
await kubectl("create", "namespace", NS);
await kubectl("-n", NS, "create", "configmap", "settings", "--from-literal=greeting=hi");

const inspectPort = await freePort();
const dataDir = join(dir, "wasmlet");
const logFd = openSync(join(dir, "wasmlet.log"), "a");
const wasmlet = spawn(
  process.execPath,
  [
    `--inspect=127.0.0.1:${inspectPort}`,
    new URL("../../src/cli/main.ts", import.meta.url).pathname,
    "run",
    `--bootstrap-kubeconfig=${plane.bootstrapKubeconfig}`,
    `--kubeconfig=${join(dataDir, "kubeconfig")}`,
    `--node-name=${NODE}`,
    "--node-ip=127.0.0.1",
    "--address=127.0.0.1",
    `--port=${await freePort()}`,
    `--healthz-port=${await freePort()}`,
    `--data-dir=${dataDir}`,
    "--allow-self-signed",
    "--no-tls-bootstrap",
    "--pod-network=pod-cidr",
    "--pod-cidr=127.120.0.0/16",
    "--max-pods=1000",
    "--log-level=warn",
  ],
  { stdio: ["ignore", logFd, logFd] },
);
closeSync(logFd);
process.once("exit", () => wasmlet.kill("SIGKILL"));

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  ms = 300_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}

function countFiles(path: string): number {
  let n = 0;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (entry.isDirectory()) n += countFiles(join(path, entry.name));
    else n++;
  }
  return n;
}

interface Sample {
  rssMiB: number;
  heapMiB: number;
  fds: number;
  threads: number;
  files: number;
}

async function sample(): Promise<Sample> {
  const heap = await forceGc(inspectPort);
  await sleep(2000);
  const status = readFileSync(`/proc/${wasmlet.pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1]);
  return {
    rssMiB: field("VmRSS") / 1024,
    heapMiB: heap / MiB,
    fds: readdirSync(`/proc/${wasmlet.pid}/fd`).length,
    threads: field("Threads"),
    files: statSync(dataDir, { throwIfNoEntry: false }) ? countFiles(dataDir) : 0,
  };
}

function echo(ip: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: ip, port: 7000 });
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no echo from ${ip}`)));
    socket.on("data", () => {
      socket.end();
      resolve();
    });
    socket.on("error", reject);
    socket.write("ping\n");
  });
}

async function cycle(n: number): Promise<void> {
  const names = Array.from({ length: PODS }, (_, i) => `c${n}-${i}`);
  for (let i = 0; i < names.length; i += 25) {
    await Promise.all(
      names.slice(i, i + 25).map((name) =>
        kube.core.createNamespacedPod({
          namespace: NS,
          body: {
            metadata: { name, labels: { app: "churn" } },
            spec: {
              runtimeClassName: "wasm",
              terminationGracePeriodSeconds: 1,
              volumes: [
                { name: "scratch", emptyDir: {} },
                { name: "settings", configMap: { name: "settings" } },
              ],
              containers: [
                {
                  name: "main",
                  image,
                  ports: [{ containerPort: 7000 }],
                  volumeMounts: [
                    { name: "scratch", mountPath: "/scratch" },
                    { name: "settings", mountPath: "/settings" },
                  ],
                },
              ],
            },
          },
        }),
      ),
    );
  }
  const ips = await until(`${PODS} pods Running`, async () => {
    const list = await kube.core.listNamespacedPod({ namespace: NS, labelSelector: "app=churn" });
    const running = list.items.filter((p) => p.status?.phase === "Running" && p.status.podIP);
    return running.length === PODS ? running.map((p) => p.status!.podIP!) : undefined;
  });
  for (let i = 0; i < ips.length; i += 25) await Promise.all(ips.slice(i, i + 25).map(echo));
  for (const name of names.filter((_, i) => i % 10 === 0))
    await kubectl("-n", NS, "exec", name, "--", "toolbox", "echo", "hello");
  await kubectl("-n", NS, "delete", "pods", "-l", "app=churn", "--wait=true", "--timeout=10m");
}

const rows: string[] = [];
let baseline: Sample | undefined;
try {
  await until("the node Ready", async () => {
    const node = await kube.core.readNode({ name: NODE });
    return node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
      ? true
      : undefined;
  });
  const before = await sample();
  rows.push(row("before any pod", before));
  for (let n = 1; n <= CYCLES; n++) {
    const t0 = performance.now();
    await cycle(n);
    const s = await sample();
    if (values.snapshots)
      await takeHeapSnapshot(inspectPort, join(values.snapshots, `cycle-${n}.heapsnapshot`));
    baseline ??= s;
    rows.push(row(`after cycle ${n} (${((performance.now() - t0) / 1000).toFixed(0)} s)`, s));
    say(rows.at(-1)!);
  }
} finally {
  wasmlet.kill("SIGTERM");
  await Promise.allSettled([plane.stop(), registry.stop()]);
  await rm(dir, { recursive: true, force: true });
}

function row(label: string, s: Sample): string {
  const growth = (now: number, base: number | undefined) =>
    base === undefined || label.startsWith("after cycle 1 ") || label === "before any pod"
      ? ""
      : ` (${now >= base ? "+" : ""}${(((now - base) / base) * 100).toFixed(0)} %)`;
  return `| ${label} | ${s.rssMiB.toFixed(0)} MiB${growth(s.rssMiB, baseline?.rssMiB)} | ${s.heapMiB.toFixed(1)} MiB${growth(s.heapMiB, baseline?.heapMiB)} | ${s.fds} | ${s.threads} | ${s.files} |`;
}

const last = rows.length > 2 ? rows.at(-1) : undefined;
console.log(
  `| ${PODS} pods a cycle | RSS | live heap | descriptors | threads | data-dir files |\n|---|---|---|---|---|---|\n${rows.join("\n")}`,
);
if (last) console.log(`\nTarget: no growth past 10 % of cycle 1 from cycle 2 on.`);
