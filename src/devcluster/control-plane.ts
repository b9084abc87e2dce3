// A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler as child processes with free ports, a throw-away PKI and a temp data dir. Used by
// `wasmlet dev` and shared by the end-to-end tests. `stop()` leaves no process behind. One
// component can be stopped and started again with the same flags, data and ports (fault tests:
// an API server or etcd restart).
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ControlPlaneBinaries } from "./binaries.ts";
import { devclusterError } from "./errors.ts";
import { httpsGet } from "./https-probe.ts";
import { writeKubeconfig } from "./kubeconfig.ts";
import { ManagedProcess } from "./managed-process.ts";
import { prepareNodeBootstrap } from "./node-bootstrap.ts";
import { type ClusterPki, generateClusterPki } from "./pki.ts";
import { assertPortFree, freePort } from "./ports.ts";

export interface ControlPlaneOptions {
  binaries: ControlPlaneBinaries;
  /** Data, PKI, kubeconfigs and logs; a temp dir (removed on stop) when absent. */
  dir?: string;
  /** Address the API server binds and advertises (loopback by default). */
  host?: string;
  apiServerPort?: number;
  /** How long the controller-manager waits for a silent node before marking it Unknown. */
  nodeMonitorGracePeriod?: string;
  /** Default tolerationSeconds for the not-ready/unreachable taints (eviction timing). */
  evictionTolerationSeconds?: number;
  readyTimeoutMs?: number;
  onProgress?: (line: string) => void;
}

/** The components of a control plane, in the order they start. */
export type ControlPlaneComponent =
  | "etcd"
  | "kube-apiserver"
  | "kube-controller-manager"
  | "kube-scheduler";

interface ComponentSpec {
  command: string;
  args: string[];
  /** Resolves true once the component serves (set when start() first waits for it). */
  ready?: () => Promise<boolean>;
}

export class ControlPlane {
  readonly dir: string;
  readonly pki: ClusterPki;
  readonly apiServerUrl: string;
  /** Admin (system:masters) kubeconfig. */
  readonly kubeconfig: string;
  /** Bootstrap-token kubeconfig nodes join with (TLS bootstrapping); set once started. */
  bootstrapKubeconfig = "";
  #processes: ManagedProcess[] = [];
  readonly #specs = new Map<ControlPlaneComponent, ComponentSpec>();
  #readyTimeoutMs = 90_000;
  #ownsDir: boolean;
  #stopped = false;

  private constructor(
    dir: string,
    ownsDir: boolean,
    pki: ClusterPki,
    apiServerUrl: string,
    kubeconfig: string,
  ) {
    this.dir = dir;
    this.#ownsDir = ownsDir;
    this.pki = pki;
    this.apiServerUrl = apiServerUrl;
    this.kubeconfig = kubeconfig;
  }

  static async start(options: ControlPlaneOptions): Promise<ControlPlane> {
    const progress = options.onProgress ?? (() => {});
    const host = options.host ?? "127.0.0.1";
    const ownsDir = options.dir === undefined;
    const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "wasmlet-cluster-")));
    const logs = join(dir, "logs");
    await mkdir(logs, { recursive: true });

    progress("generating certificates");
    const pki = await generateClusterPki(join(dir, "pki"), [host]);
    const apiPort = options.apiServerPort ?? (await freePort(host));
    if (options.apiServerPort !== undefined) await assertPortFree(host, apiPort, "kube-apiserver");
    const apiServerUrl = `https://${host}:${apiPort}`;
    const kubeconfig = await writeKubeconfig(join(dir, "admin.kubeconfig"), {
      server: apiServerUrl,
      caFile: pki.caCert,
      user: { certFile: pki.adminCert, keyFile: pki.adminKey },
    });
    const plane = new ControlPlane(dir, ownsDir, pki, apiServerUrl, kubeconfig);
    const timeout = options.readyTimeoutMs ?? 90_000;
    plane.#readyTimeoutMs = timeout;
    try {
      progress("starting etcd");
      const [etcdClient, etcdPeer] = [await freePort(), await freePort()];
      const etcd = plane.#spawn("etcd", options.binaries.etcd, [
        "--name=wasmlet",
        `--data-dir=${join(dir, "etcd")}`,
        `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=wasmlet=http://127.0.0.1:${etcdPeer}`,
        "--unsafe-no-fsync",
        "--log-level=warn",
      ]);
      await plane.#serving(
        etcd,
        async () => {
          const response = await fetch(`http://127.0.0.1:${etcdClient}/health`);
          return response.ok && ((await response.json()) as { health?: string }).health === "true";
        },
        timeout,
      );

      progress("starting kube-apiserver");
      const toleration = String(options.evictionTolerationSeconds ?? 300);
      const apiserver = plane.#spawn("kube-apiserver", options.binaries["kube-apiserver"], [
        `--etcd-servers=http://127.0.0.1:${etcdClient}`,
        `--bind-address=${host}`,
        `--advertise-address=${host}`,
        // Loopback addresses may not be endpoints, so the kubernetes Service gets none.
        "--endpoint-reconciler-type=none",
        `--secure-port=${apiPort}`,
        `--tls-cert-file=${pki.apiserverCert}`,
        `--tls-private-key-file=${pki.apiserverKey}`,
        `--client-ca-file=${pki.caCert}`,
        `--service-account-issuer=https://kubernetes.default.svc.cluster.local`,
        `--service-account-key-file=${pki.serviceAccountPub}`,
        `--service-account-signing-key-file=${pki.serviceAccountKey}`,
        "--service-cluster-ip-range=10.0.0.0/24",
        "--authorization-mode=Node,RBAC",
        // Nodes join with a bootstrap token and run as system:node:<name> (node-bootstrap.ts).
        "--enable-bootstrap-token-auth=true",
        "--enable-admission-plugins=NodeRestriction",
        `--kubelet-client-certificate=${pki.kubeletClientCert}`,
        `--kubelet-client-key=${pki.kubeletClientKey}`,
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        `--requestheader-client-ca-file=${pki.frontProxyCaCert}`,
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        `--proxy-client-cert-file=${pki.frontProxyClientCert}`,
        `--proxy-client-key-file=${pki.frontProxyClientKey}`,
        "--enable-aggregator-routing=true",
        `--default-not-ready-toleration-seconds=${toleration}`,
        `--default-unreachable-toleration-seconds=${toleration}`,
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
      ]);
      const ca = await readFile(pki.caCert);
      const admin = { ca, cert: await readFile(pki.adminCert), key: await readFile(pki.adminKey) };
      await plane.#serving(
        apiserver,
        async () => (await httpsGet(`${apiServerUrl}/readyz`, admin)).status === 200,
        timeout,
      );

      progress("starting kube-controller-manager and kube-scheduler");
      const cmKubeconfig = await writeKubeconfig(join(dir, "controller-manager.kubeconfig"), {
        server: apiServerUrl,
        caFile: pki.caCert,
        user: { certFile: pki.controllerManagerCert, keyFile: pki.controllerManagerKey },
        userName: "system:kube-controller-manager",
      });
      const schedKubeconfig = await writeKubeconfig(join(dir, "scheduler.kubeconfig"), {
        server: apiServerUrl,
        caFile: pki.caCert,
        user: { certFile: pki.schedulerCert, keyFile: pki.schedulerKey },
        userName: "system:kube-scheduler",
      });
      const [cmPort, schedPort] = [await freePort(), await freePort()];
      const cm = plane.#spawn(
        "kube-controller-manager",
        options.binaries["kube-controller-manager"],
        [
          `--kubeconfig=${cmKubeconfig}`,
          `--authentication-kubeconfig=${cmKubeconfig}`,
          `--authorization-kubeconfig=${cmKubeconfig}`,
          "--bind-address=127.0.0.1",
          `--secure-port=${cmPort}`,
          "--leader-elect=false",
          "--use-service-account-credentials=true",
          `--service-account-private-key-file=${pki.serviceAccountKey}`,
          `--root-ca-file=${pki.caCert}`,
          `--cluster-signing-cert-file=${pki.caCert}`,
          `--cluster-signing-key-file=${pki.caKey}`,
          `--node-monitor-grace-period=${options.nodeMonitorGracePeriod ?? "50s"}`,
          "--node-monitor-period=2s",
          "--profiling=false",
          "--v=1",
        ],
      );
      const scheduler = plane.#spawn("kube-scheduler", options.binaries["kube-scheduler"], [
        `--kubeconfig=${schedKubeconfig}`,
        `--authentication-kubeconfig=${schedKubeconfig}`,
        `--authorization-kubeconfig=${schedKubeconfig}`,
        "--bind-address=127.0.0.1",
        `--secure-port=${schedPort}`,
        "--leader-elect=false",
        "--profiling=false",
        "--v=1",
      ]);
      const healthy = (port: number) => async () =>
        (await httpsGet(`https://127.0.0.1:${port}/healthz`, { ca, rejectUnauthorized: false }))
          .status === 200;
      await Promise.all([
        plane.#serving(cm, healthy(cmPort), timeout),
        plane.#serving(scheduler, healthy(schedPort), timeout),
      ]);
      plane.bootstrapKubeconfig = await prepareNodeBootstrap({
        server: apiServerUrl,
        admin,
        dir,
        caFile: pki.caCert,
      });
      progress(`control plane ready at ${apiServerUrl}`);
      return plane;
    } catch (error) {
      await plane.stop();
      throw error;
    }
  }

  #spawn(name: ControlPlaneComponent, command: string, args: string[]): ManagedProcess {
    this.#specs.set(name, { command, args });
    const child = this.#launch(name);
    this.#processes.push(child);
    return child;
  }

  #launch(name: ControlPlaneComponent): ManagedProcess {
    const spec = this.#specs.get(name)!;
    return new ManagedProcess({
      name,
      command: spec.command,
      args: spec.args,
      // Appended to: a restarted component's output follows its earlier run's.
      logFile: join(this.dir, "logs", `${name}.log`),
    });
  }

  /** Waits until the component serves, and remembers how to tell (for startComponent). */
  #serving(child: ManagedProcess, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    this.#specs.get(child.name as ControlPlaneComponent)!.ready = ready;
    return child.waitUntil(ready, timeoutMs);
  }

  #process(name: ControlPlaneComponent): ManagedProcess {
    // start() spawns every component before it returns the control plane.
    return this.#processes.find((p) => p.name === name)!;
  }

  /**
   * Stops one component (SIGTERM, then SIGKILL after `graceMs`), or kills it at once with
   * `{ kill: true }`; the others keep running. `startComponent` brings it back.
   */
  async stopComponent(
    name: ControlPlaneComponent,
    options: { graceMs?: number; kill?: boolean } = {},
  ): Promise<void> {
    const child = this.#process(name);
    if (options.kill) await child.kill();
    else await child.stop(options.graceMs ?? 10_000);
  }

  /**
   * Starts a stopped component again with the same flags, data directory and ports, and waits
   * until it serves (etcd healthy, the API server ready, the others healthy). A component that
   * still runs is only waited for.
   */
  async startComponent(name: ControlPlaneComponent): Promise<void> {
    if (this.#stopped)
      throw devclusterError("WASMLET_ERR_COMPONENT_EXITED", "the control plane was stopped");
    const index = this.#processes.indexOf(this.#process(name));
    let child = this.#processes[index]!;
    if (!child.running) {
      child = this.#launch(name);
      this.#processes[index] = child;
    }
    const ready = this.#specs.get(name)!.ready ?? (async () => true);
    await child.waitUntil(ready, this.#readyTimeoutMs);
  }

  /** Component log files, by name. */
  get logFiles(): Record<string, string> {
    return Object.fromEntries(this.#processes.map((p) => [p.name, p.logFile]));
  }

  /** Stops every component (scheduler and controller-manager first, etcd last). Safe to call twice. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const child of [...this.#processes].reverse()) await child.stop(10_000);
    if (this.#ownsDir) await rm(this.dir, { recursive: true, force: true });
  }
}
