// bench/density: how many idle pods one wasmlet node holds and what they cost it. Starts a real
// control plane, a local registry with an idle guest (the demo module: it prints one line, then
// sleeps an hour) and ONE wasmlet node with a raised pod capacity; measures the wasmlet process
// (RSS, CPU share of one core over 10 s, threads, descriptors, mappings) before any pod exists,
// then grows the node to --pods idle pods (and on to --also, e.g. 5000, in the same run), waits
// until all are Running, lets them settle and measures again. While pods are created it watches
// every stage — create (API server), bind (scheduler), Running (wasmlet) — and samples the CPU of
// every component, wasmlet's event loop and its Lease, to tell which one limits. Deletes all pods
// at the end (timed), tears everything down and prints one markdown table, every figure beside its
// baseline from the same run. wasmlet runs with --inspect on loopback (one more thread, a few fds)
// only so that a full GC can be forced after each measurement: its live heap, and what it still
// holds once every pod is gone.
//
//   node bench/density/index.ts [--pods 1000] [--also 5000] [--also-max-minutes 8]
//
// --also grows the same node from --pods to that many pods (the step adds the difference); it is
// skipped when the run has already taken longer than --also-max-minutes by then.
import { execFileSync, spawn } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { request } from "node:https";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { CoordinationV1Api, KubeConfig, type V1Pod, Watch } from "@kubernetes/client-node";
import { obtainControlPlaneBinaries } from "../../src/devcluster/binaries.ts";
import { ControlPlane } from "../../src/devcluster/control-plane.ts";
import { demoModule } from "../../src/devcluster/demo-module.ts";
import { freePort } from "../../src/devcluster/ports.ts";
import { LocalRegistry } from "../../src/devcluster/registry.ts";
import { pushWasmArtifact, RegistryClient } from "../../src/images/index.ts";
import { statusCode } from "../../src/kube/api-error.ts";
import { KubeClient } from "../../src/kube/client.ts";
import { forceGc as forceGcOver } from "../support/inspector.ts";

const { values } = parseArgs({
  options: {
    pods: { type: "string", default: "1000" },
    also: { type: "string" },
    "also-max-minutes": { type: "string", default: "8" },
    "max-pods": { type: "string", default: "6000" },
  },
});
const TARGETS = [Number(values.pods), ...(values.also ? [Number(values.also)] : [])];
const ALSO_MAX_MS = Number(values["also-max-minutes"]) * 60_000;
const MAX_PODS = Number(values["max-pods"]);
const CONCURRENCY = 50;
const SETTLE_MS = 20_000;
const CPU_WINDOW_MS = 10_000;
/** No new pod Running (or gone, when deleting) for this long: the rest are reported as stuck. */
const STALL_MS = 180_000;
const NAMESPACE = "density";
const NODE_NAME = "wasmlet-density";
const MiB = 1024 * 1024;
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

if (
  TARGETS.some((n) => !Number.isInteger(n) || n <= 0) ||
  TARGETS.some((n, i) => n <= (TARGETS[i - 1] ?? 0))
) {
  throw new Error(
    `--pods and --also must be increasing positive integers, got ${TARGETS.join(", ")}`,
  );
}

const runStarted = performance.now();
const elapsed = () => `${((performance.now() - runStarted) / 1000).toFixed(1)} s`;
const say = (line: string) => process.stderr.write(`[${elapsed()}] ${line}\n`);
const load1 = () => loadavg()[0]!.toFixed(2);
const loadAll = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" / ");

// ---------------------------------------------------------------------------------------------
// /proc

interface ProcSample {
  rssKiB: number;
  hwmKiB: number;
  vmSizeKiB: number;
  threads: number;
  fds: number;
  maps: number;
  ticks: number;
}

function statusField(status: string, name: string): number {
  const match = new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status);
  return match ? Number(match[1]) : Number.NaN;
}

/** utime + stime of a process (all its threads), in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  return Number(fields[11]) + Number(fields[12]);
}

function sampleProc(pid: number): ProcSample {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return {
    rssKiB: statusField(status, "VmRSS"),
    hwmKiB: statusField(status, "VmHWM"),
    vmSizeKiB: statusField(status, "VmSize"),
    threads: statusField(status, "Threads"),
    fds: readdirSync(`/proc/${pid}/fd`).length,
    maps: readFileSync(`/proc/${pid}/maps`, "utf8").split("\n").length - 1,
    ticks: cpuTicks(pid),
  };
}

/** The control-plane components (and the registry): our direct children, by command name. */
function componentPids(): Record<string, number> {
  const found: Record<string, number> = {};
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== process.pid) continue;
      if (comm.startsWith("kube-controller")) found["kube-controller-manager"] = Number(entry);
      else if (["kube-apiserver", "kube-scheduler", "etcd"].includes(comm))
        found[comm] = Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

type Ticks = Record<string, number>;

/** Busy clock ticks of the whole host, all cores summed (everything but idle and iowait). */
function hostBusyTicks(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = values.reduce((a, b) => a + b, 0);
  return total - values[3]! - values[4]!;
}

/** CPU of the processes measured here (host excluded). */
const measured = (cpu: Ticks) =>
  Object.entries(cpu)
    .filter(([name]) => name !== "host")
    .reduce((sum, [, v]) => sum + (Number.isFinite(v) ? v : 0), 0);

function ticksOf(pids: Record<string, number>): Ticks {
  const out: Ticks = {};
  for (const [name, pid] of Object.entries(pids)) {
    try {
      out[name] = cpuTicks(pid);
    } catch {
      out[name] = Number.NaN;
    }
  }
  out.bench = ((process.cpuUsage().user + process.cpuUsage().system) / 1e6) * CLK_TCK;
  out.host = hostBusyTicks();
  return out;
}

/** CPU share of one core (0.05 = 5 %) per process between two tick samples `ms` apart. */
function shares(before: Ticks, after: Ticks, ms: number): Ticks {
  const out: Ticks = {};
  for (const name of Object.keys(before))
    out[name] = ((after[name]! - before[name]!) / CLK_TCK) * (1000 / ms);
  return out;
}

// ---------------------------------------------------------------------------------------------
// wasmlet's /metrics (kubelet API, as a cluster admin)

type Metrics = Map<string, number>;

function scrapeMetrics(port: number, cert: Buffer, key: Buffer): Promise<Metrics> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path: "/metrics",
        cert,
        key,
        rejectUnauthorized: false,
        timeout: 15_000,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () => {
          if (res.statusCode !== 200) {
            reject(new Error(`/metrics answered ${res.statusCode}: ${body.slice(0, 200)}`));
            return;
          }
          const metrics: Metrics = new Map();
          for (const line of body.split("\n")) {
            if (!line || line.startsWith("#")) continue;
            const space = line.lastIndexOf(" ");
            metrics.set(line.slice(0, space), Number(line.slice(space + 1)));
          }
          resolve(metrics);
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("/metrics timed out after 15 s")));
    req.on("error", reject);
    req.end();
  });
}

/** A sample's value: NaN without a scrape, 0 when the scrape lacks the series. */
const metric = (m: Metrics | undefined, series: string) => (m ? (m.get(series) ?? 0) : Number.NaN);
function metricSum(m: Metrics | undefined, prefix: string): number {
  if (!m) return Number.NaN;
  let sum = 0;
  for (const [series, value] of m) if (series.startsWith(prefix)) sum += value;
  return sum;
}

// ---------------------------------------------------------------------------------------------
// Pods and the watch

interface PodTimes {
  sent?: number;
  created?: number;
  bound?: number;
  running?: number;
  /** When the watch first showed a deletionTimestamp, and the pod gone. */
  deleting?: number;
  gone?: number;
  /**
   * Where bound→Running went, from the pod's own timestamps (whole seconds, one host clock), in
   * ms: PodScheduled (scheduler), startTime (wasmlet saw the pod), the container's startedAt
   * (guest started), and the wall clock when the watch showed the pod Running.
   */
  stamps?: { scheduled: number; seen: number; started: number; visible: number; boundSeen: number };
  /** Wall clock when this watch first showed the pod bound (the control for wasmlet's pickup). */
  boundWall?: number;
}

const isRunning = (pod: V1Pod) =>
  pod.status?.phase === "Running" &&
  !!pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True");

/** Every pod of the namespace as the watch last saw it, with when it was bound and Running. */
class PodTracker {
  readonly times = new Map<string, PodTimes>();
  readonly existing = new Map<string, V1Pod>();
  bound = 0;
  running = 0;
  #abort: AbortController | undefined;
  #stopped = false;
  #kc: KubeConfig;
  #client: KubeClient;

  constructor(kc: KubeConfig, client: KubeClient) {
    this.#kc = kc;
    this.#client = client;
  }

  #entry(name: string): PodTimes {
    let t = this.times.get(name);
    if (!t) {
      t = {};
      this.times.set(name, t);
    }
    return t;
  }

  async start(): Promise<void> {
    if (this.#stopped) return;
    try {
      const list = await this.#client.core.listNamespacedPod({ namespace: NAMESPACE });
      const names = new Set<string>();
      for (const pod of list.items) {
        names.add(pod.metadata?.name ?? "");
        this.#observe("ADDED", pod);
      }
      for (const name of [...this.existing.keys()])
        if (!names.has(name)) this.existing.delete(name);
      this.#abort = await new Watch(this.#kc).watch(
        `/api/v1/namespaces/${NAMESPACE}/pods`,
        { resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
        (type, pod: V1Pod) => this.#observe(type, pod),
        // A watch that ends starts over from a list, so no transition is missed.
        () => {
          if (!this.#stopped) setTimeout(() => void this.start(), 100);
        },
      );
    } catch (error) {
      say(`watch failed (${(error as Error).message}); retrying`);
      setTimeout(() => void this.start(), 1000);
    }
  }

  #observe(type: string, pod: V1Pod): void {
    const name = pod.metadata?.name;
    if (!name || type === "BOOKMARK") return;
    const t = this.#entry(name);
    const now = performance.now();
    if (type === "DELETED") {
      this.existing.delete(name);
      t.gone ??= now;
      return;
    }
    this.existing.set(name, pod);
    if (pod.metadata?.deletionTimestamp && t.deleting === undefined) t.deleting = now;
    if (pod.spec?.nodeName && t.bound === undefined) {
      t.bound = now;
      t.boundWall = Date.now();
      this.bound++;
    }
    if (isRunning(pod) && t.running === undefined) {
      t.running = now;
      this.running++;
      const time = (value: unknown) => (value ? new Date(value as string).getTime() : Number.NaN);
      t.stamps = {
        scheduled: time(
          pod.status?.conditions?.find((c) => c.type === "PodScheduled")?.lastTransitionTime,
        ),
        seen: time(pod.status?.startTime),
        started: time(pod.status?.containerStatuses?.[0]?.state?.running?.startedAt),
        visible: Date.now(),
        boundSeen: t.boundWall ?? Number.NaN,
      };
    }
  }

  markSent(name: string): void {
    this.#entry(name).sent = performance.now();
  }

  markCreated(name: string): void {
    this.#entry(name).created = performance.now();
  }

  stop(): void {
    this.#stopped = true;
    this.#abort?.abort();
  }
}

function podFor(name: string, image: string): V1Pod {
  return {
    metadata: { name, labels: { app: "density" } },
    spec: {
      nodeSelector: { "kubernetes.io/hostname": NODE_NAME },
      tolerations: [{ key: "wasmlet.io/wasm", operator: "Exists", effect: "NoSchedule" }],
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: "main",
          image,
          imagePullPolicy: "IfNotPresent",
          // A 1 Mi request so that 5000 pods fit the node's memory (a limit alone would be the
          // request); no CPU request (5000 × 1m would exceed 2 cores' allocatable).
          resources: { requests: { memory: "1Mi" }, limits: { memory: "4Mi" } },
        },
      ],
    },
  };
}

const podName = (i: number) => `idle-${String(i).padStart(5, "0")}`;

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

// ---------------------------------------------------------------------------------------------
// Results

interface Steady {
  pods: number;
  wasmlet: ProcSample;
  cpu: Ticks;
  components: Record<string, ProcSample | undefined>;
  metrics: Metrics | undefined;
  leaseAgeS: number;
  load: string;
  /** wasmlet's main-thread V8 heap in use right after a forced full GC (live objects only). */
  gcHeapBytes: number;
}

interface Step {
  from: number;
  to: number;
  createS: number;
  boundS: number;
  runningS: number;
  createP50: number;
  createP95: number;
  bindP50: number;
  bindP95: number;
  bindMax: number;
  runP50: number;
  runP95: number;
  runMax: number;
  /** p50 / p95 in ms of the three parts of bound→Running, from the pods' own timestamps. */
  bindToSeen: [number, number];
  bindToBench: [number, number];
  seenToStarted: [number, number];
  startedToVisible: [number, number];
  maxUnbound: number;
  maxNotRunning: number;
  cpu: Ticks;
  elP99MaxS: number;
  elMaxS: number;
  maxLeaseAgeS: number;
  notReadySeen: string[];
  retries: Record<string, number>;
  failedCreates: number;
  apiErrors: number;
  podStartMeanS: number;
  stuck: number;
  stuckSummary: string[];
  logLines: { warn: number; error: number; other: number };
  hwmKiB: number;
  maxLoad: number;
  /** The scheduler's "Waited before sending request … client-side throttling" lines in the step. */
  throttleWaits: number;
  throttleMaxS: number;
}

interface Teardown {
  pods: number;
  deleteS: number;
  /** When the watch had shown every pod a deletionTimestamp (the API server's part). */
  markedS: number;
  /** deletionTimestamp → gone, p50 / p95 in ms (wasmlet stopping the guest and deleting the pod). */
  markedToGone: [number, number];
  deleteCalls: string;
  metrics: Metrics | undefined;
  gcHeapBytes: number;
  remaining: number;
  after: ProcSample | undefined;
  cpu: Ticks | undefined;
}

// ---------------------------------------------------------------------------------------------
// The run

const dir = await mkdtemp(join(tmpdir(), "wasmlet-bench-density-"));
const loadAtStart = loadAll();
say(
  `density bench: targets ${TARGETS.join(" → ")} idle pods, --max-pods ${MAX_PODS}, ${cpus().length} cores, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB; load average ${loadAtStart}`,
);
const { binaries } = await obtainControlPlaneBinaries({ onProgress: (l) => say(l) });
const plane = await ControlPlane.start({ binaries, dir: join(dir, "cluster"), onProgress: say });
const registry = await LocalRegistry.start({ dir: join(dir, "registry") });
const client = KubeClient.create({ kubeconfig: plane.kubeconfig, apiRequestTimeoutMs: 300_000 });
const watchKc = new KubeConfig();
watchKc.loadFromFile(plane.kubeconfig);
const leases = watchKc.makeApiClient(CoordinationV1Api);
const adminCert = await readFile(plane.pki.adminCert);
const adminKey = await readFile(plane.pki.adminKey);

const port = await freePort();
const healthzPort = await freePort();
/** wasmlet's inspector (loopback), used only to force a full GC after each measurement. */
const inspectPort = await freePort();
const wasmletLog = join(dir, "wasmlet.log");
const logFd = openSync(wasmletLog, "a");
const wasmletArgs = [
  "run",
  `--kubeconfig=${plane.kubeconfig}`,
  `--node-name=${NODE_NAME}`,
  "--node-ip=127.0.0.1",
  "--address=127.0.0.1",
  `--port=${port}`,
  `--healthz-port=${healthzPort}`,
  `--data-dir=${join(dir, "wasmlet")}`,
  "--allow-self-signed",
  "--tls-bootstrap=false",
  `--max-pods=${MAX_PODS}`,
  // 5000 pods' status patches and list calls are slow on a loaded API server; no request should
  // fail for want of time (wasmlet has no client-side QPS limit to raise).
  "--api-request-timeout=2m",
  `--log-level=${process.env.WASMLET_BENCH_LOG_LEVEL ?? "warn"}`,
];
const wasmlet = spawn(
  process.execPath,
  [
    `--inspect=127.0.0.1:${inspectPort}`,
    new URL("../../src/cli/main.ts", import.meta.url).pathname,
    ...wasmletArgs,
  ],
  { stdio: ["ignore", logFd, logFd] },
);
closeSync(logFd);
const wasmletPid = wasmlet.pid!;
let wasmletExit: string | undefined;
wasmlet.once("exit", (code, signal) => {
  wasmletExit = `exited (code ${code}, signal ${signal})`;
});
wasmlet.once("error", (error) => {
  wasmletExit = `could not start: ${error.message}`;
});
process.once("exit", () => wasmlet.kill("SIGKILL"));

const tracker = new PodTracker(watchKc, client);
let tornDown = false;
async function teardown(): Promise<void> {
  if (tornDown) return;
  tornDown = true;
  tracker.stop();
  if (!wasmletExit) {
    wasmlet.kill("SIGTERM");
    const exited = new Promise((r) => wasmlet.once("exit", r));
    if (
      (await Promise.race([exited.then(() => true), sleep(45_000).then(() => false)])) === false
    ) {
      wasmlet.kill("SIGKILL");
      await exited;
    }
  }
  await Promise.allSettled([plane.stop(), registry.stop()]);
  await rm(dir, { recursive: true, force: true });
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    say(`${signal}: tearing down`);
    void teardown().finally(() => process.exit(130));
  });
}

async function leaseAgeS(): Promise<number> {
  try {
    const lease = await leases.readNamespacedLease({
      name: NODE_NAME,
      namespace: "kube-node-lease",
    });
    const renew = lease.spec?.renewTime;
    return renew
      ? (Date.now() - new Date(renew as unknown as string).getTime()) / 1000
      : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

async function nodeReady(): Promise<string> {
  try {
    const node = await client.core.readNode({ name: NODE_NAME });
    const ready = node.status?.conditions?.find((c) => c.type === "Ready");
    const pressure = (node.status?.conditions ?? [])
      .filter((c) => c.type !== "Ready" && c.status === "True")
      .map((c) => c.type);
    return [ready?.status ?? "absent", ...pressure].join("+");
  } catch (error) {
    return `unreadable (${statusCode(error) ?? "network"})`;
  }
}

const scrape = () => scrapeMetrics(port, adminCert, adminKey).catch(() => undefined);

/** Counts wasmlet's log lines from byte `from` on, by level, and keeps the lines. */
function logSince(from: number): { warn: number; error: number; other: number; lines: string[] } {
  const text = readFileSync(wasmletLog).subarray(from).toString("utf8");
  const out = { warn: 0, error: 0, other: 0, lines: [] as string[] };
  for (const line of text.split("\n")) {
    // The inspector's own lines (see forceGc) are not wasmlet's.
    if (!line.trim() || /^(Debugger |For help, see)/.test(line)) continue;
    out.lines.push(line);
    const level = /"level":"(\w+)"/.exec(line)?.[1];
    if (level === "warn") out.warn++;
    else if (level === "error" || level === "fatal") out.error++;
    else if (level === undefined) out.other++;
  }
  return out;
}
const logSize = () => statSync(wasmletLog).size;

/** A full GC of wasmlet's main thread; the heap then in use (NaN when the inspector fails). */
async function forceGc(): Promise<number> {
  try {
    return await forceGcOver(inspectPort);
  } catch (error) {
    say(`forced GC failed: ${(error as Error).message}`);
    return Number.NaN;
  }
}

/** Settles, then samples wasmlet and the control plane, and their CPU over CPU_WINDOW_MS. */
async function measureSteady(pods: number, pids: Record<string, number>): Promise<Steady> {
  say(
    `${pods} pods: settling ${SETTLE_MS / 1000} s, then measuring CPU over ${CPU_WINDOW_MS / 1000} s`,
  );
  await scrape(); // resets the event-loop histogram, so the next scrape covers the idle period
  await sleep(SETTLE_MS);
  const all = { wasmlet: wasmletPid, ...pids };
  const before = ticksOf(all);
  const t0 = performance.now();
  await sleep(CPU_WINDOW_MS);
  const after = ticksOf(all);
  const cpu = shares(before, after, performance.now() - t0);
  const wasmletSample = sampleProc(wasmletPid);
  const components: Record<string, ProcSample | undefined> = {};
  for (const [name, pid] of Object.entries(pids)) {
    try {
      components[name] = sampleProc(pid);
    } catch {
      components[name] = undefined;
    }
  }
  const metrics = await scrape();
  const steady = {
    pods,
    wasmlet: wasmletSample,
    cpu,
    components,
    metrics,
    leaseAgeS: await leaseAgeS(),
    load: load1(),
    // After everything else: the collection must not touch the figures above.
    gcHeapBytes: await forceGc(),
  };
  say(
    `${pods} pods: wasmlet RSS ${(wasmletSample.rssKiB / 1024).toFixed(1)} MiB, CPU ${(cpu.wasmlet! * 100).toFixed(2)} % of a core, ${wasmletSample.threads} threads, ${wasmletSample.fds} fds; apiserver ${(cpu["kube-apiserver"]! * 100).toFixed(1)} %, scheduler ${(cpu["kube-scheduler"]! * 100).toFixed(1)} %, load ${loadAll()}`,
  );
  return steady;
}

/** Creates pods [from, to) with CONCURRENCY in flight, retrying 429, 5xx and network errors. */
async function createPods(from: number, to: number, image: string) {
  const retries: Record<string, number> = {};
  const latencies: number[] = [];
  let failed = 0;
  let next = from;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < to) {
        const name = podName(next++);
        tracker.markSent(name);
        for (let attempt = 0; ; attempt++) {
          const started = performance.now();
          try {
            await client.core.createNamespacedPod({
              namespace: NAMESPACE,
              body: podFor(name, image),
            });
            latencies.push(performance.now() - started);
            tracker.markCreated(name);
            break;
          } catch (error) {
            const code = statusCode(error);
            if (code === 409) {
              tracker.markCreated(name); // an earlier attempt got through
              break;
            }
            const retryable = code === undefined || code === 429 || code >= 500;
            const key = code === undefined ? "network" : String(code);
            if (!retryable || attempt >= 30) {
              failed++;
              say(
                `create ${name} failed for good (${key}): ${(error as Error).message.slice(0, 200)}`,
              );
              break;
            }
            retries[key] = (retries[key] ?? 0) + 1;
            await sleep(Math.min(5_000, 100 * 2 ** Math.min(attempt, 6)));
          }
        }
      }
    }),
  );
  return { retries, latencies, failed };
}

/** Groups pods by what they show (phase, node, container state) for the stuck report. */
function describeStuck(names: string[]): string[] {
  const groups = new Map<string, { count: number; example: string }>();
  for (const name of names) {
    const pod = tracker.existing.get(name);
    if (!pod) {
      const key = "not seen by the watch";
      groups.set(key, { count: (groups.get(key)?.count ?? 0) + 1, example: name });
      continue;
    }
    const cs = pod.status?.containerStatuses?.[0];
    const state = cs?.state?.waiting
      ? `waiting ${cs.state.waiting.reason ?? ""}`
      : cs?.state?.terminated
        ? `terminated ${cs.state.terminated.reason ?? ""}`
        : cs?.state?.running
          ? "running"
          : "no container status";
    const key = `phase=${pod.status?.phase ?? "?"} node=${pod.spec?.nodeName ? "bound" : "unbound"} ${state}`;
    const message =
      cs?.state?.waiting?.message ??
      cs?.state?.terminated?.message ??
      pod.status?.message ??
      pod.status?.conditions?.find((c) => c.status !== "True")?.message ??
      "";
    const g = groups.get(key);
    if (g) g.count++;
    else
      groups.set(key, {
        count: 1,
        example: `${name}${message ? `: ${message.slice(0, 200)}` : ""}`,
      });
  }
  return [...groups].map(([key, g]) => `${g.count} × ${key} (e.g. ${g.example})`);
}

/** Grows the node from `from` to `to` pods and waits until they are all Running (or stuck). */
async function grow(
  from: number,
  to: number,
  image: string,
  pids: Record<string, number>,
): Promise<Step> {
  const n = to - from;
  say(`creating ${n} pods (${from} → ${to}), ${CONCURRENCY} in flight`);
  const names = Array.from({ length: n }, (_, i) => podName(from + i));
  const all = { wasmlet: wasmletPid, ...pids };
  const ticks0 = ticksOf(all);
  const metrics0 = await scrape();
  const logFrom = logSize();
  const t0 = performance.now();
  let maxUnbound = 0;
  let maxNotRunning = 0;
  let elP99Max = 0;
  let elMax = 0;
  let maxLease = 0;
  let maxLoad = loadavg()[0]!;
  const schedulerLog = plane.logFiles["kube-scheduler"];
  const schedulerFrom = schedulerLog ? statSync(schedulerLog).size : 0;
  let lastMetrics = metrics0;
  const notReadySeen: string[] = [];
  let sampling = true;

  const backlog = (async () => {
    while (sampling) {
      const seen = names.filter((name) => tracker.existing.has(name)).length;
      const bound = names.filter((name) => tracker.times.get(name)?.bound !== undefined).length;
      const running = names.filter((name) => tracker.times.get(name)?.running !== undefined).length;
      maxUnbound = Math.max(maxUnbound, seen - bound);
      maxNotRunning = Math.max(maxNotRunning, bound - running);
      await sleep(1000);
    }
  })();
  const monitor = (async () => {
    while (sampling) {
      await sleep(5000);
      if (!sampling) break;
      const [m, age, ready] = await Promise.all([scrape(), leaseAgeS(), nodeReady()]);
      if (m) {
        lastMetrics = m;
        elP99Max = Math.max(elP99Max, metric(m, "nodejs_eventloop_lag_p99_seconds"));
        elMax = Math.max(elMax, metric(m, "nodejs_eventloop_lag_max_seconds"));
      }
      if (Number.isFinite(age)) maxLease = Math.max(maxLease, age);
      maxLoad = Math.max(maxLoad, loadavg()[0]!);
      if (ready !== "True")
        notReadySeen.push(`${((performance.now() - t0) / 1000).toFixed(0)} s: ${ready}`);
      const created = names.filter((name) => tracker.times.get(name)?.created !== undefined).length;
      const bound = names.filter((name) => tracker.times.get(name)?.bound !== undefined).length;
      const running = names.filter((name) => tracker.times.get(name)?.running !== undefined).length;
      let rss = Number.NaN;
      try {
        rss = sampleProc(wasmletPid).rssKiB / 1024;
      } catch {}
      say(
        `  +${((performance.now() - t0) / 1000).toFixed(0)} s: created ${created}/${n}, bound ${bound}, Running ${running}; wasmlet RSS ${rss.toFixed(0)} MiB, event loop p99 ${(metric(m, "nodejs_eventloop_lag_p99_seconds") * 1000).toFixed(0)} ms${m ? "" : " (/metrics unanswered)"}; lease age ${age.toFixed(1)} s; node Ready=${ready}; load ${load1()}${wasmletExit ? `; wasmlet ${wasmletExit}` : ""}`,
      );
    }
  })();

  const created = await createPods(from, to, image);
  const createdAt = performance.now();
  say(
    `  all ${n} create calls returned after ${((createdAt - t0) / 1000).toFixed(1)} s; waiting for Running`,
  );

  // Wait until every pod is Running, or none became Running for STALL_MS.
  let lastRunning = -1;
  let lastProgress = performance.now();
  for (;;) {
    const running = names.filter((name) => tracker.times.get(name)?.running !== undefined).length;
    if (running === n) break;
    if (running !== lastRunning) {
      lastRunning = running;
      lastProgress = performance.now();
    }
    if (performance.now() - lastProgress > STALL_MS || wasmletExit) {
      say(
        `  no pod became Running for ${STALL_MS / 1000} s (or wasmlet ended): ${n - running} stuck`,
      );
      break;
    }
    await sleep(250);
  }
  const ticks1 = ticksOf(all);
  const t1 = performance.now();
  sampling = false;
  await Promise.all([backlog, monitor]);
  const metrics1 = (await scrape()) ?? lastMetrics;
  if (metrics1) {
    elP99Max = Math.max(elP99Max, metric(metrics1, "nodejs_eventloop_lag_p99_seconds"));
    elMax = Math.max(elMax, metric(metrics1, "nodejs_eventloop_lag_max_seconds"));
  }

  const times = names.map((name) => tracker.times.get(name) ?? {});
  const last = (pick: (t: PodTimes) => number | undefined) =>
    (Math.max(...times.map((t) => pick(t) ?? Number.NaN)) - t0) / 1000;
  const deltas = (a: (t: PodTimes) => number | undefined, b: (t: PodTimes) => number | undefined) =>
    times
      .map((t) => (a(t) !== undefined && b(t) !== undefined ? b(t)! - a(t)! : undefined))
      .filter((d): d is number => d !== undefined);
  const bind = deltas(
    (t) => t.sent,
    (t) => t.bound,
  );
  const run = deltas(
    (t) => t.bound,
    (t) => t.running,
  );
  const stuckNames = names.filter((name) => tracker.times.get(name)?.running === undefined);
  const stamped = times.flatMap((t) => (t.stamps ? [t.stamps] : []));
  const part = (pick: (s: NonNullable<PodTimes["stamps"]>) => number): [number, number] => {
    const values = stamped.map(pick).filter(Number.isFinite);
    return [percentile(values, 50), percentile(values, 95)];
  };
  const log = logSince(logFrom);
  const startCount =
    metric(metrics1, "wasmlet_pod_start_duration_seconds_count") -
    metric(metrics0, "wasmlet_pod_start_duration_seconds_count");
  const startSum =
    metric(metrics1, "wasmlet_pod_start_duration_seconds_sum") -
    metric(metrics0, "wasmlet_pod_start_duration_seconds_sum");
  const allBound = times.every((t) => t.bound !== undefined);
  return {
    from,
    to,
    createS: (createdAt - t0) / 1000,
    boundS: allBound ? last((t) => t.bound) : Number.NaN,
    runningS: stuckNames.length === 0 ? last((t) => t.running) : Number.NaN,
    createP50: percentile(created.latencies, 50),
    createP95: percentile(created.latencies, 95),
    bindP50: percentile(bind, 50),
    bindP95: percentile(bind, 95),
    bindMax: percentile(bind, 100),
    runP50: percentile(run, 50),
    runP95: percentile(run, 95),
    runMax: percentile(run, 100),
    bindToSeen: part((s) => s.seen - s.scheduled),
    bindToBench: part((s) => s.boundSeen - s.scheduled),
    seenToStarted: part((s) => s.started - s.seen),
    startedToVisible: part((s) => s.visible - s.started),
    maxUnbound,
    maxNotRunning,
    cpu: shares(ticks0, ticks1, t1 - t0),
    elP99MaxS: elP99Max,
    elMaxS: elMax,
    maxLeaseAgeS: maxLease,
    notReadySeen,
    retries: created.retries,
    failedCreates: created.failed,
    apiErrors:
      metricSum(metrics1, "wasmlet_kube_api_errors_total") -
      metricSum(metrics0, "wasmlet_kube_api_errors_total"),
    podStartMeanS: startCount > 0 ? startSum / startCount : Number.NaN,
    stuck: stuckNames.length,
    stuckSummary: describeStuck(stuckNames),
    logLines: { warn: log.warn, error: log.error, other: log.other },
    hwmKiB: sampleProc(wasmletPid).hwmKiB,
    maxLoad,
    ...throttling(schedulerLog, schedulerFrom),
  };
}

/** The scheduler's client-side throttling waits logged since byte `from`. */
function throttling(file: string | undefined, from: number) {
  if (!file) return { throttleWaits: Number.NaN, throttleMaxS: Number.NaN };
  const text = readFileSync(file).subarray(from).toString("utf8");
  const delays = text
    .split("\n")
    .filter((l) => l.includes("client-side throttling"))
    .map((l) => Number(/delay="([\d.]+)s"/.exec(l)?.[1] ?? Number.NaN));
  return {
    throttleWaits: delays.length,
    throttleMaxS: delays.length ? Math.max(...delays.filter(Number.isFinite)) : 0,
  };
}

/** Deletes every pod at once and times until the watch sees them all gone. */
async function deleteAll(pods: number, pids: Record<string, number>): Promise<Teardown> {
  say(`deleting all ${pods} pods`);
  const t0 = performance.now();
  const calls: string[] = [];
  void (async () => {
    // One deletecollection; the API server may time it out (60 s) while it keeps deleting.
    for (let attempt = 0; attempt < 5; attempt++) {
      const started = performance.now();
      try {
        await client.core.deleteCollectionNamespacedPod({ namespace: NAMESPACE });
        calls.push(`ok in ${((performance.now() - started) / 1000).toFixed(1)} s`);
        return;
      } catch (error) {
        calls.push(
          `${statusCode(error) ?? "network"} after ${((performance.now() - started) / 1000).toFixed(1)} s`,
        );
        if (tracker.existing.size === 0) return;
        await sleep(2000);
      }
    }
  })();
  await sleep(500);
  let lastCount = -1;
  let lastProgress = performance.now();
  let lastSay = 0;
  for (;;) {
    const count = tracker.existing.size;
    if (count === 0) break;
    if (count !== lastCount) {
      lastCount = count;
      lastProgress = performance.now();
    }
    if (performance.now() - lastProgress > STALL_MS || wasmletExit) break;
    if (performance.now() - lastSay > 10_000) {
      lastSay = performance.now();
      say(`  ${count} pods left; load ${load1()}`);
    }
    await sleep(250);
  }
  const deleteS = (performance.now() - t0) / 1000;
  const remaining = tracker.existing.size;
  const all = [...tracker.times.values()].filter((t) => t.running !== undefined);
  const markedS = (Math.max(...all.map((t) => t.deleting ?? Number.NaN)) - t0) / 1000;
  const spans = all.flatMap((t) =>
    t.deleting !== undefined && t.gone !== undefined ? [t.gone - t.deleting] : [],
  );
  const markedToGone: [number, number] = [percentile(spans, 50), percentile(spans, 95)];
  say(
    `  delete: ${pods - remaining} gone in ${deleteS.toFixed(1)} s, ${remaining} left; all marked after ${markedS.toFixed(1)} s; deletecollection: ${calls.join(", ") || "pending"}`,
  );
  const base = { pods, deleteS, markedS, markedToGone, deleteCalls: calls.join(", "), remaining };
  if (wasmletExit)
    return {
      ...base,
      metrics: undefined,
      gcHeapBytes: Number.NaN,
      after: undefined,
      cpu: undefined,
    };
  const steady = await measureSteady(0, pids);
  return {
    ...base,
    metrics: steady.metrics,
    gcHeapBytes: steady.gcHeapBytes,
    after: steady.wasmlet,
    cpu: steady.cpu,
  };
}

// ---------------------------------------------------------------------------------------------
// Formatting

const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;
const pct = (share: number | undefined) =>
  share === undefined || !Number.isFinite(share)
    ? "n/a"
    : `${(share * 100).toFixed(share < 0.1 ? 2 : 1)} %`;
const secs = (s: number) => (Number.isFinite(s) ? `${s.toFixed(1)} s` : "n/a");
const ms = (v: number) => (Number.isFinite(v) ? `${v.toFixed(0)} ms` : "n/a");
const num = (v: number) => (Number.isFinite(v) ? String(Math.round(v)) : "n/a");
const mbytes = (b: number) => (Number.isFinite(b) ? `${(b / MiB).toFixed(1)} MiB` : "n/a");

function verdict(step: Step): string {
  const n = step.to - step.from;
  const createRate = n / step.createS;
  const parts = [
    `creates ${createRate.toFixed(0)}/s (p95 ${ms(step.createP95)} per call, ${CONCURRENCY} in flight)`,
    `scheduler backlog ≤ ${step.maxUnbound} unbound (create→bound p95 ${ms(step.bindP95)})`,
    `wasmlet backlog ≤ ${step.maxNotRunning} bound-not-Running (bound→Running p95 ${ms(step.runP95)})`,
  ];
  const busiest = Object.entries(step.cpu)
    .filter(([k, v]) => k !== "host" && Number.isFinite(v))
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${pct(v)}`)
    .join(", ");
  const threshold = 2 * CONCURRENCY;
  let who: string;
  if (step.stuck > 0) who = `pods stuck (${step.stuck}): see below`;
  else if (step.maxUnbound >= threshold && step.maxUnbound >= step.maxNotRunning)
    who = "the scheduler (pods waited unbound longest)";
  else if (step.maxNotRunning >= threshold) who = "wasmlet (bound pods waited longest to run)";
  else who = "pod creation through the API server (neither backlog grew)";
  const capacity = cpus().length;
  const saturated =
    step.cpu.host! >= 0.85 * capacity
      ? ` The host was saturated: ${pct(step.cpu.host)} of ${capacity * 100} % busy, ${pct(step.cpu.host! - measured(step.cpu))} of it other work, load average up to ${step.maxLoad.toFixed(1)}; every stage was short of CPU.`
      : "";
  const throttled =
    step.throttleWaits > 0
      ? ` The scheduler logged ${step.throttleWaits} client-side throttling waits (longest ${secs(step.throttleMaxS)}): its API client's QPS limit paced the binds.`
      : "";
  return `${who} — ${parts.join("; ")}; CPU during the step: ${busiest}.${saturated}${throttled}`;
}

function printReport(
  baseline: Steady,
  steadies: Steady[],
  steps: Step[],
  teardownResult: Teardown | undefined,
  skipped: string | undefined,
  logSummary: string[],
  componentLogs: string[],
): void {
  const header = [
    "measure",
    "baseline (0 pods, same run)",
    ...steadies.map((s) => `${s.pods} idle pods`),
    "target",
  ];
  const rows: string[][] = [];
  const add = (label: string, base: string, per: (s: Steady, i: number) => string, target = "") =>
    rows.push([label, base, ...steadies.map(per), target]);
  const b = baseline;
  add("wasmlet RSS (VmRSS)", mib(b.wasmlet.rssKiB), (s) => mib(s.wasmlet.rssKiB));
  add(
    "**RSS per idle pod** (RSS_N − RSS_0)/N",
    "—",
    (s) => `**${((s.wasmlet.rssKiB - b.wasmlet.rssKiB) / 1024 / s.pods).toFixed(3)} MiB**`,
    "≤ 1 MiB",
  );
  add(
    "**wasmlet CPU, idle** (10 s, share of one core)",
    pct(b.cpu.wasmlet),
    (s) => `**${pct(s.cpu.wasmlet)}**`,
    "≤ 5 %",
  );
  add("wasmlet peak RSS (VmHWM)", mib(b.wasmlet.hwmKiB), (s) => mib(s.wasmlet.hwmKiB));
  add("wasmlet threads", String(b.wasmlet.threads), (s) => String(s.wasmlet.threads));
  add("wasmlet open fds (/proc/pid/fd; RLIMIT_NOFILE 20000)", String(b.wasmlet.fds), (s) =>
    String(s.wasmlet.fds),
  );
  add("wasmlet memory mappings (vm.max_map_count 65530)", String(b.wasmlet.maps), (s) =>
    String(s.wasmlet.maps),
  );
  add(
    "wasmlet virtual size (VmSize)",
    `${(b.wasmlet.vmSizeKiB / 1024 ** 2).toFixed(1)} GiB`,
    (s) => `${(s.wasmlet.vmSizeKiB / 1024 ** 2).toFixed(1)} GiB`,
  );
  add(
    "wasmlet V8 heap used (/metrics)",
    mbytes(metric(b.metrics, "nodejs_heap_size_used_bytes")),
    (s) => mbytes(metric(s.metrics, "nodejs_heap_size_used_bytes")),
  );
  add(
    "wasmlet live heap after a forced full GC (main thread) / per pod",
    mbytes(b.gcHeapBytes),
    (s) =>
      `${mbytes(s.gcHeapBytes)} / ${((s.gcHeapBytes - b.gcHeapBytes) / s.pods / 1024).toFixed(1)} KiB`,
  );
  add(
    "wasmlet event-loop lag p99 / max, idle (/metrics)",
    `${ms(metric(b.metrics, "nodejs_eventloop_lag_p99_seconds") * 1000)} / ${ms(metric(b.metrics, "nodejs_eventloop_lag_max_seconds") * 1000)}`,
    (s) =>
      `${ms(metric(s.metrics, "nodejs_eventloop_lag_p99_seconds") * 1000)} / ${ms(metric(s.metrics, "nodejs_eventloop_lag_max_seconds") * 1000)}`,
  );
  add(
    'wasmlet_pods{phase="Running"} (/metrics)',
    num(metric(b.metrics, 'wasmlet_pods{phase="Running"}')),
    (s) => num(metric(s.metrics, 'wasmlet_pods{phase="Running"}')),
  );
  add("wasmlet Lease age at measurement (renewed every 10 s)", secs(b.leaseAgeS), (s) =>
    secs(s.leaseAgeS),
  );
  for (const name of ["kube-apiserver", "kube-scheduler", "etcd", "kube-controller-manager"])
    add(`${name} CPU, idle (same 10 s)`, pct(b.cpu[name]), (s) => pct(s.cpu[name]));
  add(
    "kube-apiserver RSS",
    b.components["kube-apiserver"] ? mib(b.components["kube-apiserver"].rssKiB) : "n/a",
    (s) => (s.components["kube-apiserver"] ? mib(s.components["kube-apiserver"].rssKiB) : "n/a"),
  );
  add("etcd RSS", b.components.etcd ? mib(b.components.etcd.rssKiB) : "n/a", (s) =>
    s.components.etcd ? mib(s.components.etcd.rssKiB) : "n/a",
  );
  add("host CPU busy, all processes (same 10 s; 100 % = one core)", pct(b.cpu.host), (s) =>
    pct(s.cpu.host),
  );
  add("load average (1 min) at measurement", b.load, (s) => s.load);

  // The steps that took the node to each count.
  const stepFor = (i: number) => steps[i]!;
  const addStep = (label: string, base: string, per: (st: Step) => string, target = "") =>
    rows.push([label, base, ...steadies.map((_, i) => per(stepFor(i))), target]);
  addStep(
    "pods created in this step (the node grows)",
    "—",
    (st) => `${st.to - st.from} (${st.from} → ${st.to})`,
  );
  addStep("time: all create calls returned", "—", (st) => secs(st.createS));
  addStep("time: all bound by the scheduler", "—", (st) => secs(st.boundS));
  addStep("**time: all Running** (watch-observed)", "—", (st) =>
    Number.isFinite(st.runningS)
      ? `**${secs(st.runningS)}** (${((st.to - st.from) / st.runningS).toFixed(1)} pods/s)`
      : `**not all** (${st.stuck} stuck)`,
  );
  addStep("create call p50 / p95", "—", (st) => `${ms(st.createP50)} / ${ms(st.createP95)}`);
  addStep(
    "create→bound p50 / p95 / max",
    "—",
    (st) => `${ms(st.bindP50)} / ${ms(st.bindP95)} / ${ms(st.bindMax)}`,
  );
  addStep(
    "bound→Running p50 / p95 / max",
    "—",
    (st) => `${ms(st.runP50)} / ${ms(st.runP95)} / ${ms(st.runMax)}`,
  );
  const pair = ([p50, p95]: [number, number]) =>
    Number.isFinite(p50) ? `${(p50 / 1000).toFixed(1)} s / ${(p95 / 1000).toFixed(1)} s` : "n/a";
  addStep("… of which PodScheduled → wasmlet's startTime, p50 / p95 (±1 s)", "—", (st) =>
    pair(st.bindToSeen),
  );
  addStep("… of which startTime → container startedAt, p50 / p95 (±1 s)", "—", (st) =>
    pair(st.seenToStarted),
  );
  addStep("… of which startedAt → Running seen by the watch, p50 / p95 (±1 s)", "—", (st) =>
    pair(st.startedToVisible),
  );
  addStep("control: PodScheduled → this bench's watch saw it bound, p50 / p95 (±1 s)", "—", (st) =>
    pair(st.bindToBench),
  );
  addStep("wasmlet's own pod start, mean (seen→running histogram)", "—", (st) =>
    ms(st.podStartMeanS * 1000),
  );
  addStep(
    "max backlog: unbound (scheduler) / bound-not-Running (wasmlet)",
    "—",
    (st) => `${st.maxUnbound} / ${st.maxNotRunning}`,
  );
  for (const name of [
    "wasmlet",
    "kube-apiserver",
    "kube-scheduler",
    "etcd",
    "kube-controller-manager",
    "bench",
  ])
    addStep(
      `${name} CPU during the step${name === "bench" ? " (this client + its watch)" : ""}`,
      `${pct(b.cpu[name])} idle`,
      (st) => pct(st.cpu[name]),
    );
  addStep(
    "wasmlet event-loop lag during the step, worst 5 s p99 / max",
    `${ms(metric(b.metrics, "nodejs_eventloop_lag_p99_seconds") * 1000)} idle`,
    (st) => `${ms(st.elP99MaxS * 1000)} / ${ms(st.elMaxS * 1000)}`,
  );
  addStep("wasmlet peak RSS during the step (VmHWM)", mib(b.wasmlet.hwmKiB), (st) =>
    mib(st.hwmKiB),
  );
  addStep(
    `host CPU busy during the step (${cpus().length} cores = ${cpus().length * 100} %) / of it the processes above`,
    `${pct(b.cpu.host)} / ${pct(measured(b.cpu))} idle`,
    (st) => `${pct(st.cpu.host)} / ${pct(measured(st.cpu))}`,
  );
  addStep("load average (1 min), highest during the step", b.load, (st) => st.maxLoad.toFixed(2));
  addStep(
    "scheduler client-side throttling waits logged (count, longest)",
    "—",
    (st) => `${st.throttleWaits}, ${secs(st.throttleMaxS)}`,
  );
  addStep("max Lease age during the step (node stays Ready < 40 s)", secs(b.leaseAgeS), (st) =>
    secs(st.maxLeaseAgeS),
  );
  addStep("node not Ready / under pressure (5 s samples)", "—", (st) =>
    st.notReadySeen.length === 0 ? "never" : `${st.notReadySeen.length}× (${st.notReadySeen[0]})`,
  );
  addStep(
    "create retries (429 / 5xx / network); failed",
    "—",
    (st) =>
      `${
        Object.entries(st.retries)
          .map(([k, v]) => `${k}: ${v}`)
          .join(", ") || "none"
      }; ${st.failedCreates}`,
  );
  addStep("wasmlet API call failures (wasmlet_kube_api_errors_total)", "—", (st) =>
    num(st.apiErrors),
  );
  addStep(
    "wasmlet log warn / error / non-JSON lines in the step",
    "—",
    (st) => `${st.logLines.warn} / ${st.logLines.error} / ${st.logLines.other}`,
  );
  addStep("pods not Running when the wait ended", "—", (st) => String(st.stuck), "0");
  if (teardownResult) {
    const atEnd = (text: string) =>
      steadies.map((s) => (s.pods === teardownResult.pods ? text : ""));
    rows.push([
      `time: delete all ${teardownResult.pods} pods at once (until gone)`,
      "—",
      ...atEnd(
        `${secs(teardownResult.deleteS)}${teardownResult.remaining ? ` (${teardownResult.remaining} left)` : ""}; all had a deletionTimestamp after ${secs(teardownResult.markedS)} (deletecollection: ${teardownResult.deleteCalls})`,
      ),
      "",
    ]);
    rows.push([
      "deletionTimestamp → gone, p50 / p95 (wasmlet stops the guest, deletes the pod)",
      "—",
      ...atEnd(`${ms(teardownResult.markedToGone[0])} / ${ms(teardownResult.markedToGone[1])}`),
      "",
    ]);
    rows.push([
      'wasmlet V8 heap used / wasmlet_pods{phase="Running"} after all pods deleted (+20 s)',
      `${mbytes(metric(b.metrics, "nodejs_heap_size_used_bytes"))} / 0`,
      ...atEnd(
        `${mbytes(metric(teardownResult.metrics, "nodejs_heap_size_used_bytes"))} / ${num(metric(teardownResult.metrics, 'wasmlet_pods{phase="Running"}'))}`,
      ),
      "",
    ]);
    if (teardownResult.after)
      rows.push([
        "wasmlet RSS / CPU after all pods deleted (+20 s)",
        `${mib(b.wasmlet.rssKiB)} / ${pct(b.cpu.wasmlet)}`,
        ...steadies.map((s) =>
          s.pods === teardownResult.pods
            ? `${mib(teardownResult.after!.rssKiB)} / ${pct(teardownResult.cpu?.wasmlet)}, ${teardownResult.after!.fds} fds, ${teardownResult.after!.threads} threads`
            : "",
        ),
        "",
      ]);
    rows.push([
      "wasmlet live heap after a forced full GC, all pods deleted (leak check)",
      mbytes(b.gcHeapBytes),
      ...atEnd(
        `${mbytes(teardownResult.gcHeapBytes)} (${((teardownResult.gcHeapBytes - b.gcHeapBytes) / teardownResult.pods / 1024).toFixed(2)} KiB per deleted pod above baseline)`,
      ),
      "",
    ]);
  }

  const lines: string[] = [];
  lines.push("");
  lines.push(
    `## wasmlet density: idle pods on one node (${cpus().length} cores, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB; load average at start ${loadAtStart}, at end ${loadAll()})`,
  );
  lines.push("");
  lines.push(
    `Idle pod: the demo guest (prints one line, then sleeps 1 h), 1 Mi memory request, 4 Mi limit. wasmlet run ${wasmletArgs.filter((a) => /max-pods|timeout|log-level/.test(a)).join(" ")}, ${CONCURRENCY} creates in flight; steady figures after ${SETTLE_MS / 1000} s settling, CPU over ${CPU_WINDOW_MS / 1000} s. Each later column grows the same node. wasmlet runs under --inspect (loopback) to force a GC after each measurement.`,
  );
  lines.push("");
  lines.push(`| ${header.join(" | ")} |`);
  lines.push(`|${header.map(() => "---").join("|")}|`);
  for (const row of rows) lines.push(`| ${row.join(" | ")} |`);
  lines.push("");
  if (skipped) lines.push(`Skipped: ${skipped}`);
  for (const step of steps) lines.push(`What limited ${step.from} → ${step.to}: ${verdict(step)}`);
  for (const step of steps)
    for (const s of step.stuckSummary) lines.push(`Stuck at ${step.to}: ${s}`);
  lines.push("");
  lines.push("wasmlet log (warn and above, whole run), by message:");
  lines.push(...(logSummary.length ? logSummary : ["  none"]));
  lines.push("");
  lines.push("Control-plane logs:");
  lines.push(...componentLogs);
  console.log(lines.join("\n"));
}

/** wasmlet's warn/error lines grouped by message, with a count and one example each. */
function summarizeLog(): string[] {
  const log = logSince(0);
  const groups = new Map<string, { count: number; example: string }>();
  for (const line of log.lines) {
    let key: string;
    try {
      const record = JSON.parse(line) as { level?: string; msg?: string; err?: { code?: string } };
      if (record.level !== "warn" && record.level !== "error" && record.level !== "fatal") continue;
      key = `${record.level}: ${record.msg ?? "?"}${record.err?.code ? ` [${record.err.code}]` : ""}`;
    } catch {
      key = `(not JSON) ${line.slice(0, 80)}`;
    }
    const g = groups.get(key);
    if (g) g.count++;
    else groups.set(key, { count: 1, example: line.slice(0, 400) });
  }
  return [...groups]
    .sort((a, b) => b[1].count - a[1].count)
    .slice(0, 15)
    .map(([key, g]) => `  ${g.count} × ${key}\n      e.g. ${g.example}`);
}

/** Lines about throttling and errors in the control plane's own logs. */
async function summarizeComponentLogs(): Promise<string[]> {
  const out: string[] = [];
  for (const [name, file] of Object.entries(plane.logFiles)) {
    const text = await readFile(file, "utf8").catch(() => "");
    const lines = text.split("\n");
    const throttled = lines.filter((l) => /throttl/i.test(l) && !l.includes("FLAG:"));
    const errors = lines.filter((l) => /^E\d{4}/.test(l));
    out.push(
      `  ${name}: ${lines.length - 1} lines, ${throttled.length} about throttling, ${errors.length} error (E) lines` +
        (throttled[0]
          ? `\n      throttling e.g. ${throttled[throttled.length - 1]!.slice(0, 300)}`
          : "") +
        (errors[0] ? `\n      error e.g. ${errors[errors.length - 1]!.slice(0, 300)}` : ""),
    );
  }
  return out;
}

let exitCode = 0;
try {
  const image = `${registry.address}/bench/idle:v1`;
  await pushWasmArtifact(demoModule("idle pod: one line, then sleep", 3_600_000), image, {
    client: new RegistryClient(),
  });
  const pids = componentPids();
  say(
    `components: ${Object.entries(pids)
      .map(([k, v]) => `${k}=${v}`)
      .join(", ")}; wasmlet=${wasmletPid}`,
  );

  // Node Ready, namespace with its default ServiceAccount, watch running.
  for (const deadline = Date.now() + 120_000; ; ) {
    if ((await nodeReady()).startsWith("True")) break;
    if (wasmletExit || Date.now() > deadline)
      throw new Error(
        `wasmlet node not Ready (${wasmletExit ?? "timeout"}):\n${logSince(0).lines.slice(-20).join("\n")}`,
      );
    await sleep(500);
  }
  await client.core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
  for (let i = 0; ; i++) {
    try {
      await client.core.readNamespacedServiceAccount({ name: "default", namespace: NAMESPACE });
      break;
    } catch (error) {
      if (i > 300) throw error;
      await sleep(200);
    }
  }
  await tracker.start();
  say(`node ${NODE_NAME} Ready; baseline`);
  const baseline = await measureSteady(0, pids);

  const steadies: Steady[] = [];
  const steps: Step[] = [];
  let skipped: string | undefined;
  let current = 0;
  for (const target of TARGETS) {
    if (current > 0 && performance.now() - runStarted > ALSO_MAX_MS) {
      skipped = `${target} pods: the run had taken ${elapsed()} by ${current} pods (more than --also-max-minutes ${ALSO_MAX_MS / 60_000}).`;
      say(skipped);
      break;
    }
    if (wasmletExit) break;
    steps.push(await grow(current, target, image, pids));
    current = target;
    if (wasmletExit) break;
    steadies.push(await measureSteady(current, pids));
  }
  if (steps.length > steadies.length) steps.pop();
  const teardownResult = wasmletExit ? undefined : await deleteAll(current, pids);
  printReport(
    baseline,
    steadies,
    steps,
    teardownResult,
    skipped,
    summarizeLog(),
    await summarizeComponentLogs(),
  );
  if (wasmletExit) {
    console.log(
      `\nwasmlet ${wasmletExit} during the run; last log lines:\n${logSince(0).lines.slice(-30).join("\n")}`,
    );
    exitCode = 1;
  }
} catch (error) {
  say(`failed: ${(error as Error).stack ?? error}`);
  exitCode = 1;
} finally {
  say("tearing down");
  await teardown();
  say(`done; load average ${loadAll()}`);
}
process.exit(exitCode);
