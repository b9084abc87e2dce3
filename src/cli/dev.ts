// `wasmlet dev`: a local wasm cluster in one command — a real control plane (src/devcluster/), a
// local OCI registry, N wasmlet nodes, metrics-server (for `kubectl top`) and a demo pod — then the
// commands to try next. Ctrl-C tears it all down; `--detach` leaves it running in the background
// until `wasmlet dev stop`.
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import {
  CoreV1Api,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
} from "@kubernetes/client-node";
import { hostDefaults } from "../config/host-defaults.ts";
import { obtainControlPlaneBinaries } from "../devcluster/binaries.ts";
import { kubernetesCacheDir } from "../devcluster/cache.ts";
import { ControlPlane } from "../devcluster/control-plane.ts";
import { demoModule } from "../devcluster/demo-module.ts";
import { writeKubeconfig } from "../devcluster/kubeconfig.ts";
import { ManagedProcess } from "../devcluster/managed-process.ts";
import {
  type ClusterObjects,
  type Manifest,
  METRICS_SERVER_VERSION,
  MetricsServer,
  metricsServerCacheDir,
  obtainMetricsServer,
} from "../devcluster/metrics-server.ts";
import { assertPortFree, freePort } from "../devcluster/ports.ts";
import { LocalRegistry } from "../devcluster/registry.ts";
import { KUBERNETES_VERSION } from "../devcluster/versions.ts";
import { describeError, isWasmletError, WasmletError } from "../errors.ts";
import { pushWasmArtifact, RegistryClient } from "../images/index.ts";
import { apiError, statusCode } from "../kube/api-error.ts";
import { runtimeClass } from "../node/registration.ts";

const HELP = `Usage: wasmlet dev [options]      start a local wasm cluster (Ctrl-C stops it)
       wasmlet dev stop [options] stop a cluster started with --detach

Starts etcd, kube-apiserver, kube-scheduler and kube-controller-manager (Kubernetes ${KUBERNETES_VERSION},
built once from the Go module proxy when they are not cached), a local OCI registry, wasmlet
node(s), metrics-server ${METRICS_SERVER_VERSION} (for \`kubectl top\`; built and cached the same way) and
a demo pod, then prints what to run next.

Options:
  --nodes N             wasm nodes to start, on 127.0.0.1, 127.0.0.2, … (default 1)
  --detach              return once the nodes are Ready and the demo pod Running; stop later
                        with \`wasmlet dev stop\`
  --registry-port PORT  the local registry's port (default 5000; a free port when taken)
  --port PORT           the nodes' kubelet API port (default 10250; a free port on a node's
                        address when taken there)
  --no-demo             do not start the demo pod
  --no-metrics-server   do not start metrics-server (\`kubectl top\` then has no Metrics API)
  --state-dir DIR       where the cluster keeps its data, logs and kubeconfig
                        (default $XDG_STATE_HOME/wasmlet/dev or ~/.local/state/wasmlet/dev)
  -h, --help            show this help`;

interface DevOptions {
  nodes: number;
  detach: boolean;
  daemon: boolean;
  registryPort: number;
  port: number;
  demo: boolean;
  metricsServer: boolean;
  stateDir: string;
}

interface Status {
  state: "starting" | "ready" | "failed";
  pid: number;
  kubeconfig?: string;
  summary?: string;
  error?: string;
}

function defaultStateDir(): string {
  const base = process.env.XDG_STATE_HOME || join(homedir(), ".local", "state");
  return join(base, "wasmlet", "dev");
}

/**
 * How the user ran wasmlet, for commands printed to paste: the installed bin, or in a checkout
 * (running src/ directly) `npm run wasmlet --`.
 */
function selfCommand(): string {
  return process.argv[1]?.endsWith(join("src", "cli", "main.ts"))
    ? "npm run wasmlet --"
    : "wasmlet";
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function readStatus(stateDir: string): Promise<Status | undefined> {
  try {
    return JSON.parse(await readFile(join(stateDir, "status.json"), "utf8")) as Status;
  } catch {
    return undefined;
  }
}

/** Prints one line per step with its duration; on a terminal the step's line is rewritten in place. */
class Progress {
  readonly #tty = Boolean(process.stdout.isTTY);
  readonly #started = Date.now();
  readonly #signal: AbortSignal;

  constructor(signal: AbortSignal) {
    this.#signal = signal;
  }

  /** Runs one step; once the signal fires (Ctrl-C, `wasmlet dev stop`), no further step starts. */
  async step<T>(title: string, work: () => Promise<T>): Promise<T> {
    this.#signal.throwIfAborted();
    const began = Date.now();
    if (this.#tty) process.stdout.write(`  … ${title}`);
    else console.log(`  … ${title}`);
    try {
      const result = await work();
      const took = `${((Date.now() - began) / 1000).toFixed(1)} s`;
      if (this.#tty) process.stdout.write(`\r\x1b[2K  ✓ ${title} (${took})\n`);
      else console.log(`  ✓ ${title} (${took})`);
      return result;
    } catch (error) {
      if (this.#tty) process.stdout.write(`\r\x1b[2K  ✗ ${title}\n`);
      else console.log(`  ✗ ${title}`);
      throw error;
    }
  }

  note(line: string): void {
    if (this.#tty) process.stdout.write(`\r\x1b[2K    ${line}\n`);
    else console.log(`    ${line}`);
  }

  get elapsed(): string {
    return `${((Date.now() - this.#started) / 1000).toFixed(1)} s`;
  }
}

/**
 * Everything a running dev cluster holds, stopped in reverse order. `stop()` may be called again:
 * it then stops what was added since (a step that was still starting when the first stop came).
 */
class DevCluster {
  plane: ControlPlane | undefined;
  registry: LocalRegistry | undefined;
  metricsServer: MetricsServer | undefined;
  readonly nodes: ManagedProcess[] = [];

  async stop(): Promise<void> {
    // metrics-server first: it unregisters its APIService while the API server still answers.
    await this.metricsServer?.stop();
    await Promise.allSettled(this.nodes.map((n) => n.stop(15_000)));
    await Promise.allSettled([this.plane?.stop(), this.registry?.stop()]);
  }
}

/** The cluster as its admin sees it, for what metrics-server needs created (server-side apply). */
function clusterObjects(kc: KubeConfig): ClusterObjects {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const what = (m: KubernetesObject) => `${m.kind} ${m.metadata?.name}`;
  return {
    async apply(manifest) {
      await api
        .patch(manifest, undefined, undefined, "wasmlet-dev", true, PatchStrategy.ServerSideApply)
        .catch((error: unknown) => {
          throw apiError(error, `applying ${what(manifest)}`);
        });
    },
    async delete(manifest) {
      await api.delete(manifest).catch((error: unknown) => {
        if (statusCode(error) !== 404) throw apiError(error, `deleting ${what(manifest)}`);
      });
    },
    async get(manifest) {
      try {
        return (await api.read(manifest)) as unknown as Record<string, unknown>;
      } catch (error) {
        if (statusCode(error) === 404) return undefined;
        throw apiError(error, `reading ${what(manifest)}`);
      }
    },
  };
}

/** How often (seconds) metrics-server scrapes the nodes: what upstream's manifest uses. */
const METRIC_RESOLUTION_S = 15;

/** `error`, with the hint that the cluster starts without metrics-server too. */
function withSkipHint(error: unknown): unknown {
  const skip = "`--no-metrics-server` starts the cluster without it";
  if (isWasmletError(error)) {
    const hint = error.hint ? `${error.hint}; ${skip}` : skip;
    return new WasmletError(error.code, error.message, { hint, cause: error });
  }
  return error instanceof Error ? new Error(`${error.message} (${skip})`, { cause: error }) : error;
}

/**
 * The metrics-server binary, or undefined (with a note) when it is not cached and there is no Go
 * to build it with: it has no release binaries to download, and the cluster is useful without it.
 */
async function metricsServerBinary(progress: Progress): Promise<string | undefined> {
  try {
    return await progress.step(`metrics-server binary (${METRICS_SERVER_VERSION})`, async () => {
      try {
        const { binary } = await obtainMetricsServer({
          onProgress: () => {
            progress.note(
              `not cached in ${metricsServerCacheDir()}: building it from the Go module proxy.`,
            );
            progress.note(
              "A first build takes about 10 minutes on 2 cores (later starts take seconds).",
            );
          },
        });
        return binary;
      } catch (error) {
        throw isWasmletError(error, "WASMLET_ERR_TOOL_MISSING") ? error : withSkipHint(error);
      }
    });
  } catch (error) {
    if (!isWasmletError(error, "WASMLET_ERR_TOOL_MISSING") || process.env.WASMLET_METRICS_SERVER)
      throw error;
    progress.note(
      `metrics-server is not cached in ${metricsServerCacheDir()} and there is no Go to build it with (${error.message}): going on without it, so \`kubectl top\` will say "Metrics API not available"`,
    );
    return undefined;
  }
}

/**
 * Starts metrics-server as the ServiceAccount kube-system/metrics-server (a token from the
 * TokenRequest API, which the nodes check with a TokenReview), scraping every node's kubelet API
 * at its InternalIP and the port in its status. The nodes serve self-signed certificates
 * (`--allow-self-signed`): nothing can verify them, hence `--kubelet-insecure-tls`.
 */
async function startMetricsServer(
  binary: string,
  address: string,
  stateDir: string,
  plane: ControlPlane,
  kc: KubeConfig,
  cluster: DevCluster,
  signal: AbortSignal,
): Promise<void> {
  const objects = clusterObjects(kc);
  const [namespace, name] = ["kube-system", "metrics-server"];
  await objects.apply({
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name, namespace },
  });
  const request = await kc
    .makeApiClient(CoreV1Api)
    .createNamespacedServiceAccountToken({
      name,
      namespace,
      // A dev cluster's lifetime; the audiences default to the API server's.
      body: { spec: { audiences: [], expirationSeconds: 365 * 86_400 } },
    })
    .catch((error: unknown) => {
      throw apiError(error, `requesting a token for ServiceAccount ${namespace}/${name}`);
    });
  const token = request.status?.token;
  if (!token)
    throw new Error(`the TokenRequest for ServiceAccount ${namespace}/${name} holds no token`);
  const user = `system:serviceaccount:${namespace}:${name}`;
  const kubeconfig = await writeKubeconfig(join(stateDir, "cluster", "metrics-server.kubeconfig"), {
    server: plane.apiServerUrl,
    caFile: plane.pki.caCert,
    user: { token },
    userName: user,
  });
  cluster.metricsServer = await MetricsServer.start({
    binary,
    cluster: objects,
    kubeconfig,
    user,
    address,
    dir: join(stateDir, "cluster", "metrics-server"),
    logFile: join(stateDir, "logs", "metrics-server.log"),
    metricResolution: `${METRIC_RESOLUTION_S}s`,
    signal,
  });
}

async function waitFor<T>(
  what: string,
  timeoutMs: number,
  signal: AbortSignal,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    signal.throwIfAborted();
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`${what} did not happen within ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}

/** The kubelet API port of the node on `ip`: `wanted`, or a free one when `wanted` is taken there. */
async function nodePort(ip: string, wanted: number): Promise<number> {
  try {
    await assertPortFree(ip, wanted, "wasmlet");
    return wanted;
  } catch (error) {
    if ((error as { code?: string }).code !== "WASMLET_ERR_PORT_IN_USE") throw error;
    return freePort(ip);
  }
}

/** The pod CIDR of the dev cluster's node `index` (from 0): a block of 127.0.0.0/8. */
export function devPodCidr(index: number): string {
  return `127.${100 + index}.0.0/16`;
}

async function start(
  options: DevOptions,
  progress: Progress,
  cluster: DevCluster,
  signal: AbortSignal,
): Promise<{ kubeconfig: string; summary: string }> {
  const { stateDir } = options;
  await rm(join(stateDir, "cluster"), { recursive: true, force: true });
  await rm(join(stateDir, "nodes"), { recursive: true, force: true });
  await mkdir(join(stateDir, "logs"), { recursive: true });

  const { binaries } = await progress.step(
    `control-plane binaries (Kubernetes ${KUBERNETES_VERSION})`,
    () =>
      obtainControlPlaneBinaries({
        onProgress: (line) => {
          if (line.includes("not in")) {
            progress.note(
              `not cached in ${kubernetesCacheDir()}: building them from the Go module proxy.`,
            );
            progress.note(
              "A first build takes about 10 minutes on 2 cores (later starts take seconds).",
            );
          } else progress.note(line);
        },
      }),
  );
  const metricsServerPath = options.metricsServer ? await metricsServerBinary(progress) : undefined;
  // Each step hands what it started to `cluster` itself, so a stop that comes while the step runs
  // still finds it.
  await progress.step(
    "control plane: etcd, kube-apiserver, kube-scheduler, kube-controller-manager",
    async () => {
      cluster.plane = await ControlPlane.start({ binaries, dir: join(stateDir, "cluster") });
    },
  );
  const plane = cluster.plane as ControlPlane;
  const kubeconfig = await writeKubeconfig(join(stateDir, "kubeconfig"), {
    server: plane.apiServerUrl,
    caFile: plane.pki.caCert,
    user: { certFile: plane.pki.adminCert, keyFile: plane.pki.adminKey },
    clusterName: "wasmlet-dev",
    embed: true,
  });
  const registryPort = await progress.step("local OCI registry", async () => {
    try {
      cluster.registry = await LocalRegistry.start({
        port: options.registryPort,
        dir: join(stateDir, "registry"),
      });
    } catch (error) {
      if ((error as { code?: string }).code !== "WASMLET_ERR_PORT_IN_USE") throw error;
      progress.note(`port ${options.registryPort} is taken: using a free port instead`);
      cluster.registry = await LocalRegistry.start({
        port: await freePort(),
        dir: join(stateDir, "registry"),
      });
    }
    return cluster.registry.port;
  });

  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  // The RuntimeClass is the cluster admin's to create: nodes (system:node) may only read it.
  await clusterObjects(kc).apply(runtimeClass() as unknown as Manifest);
  const names = Array.from({ length: options.nodes }, (_, i) =>
    options.nodes === 1 ? "wasmlet-dev" : `wasmlet-dev-${i + 1}`,
  );
  await progress.step(
    `${options.nodes === 1 ? "wasmlet node" : `${options.nodes} wasmlet nodes`} Ready`,
    async () => {
      for (const [i, name] of names.entries()) {
        const ip = `127.0.0.${i + 1}`;
        const port = await nodePort(ip, options.port);
        if (port !== options.port) {
          progress.note(`${name}: port ${ip}:${options.port} is taken: using ${port} instead`);
        }
        signal.throwIfAborted();
        cluster.nodes.push(
          new ManagedProcess({
            name,
            command: process.execPath,
            args: [
              ...process.execArgv,
              process.argv[1]!,
              "run",
              // Joins like a kubelet: a bootstrap token, then its own system:node identity.
              `--bootstrap-kubeconfig=${plane.bootstrapKubeconfig}`,
              `--kubeconfig=${join(stateDir, "nodes", name, "kubeconfig")}`,
              `--node-name=${name}`,
              `--node-ip=${ip}`,
              `--address=${ip}`,
              // Pods get loopback addresses of their own: no privileges needed, and replicas
              // on one node can all serve the same port.
              "--pod-network=pod-cidr",
              `--pod-cidr=${devPodCidr(i)}`,
              `--port=${port}`,
              `--data-dir=${join(stateDir, "nodes", name)}`,
              "--allow-self-signed",
              "--no-tls-bootstrap",
              "--healthz-port=0",
            ],
            logFile: join(stateDir, "logs", `${name}.log`),
          }),
        );
      }
      await Promise.all(
        cluster.nodes.map((node, i) =>
          node.waitUntil(
            async () => {
              const status = await core.readNode({ name: names[i]! });
              return (
                status.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ??
                false
              );
            },
            60_000,
            "Ready",
          ),
        ),
      );
    },
  );

  // The API server reaches metrics-server through an EndpointSlice, and those refuse loopback
  // addresses: it listens on this host's own address (its API still needs a cluster identity).
  const metricsAddress = metricsServerPath ? hostDefaults.primaryIP() : undefined;
  if (metricsServerPath && !metricsAddress) {
    progress.note(
      "this host has no address but loopback, and the API server cannot reach metrics-server on loopback: going on without it",
    );
  } else if (metricsServerPath && metricsAddress) {
    await progress.step("metrics-server serving kubectl top", () =>
      startMetricsServer(
        metricsServerPath,
        metricsAddress,
        stateDir,
        plane,
        kc,
        cluster,
        signal,
      ).catch((error: unknown) => {
        throw signal.aborted ? error : withSkipHint(error);
      }),
    );
  }

  const registry = `localhost:${registryPort}`;
  if (options.demo) {
    await progress.step("demo pod hello Running", async () => {
      await pushWasmArtifact(demoModule(), `${registry}/wasmlet/hello:v1`, {
        client: new RegistryClient(),
        title: "hello.wasm",
      });
      // Pods are refused until the controller-manager has made the namespace's ServiceAccount.
      await waitFor("the default ServiceAccount to exist", 60_000, signal, async () => {
        await core.createNamespacedPod({
          namespace: "default",
          body: {
            metadata: { name: "hello", labels: { app: "hello" } },
            spec: {
              runtimeClassName: "wasm",
              containers: [{ name: "hello", image: `${registry}/wasmlet/hello:v1` }],
            },
          },
        });
        return true;
      });
      await waitFor("the demo pod to run", 60_000, signal, async () => {
        const pod = await core.readNamespacedPod({ namespace: "default", name: "hello" });
        return pod.status?.phase === "Running" ? true : undefined;
      });
    });
  }
  const summary = [
    "",
    `wasmlet dev is up in ${progress.elapsed}: ${names.join(", ")} on Kubernetes ${KUBERNETES_VERSION}.`,
    "",
    "Try:",
    `  export KUBECONFIG=${kubeconfig}`,
    "  kubectl get nodes -o wide",
    ...(options.demo ? ["  kubectl logs -f hello            # the demo pod greets every 2 s"] : []),
    ...(cluster.metricsServer
      ? [`  kubectl top pods                 # CPU and memory, every ${METRIC_RESOLUTION_S} s`]
      : []),
    `  ${selfCommand()} push app.wasm ${registry}/app:v1   # then run it with runtimeClassName: wasm`,
    "",
    `Logs: ${join(stateDir, "logs")}`,
  ].join("\n");
  return { kubeconfig, summary };
}

function parse(argv: string[]): DevOptions | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      nodes: { type: "string", default: "1" },
      detach: { type: "boolean", default: false },
      daemon: { type: "boolean", default: false },
      "registry-port": { type: "string", default: "5000" },
      port: { type: "string", default: "10250" },
      "no-demo": { type: "boolean", default: false },
      "no-metrics-server": { type: "boolean", default: false },
      "state-dir": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) return "help";
  const nodes = Number(values.nodes);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 250)
    throw new Error(`--nodes must be a whole number from 1 to 250, not "${values.nodes}"`);
  const port = (flag: "registry-port" | "port"): number => {
    const value = Number(values[flag]);
    if (!Number.isInteger(value) || value < 1 || value > 65535)
      throw new Error(`--${flag} must be a port number, not "${values[flag]}"`);
    return value;
  };
  return {
    nodes,
    detach: values.detach,
    daemon: values.daemon,
    registryPort: port("registry-port"),
    port: port("port"),
    demo: !values["no-demo"],
    metricsServer: !values["no-metrics-server"],
    stateDir: values["state-dir"] ?? defaultStateDir(),
  };
}

async function stop(stateDir: string): Promise<number> {
  const status = await readStatus(stateDir);
  if (!status || !isAlive(status.pid)) {
    console.log(`no wasmlet dev cluster is running (state dir ${stateDir})`);
    return 0;
  }
  process.kill(status.pid, "SIGTERM");
  const deadline = Date.now() + 60_000;
  while (isAlive(status.pid)) {
    if (Date.now() > deadline) {
      console.error(`wasmlet dev (pid ${status.pid}) did not stop within 60 s`);
      return 1;
    }
    await sleep(100);
  }
  console.log("wasmlet dev stopped");
  return 0;
}

/** Starts the cluster in a background process and returns once it is ready (or has failed). */
async function detach(argv: string[], options: DevOptions): Promise<number> {
  await mkdir(options.stateDir, { recursive: true });
  await rm(join(options.stateDir, "status.json"), { force: true });
  const logFile = join(options.stateDir, "dev.log");
  const out = openSync(logFile, "w");
  const child = spawn(
    process.execPath,
    [
      ...process.execArgv,
      process.argv[1]!,
      "dev",
      ...argv.filter((a) => a !== "--detach"),
      "--daemon",
      `--state-dir=${options.stateDir}`,
    ],
    { detached: true, stdio: ["ignore", out, out] },
  );
  closeSync(out);
  child.unref();
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  for (;;) {
    const status = await readStatus(options.stateDir);
    if (status?.state === "ready") {
      console.log(status.summary);
      console.log(
        `\nStop it with: ${selfCommand()} dev stop${options.stateDir === defaultStateDir() ? "" : ` --state-dir ${options.stateDir}`}`,
      );
      console.log(`export KUBECONFIG=${status.kubeconfig}`);
      return 0;
    }
    if (status?.state === "failed" || exited) {
      const log = await readFile(logFile, "utf8").catch(() => "");
      console.error(
        `wasmlet dev failed: ${status?.error ?? "the background process exited"}\n${log.trimEnd().split("\n").slice(-20).join("\n")}`,
      );
      return 1;
    }
    await sleep(200);
  }
}

export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === "stop") {
    const parsed = parse(rest);
    if (parsed === "help") {
      console.log(HELP);
      return 0;
    }
    return stop(parsed.stateDir);
  }
  const options = parse(argv);
  if (options === "help") {
    console.log(HELP);
    return 0;
  }
  const running = await readStatus(options.stateDir);
  if (running && running.pid !== process.pid && isAlive(running.pid)) {
    console.error(
      `a wasmlet dev cluster is already running (pid ${running.pid}); stop it with \`${selfCommand()} dev stop${options.stateDir === defaultStateDir() ? "" : ` --state-dir ${options.stateDir}`}\``,
    );
    return 1;
  }
  if (options.detach) return detach(argv, options);

  await mkdir(options.stateDir, { recursive: true });
  const writeStatus = (status: Omit<Status, "pid">) =>
    writeFile(
      join(options.stateDir, "status.json"),
      JSON.stringify({ ...status, pid: process.pid }),
    );
  await writeStatus({ state: "starting" });
  const cluster = new DevCluster();
  // Ctrl-C or `wasmlet dev stop` (SIGTERM) may come while the cluster is still starting: the
  // signal stops what is up and keeps further steps from starting; what the step in progress
  // starts is stopped when it returns. A second Ctrl-C ends at once (children are killed on exit).
  const interrupted = new AbortController();
  const progress = new Progress(interrupted.signal);
  const removeStatus = () => rm(join(options.stateDir, "status.json"), { force: true });
  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= cluster.stop().then(removeStatus);
    return stopping;
  };
  const stopped = new Promise<void>((resolve) => {
    const onSignal = () => {
      if (interrupted.signal.aborted) {
        console.log("wasmlet dev: stopping now");
        process.exit(130);
      }
      console.log("\nstopping wasmlet dev…");
      interrupted.abort(new Error("wasmlet dev was stopped while it was starting"));
      void shutdown().then(resolve);
    };
    for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, onSignal);
  });
  console.log(`Starting a local wasm cluster in ${options.stateDir}`);
  try {
    const { kubeconfig, summary } = await start(options, progress, cluster, interrupted.signal);
    interrupted.signal.throwIfAborted();
    await writeStatus({ state: "ready", kubeconfig, summary });
    if (!options.daemon) console.log(`${summary}\n\nCtrl-C stops everything.`);
  } catch (error) {
    if (interrupted.signal.aborted) {
      await shutdown();
      // Whatever the interrupted step started after the first stop.
      await cluster.stop();
      await removeStatus();
      console.log("wasmlet dev stopped");
      return 130;
    }
    await writeStatus({ state: "failed", error: describeError(error) });
    await shutdown();
    console.error(`wasmlet dev: ${describeError(error)}`);
    return 1;
  }
  await stopped;
  console.log("wasmlet dev stopped");
  return 0;
}
