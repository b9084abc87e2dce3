// metrics-server, so `kubectl top` works against the local control plane: built from the Go module
// proxy the way the control plane is (a throw-away module that requires sigs.k8s.io/metrics-server
// at a pinned release and builds its command), cached under
// `$XDG_CACHE_HOME/wasmlet/metrics-server/<version>/`; and started as a child process registered
// with the API server's aggregation layer (an APIService backed by a selector-less Service whose
// Endpoints name the address metrics-server listens on — the API server routes to endpoints, so
// that address must not be loopback).
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isWasmletError } from "../errors.ts";
import { GO_HINT } from "./build-from-source.ts";
import { wasmletCacheDir } from "./cache.ts";
import { devclusterError } from "./errors.ts";
import { BuildLog, obtainGoTool } from "./go-tool.ts";
import { httpsGet } from "./https-probe.ts";
import { ManagedProcess } from "./managed-process.ts";
import { freePort } from "./ports.ts";
import { findExecutable } from "./tools.ts";

/** The newest metrics-server release that resolves and builds with Go 1.26 here. */
export const METRICS_SERVER_VERSION = "v0.8.0";
const MODULE = "sigs.k8s.io/metrics-server";
const COMMAND = `${MODULE}/cmd/metrics-server`;

/** Where the metrics-server binary of `version` is cached. */
export function metricsServerCacheDir(version = METRICS_SERVER_VERSION): string {
  return join(wasmletCacheDir(), "metrics-server", version);
}

/** Builds `metrics-server` into `binDir`; the compiler output goes to `<binDir>/build.log`. */
export async function buildMetricsServer(
  binDir: string,
  options: { onProgress?: (line: string) => void; version?: string } = {},
): Promise<string> {
  await findExecutable("go", GO_HINT);
  const version = options.version ?? METRICS_SERVER_VERSION;
  const progress = options.onProgress ?? (() => {});
  const moduleDir = join(binDir, "build");
  await mkdir(moduleDir, { recursive: true });
  const log = new BuildLog(join(binDir, "build.log"));
  const target = join(binDir, "metrics-server");
  try {
    progress(`building ${MODULE} ${version} from the Go module proxy`);
    await writeFile(
      join(moduleDir, "go.mod"),
      `module wasmlet.local/metricsserver\n\ngo 1.26.0\n\nrequire ${MODULE} ${version}\n`,
    );
    await writeFile(
      join(moduleDir, "tools.go"),
      `//go:build tools\n\npackage tools\n\nimport _ "${COMMAND}"\n`,
    );
    await log.go(["mod", "tidy"], moduleDir);
    // Stamped like the release's Makefile does (metrics-server reports client-go's version).
    const ldflags = `-s -w -X k8s.io/client-go/pkg/version.gitVersion=${version}`;
    await log.go(
      ["build", "-trimpath", `-ldflags=${ldflags}`, "-o", `${target}.tmp`, COMMAND],
      moduleDir,
    );
    await rename(`${target}.tmp`, target);
  } catch (error) {
    return log.fail(`building metrics-server ${version}`, error);
  }
  await log.close();
  await rm(moduleDir, { recursive: true, force: true });
  return target;
}

/**
 * The metrics-server binary: `WASMLET_METRICS_SERVER` when set, else the cache, else a build from
 * the Go module proxy into the cache.
 */
export function obtainMetricsServer(
  options: { onProgress?: (line: string) => void } = {},
): Promise<{ binary: string; source: "environment" | "cache" | "built" }> {
  return obtainGoTool({
    name: "metrics-server",
    envVar: "WASMLET_METRICS_SERVER",
    cacheDir: metricsServerCacheDir(),
    build: (dir) => buildMetricsServer(dir, options),
  });
}

/**
 * How the starter changes the cluster, as a cluster admin (kubectl, a client library): plain
 * manifests in and out, so this module stays free of Kubernetes types.
 */
export interface ClusterObjects {
  /** Creates or updates the object (server-side apply). */
  apply(manifest: Manifest): Promise<void>;
  /** Deletes the object; an absent one is no error. */
  delete(manifest: Manifest): Promise<void>;
  /** The object as the API server has it, or undefined when absent. */
  get(manifest: Manifest): Promise<Record<string, unknown> | undefined>;
}

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

export interface MetricsServerOptions {
  binary: string;
  /** Creates (and on stop deletes) the RBAC, Service, EndpointSlice and APIService. */
  cluster: ClusterObjects;
  /** metrics-server's own identity toward the API server (and toward kubelets, unless `kubeletClient`). */
  kubeconfig: string;
  /** The user that identity authenticates as: what the RBAC bindings name. */
  user: string;
  /** A client certificate for the kubelets instead of the kubeconfig's credentials. */
  kubeletClient?: { certFile: string; keyFile: string };
  /**
   * The address metrics-server listens on and the API server reaches it at (through an
   * EndpointSlice, which refuses loopback: the host's own address).
   */
  address: string;
  /** Its HTTPS port (default: a free one). */
  port?: number;
  /** Its serving certificate (and its log, unless `logFile`). */
  dir: string;
  /** Where its output goes (default `<dir>/metrics-server.log`). */
  logFile?: string;
  /** How often it scrapes the kubelets (at least 10s in this release). */
  metricResolution?: string;
  /** Namespace of its Service and EndpointSlice. */
  namespace?: string;
  /** Scrape only the nodes with these labels (`key=value,…`); all nodes when absent. */
  nodeSelector?: string;
  readyTimeoutMs?: number;
  /** Stops a start in progress (the process, then what it was granted): start() then throws. */
  signal?: AbortSignal;
  onProgress?: (line: string) => void;
}

const NAME = "metrics-server";
const API_SERVICE = "v1beta1.metrics.k8s.io";

/** What metrics-server needs in the cluster, as the upstream manifest grants it. */
function clusterObjects(options: MetricsServerOptions, port: number): Manifest[] {
  const namespace = options.namespace ?? "kube-system";
  const subject = [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: options.user }];
  const roleRef = (kind: string, name: string) => ({
    apiGroup: "rbac.authorization.k8s.io",
    kind,
    name,
  });
  return [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "system:metrics-server" },
      rules: [
        { apiGroups: [""], resources: ["nodes/metrics"], verbs: ["get"] },
        { apiGroups: [""], resources: ["pods", "nodes"], verbs: ["get", "list", "watch"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "system:metrics-server" },
      roleRef: roleRef("ClusterRole", "system:metrics-server"),
      subjects: subject,
    },
    {
      // Delegated authentication and authorization of the API server's proxied requests.
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "metrics-server:system:auth-delegator" },
      roleRef: roleRef("ClusterRole", "system:auth-delegator"),
      subjects: subject,
    },
    {
      // The front-proxy (requestheader) CA and client CA it trusts, from kube-system's ConfigMap.
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "metrics-server-auth-reader", namespace: "kube-system" },
      roleRef: roleRef("Role", "extension-apiserver-authentication-reader"),
      subjects: subject,
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: NAME, namespace },
      spec: { ports: [{ name: "https", port: 443, protocol: "TCP", targetPort: port }] },
    },
    {
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: {
        name: NAME,
        namespace,
        labels: {
          "kubernetes.io/service-name": NAME,
          "endpointslice.kubernetes.io/managed-by": "wasmlet-devcluster",
        },
      },
      addressType: options.address.includes(":") ? "IPv6" : "IPv4",
      endpoints: [{ addresses: [options.address], conditions: { ready: true } }],
      ports: [{ name: "https", port, protocol: "TCP" }],
    },
    {
      apiVersion: "apiregistration.k8s.io/v1",
      kind: "APIService",
      metadata: { name: API_SERVICE },
      spec: {
        service: { namespace, name: NAME, port: 443 },
        group: "metrics.k8s.io",
        version: "v1beta1",
        // It serves a self-signed certificate from its --cert-dir.
        insecureSkipTLSVerify: true,
        groupPriorityMinimum: 100,
        versionPriority: 100,
      },
    },
  ];
}

/**
 * A running metrics-server registered as `v1beta1.metrics.k8s.io`, so `kubectl top` works.
 * `stop()` unregisters it first (a dead APIService breaks discovery, and with it namespace
 * deletion), then stops the process and deletes what it was granted. Safe to call twice.
 */
export class MetricsServer {
  readonly url: string;
  readonly #process: ManagedProcess;
  readonly #cluster: ClusterObjects;
  readonly #objects: Manifest[];
  #stopping: Promise<void> | undefined;

  private constructor(
    url: string,
    process: ManagedProcess,
    cluster: ClusterObjects,
    objects: Manifest[],
  ) {
    this.url = url;
    this.#process = process;
    this.#cluster = cluster;
    this.#objects = objects;
  }

  static async start(options: MetricsServerOptions): Promise<MetricsServer> {
    const progress = options.onProgress ?? (() => {});
    options.signal?.throwIfAborted();
    const port = options.port ?? (await freePort(options.address));
    const { cluster } = options;
    const objects = clusterObjects(options, port);
    await mkdir(join(options.dir, "certs"), { recursive: true });
    progress("granting metrics-server its RBAC and registering its Service");
    // The APIService goes last, once metrics-server listens.
    try {
      for (const object of objects.slice(0, -1)) await cluster.apply(object);
    } catch (error) {
      for (const object of objects.slice(0, -1).reverse())
        await cluster.delete(object).catch(() => {});
      throw error;
    }
    const host = options.address.includes(":") ? `[${options.address}]` : options.address;
    const url = `https://${host}:${port}`;
    const args = [
      `--kubeconfig=${options.kubeconfig}`,
      `--authentication-kubeconfig=${options.kubeconfig}`,
      `--authorization-kubeconfig=${options.kubeconfig}`,
      `--bind-address=${options.address}`,
      `--secure-port=${port}`,
      `--cert-dir=${join(options.dir, "certs")}`,
      "--kubelet-insecure-tls",
      "--kubelet-preferred-address-types=InternalIP",
      "--kubelet-use-node-status-port",
      // Must stay below 90% of the resolution.
      "--kubelet-request-timeout=5s",
      `--metric-resolution=${options.metricResolution ?? "10s"}`,
      ...(options.nodeSelector ? [`--node-selector=${options.nodeSelector}`] : []),
      ...(options.kubeletClient
        ? [
            `--kubelet-client-certificate=${options.kubeletClient.certFile}`,
            `--kubelet-client-key=${options.kubeletClient.keyFile}`,
          ]
        : []),
      "--v=2",
    ];
    progress(`starting metrics-server on ${url}`);
    const child = new ManagedProcess({
      name: NAME,
      command: options.binary,
      args,
      logFile: options.logFile ?? join(options.dir, "metrics-server.log"),
    });
    const server = new MetricsServer(url, child, cluster, objects);
    // An abort ends the process, which ends the waits below.
    const onAbort = () => void child.stop(5000);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const timeout = options.readyTimeoutMs ?? 60_000;
      await child.waitUntil(
        async () =>
          (await httpsGet(`${url}/livez`, { ca: "", rejectUnauthorized: false })).status === 200,
        timeout,
        "serving",
      );
      const apiService = objects.at(-1)!;
      await cluster.apply(apiService);
      let available: Condition | undefined;
      await child
        .waitUntil(
          async () => {
            const current = (await cluster.get(apiService)) as
              | { status?: { conditions?: Condition[] } }
              | undefined;
            available = current?.status?.conditions?.find((c) => c.type === "Available");
            return available?.status === "True";
          },
          timeout,
          `available as APIService ${API_SERVICE}`,
        )
        .catch((error: unknown) => {
          if (!isWasmletError(error, "WASMLET_ERR_COMPONENT_NOT_READY")) throw error;
          throw devclusterError(
            "WASMLET_ERR_COMPONENT_NOT_READY",
            `the API server does not find APIService ${API_SERVICE} available (${available?.reason ?? "no status"}: ${available?.message ?? ""}); ${error.message}`,
            { cause: error },
          );
        });
      options.signal?.throwIfAborted();
      progress("metrics-server is available");
      return server;
    } catch (error) {
      await server.stop();
      throw options.signal?.aborted ? options.signal.reason : error;
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  get logFile(): string {
    return this.#process.logFile;
  }

  get running(): boolean {
    return this.#process.running;
  }

  logTail(lines?: number): Promise<string> {
    return this.#process.logTail(lines);
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      for (const object of [...this.#objects].reverse()) {
        await this.#cluster.delete(object).catch(() => {});
        if (object.kind === "APIService") await this.#process.stop(5000);
      }
    })();
    return this.#stopping;
  }
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}
