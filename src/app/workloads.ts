// The part of the node that runs pods: it builds the runtime, the image service and the pod
// controller, connects them through the pods' ports, feeds the controller from a resilient watch
// of the pods bound to this node, and registers the kubelet API endpoints that read what runs
// (logs, exec, attach, metrics, stats, pods).
import { join } from "node:path";
import type { V1Pod, V1Service } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { describeError } from "../errors.ts";
import { ImageService } from "../images/image-service.ts";
import { isNotFound } from "../kube/api-error.ts";
import type { KubeClient } from "../kube/client.ts";
import { ResilientWatch } from "../kube/watch.ts";
import { CpuRates, type PodUsage } from "../metrics/usage.ts";
import { WasmletMetrics } from "../metrics/wasmlet-metrics.ts";
import { parsePodCidr } from "../network/cidr.ts";
import { ensureLocalRoute } from "../network/local-route.ts";
import { PodNetwork } from "../network/pod-network.ts";
import { PodController } from "../pods/controller.ts";
import type { Timing } from "../pods/lifecycle-deps.ts";
import { SUPPORTED_IMPORTS } from "../runtime/module-check.ts";
import { Runtime } from "../runtime/runtime.ts";
import type { RuntimeOptions } from "../runtime/types.ts";
import { containerLogsRoute } from "../server/container-logs.ts";
import { attachRoutes, type ExecAttachDeps, execRoutes } from "../server/exec-attach.ts";
import { connectTcp, portForwardRoutes } from "../server/port-forward.ts";
import { statsRoutes } from "../server/stats-routes.ts";
import type { AppContext, Component, ComponentFactory } from "./app.ts";
import { appError } from "./errors.ts";
import { ImageServicePort } from "./image-port.ts";
import { KubeApiPort, type RuntimeClassLookup } from "./kube-port.ts";
import { resolveLogTarget } from "./log-targets.ts";
import { WasiRuntimePort } from "./runtime-port.ts";

export interface WorkloadOptions {
  /** Overrides of the kubelet's timings (tests shorten them). */
  timing?: Partial<Timing>;
  runtime?: Omit<RuntimeOptions, "logger">;
}

/** RuntimeClass handlers, read on demand and kept for a while (admission asks once per pod). */
class RuntimeClassCache implements RuntimeClassLookup {
  readonly #kube: KubeClient;
  readonly #cache = new Map<string, { handler: string | undefined; at: number }>();
  readonly #ttlMs: number;

  constructor(kube: KubeClient, ttlMs = 30_000) {
    this.#kube = kube;
    this.#ttlMs = ttlMs;
  }

  async handler(name: string): Promise<string | undefined> {
    const cached = this.#cache.get(name);
    if (cached && Date.now() - cached.at < this.#ttlMs) return cached.handler;
    let handler: string | undefined;
    try {
      handler = (await this.#kube.nodeApi.readRuntimeClass({ name })).handler;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    this.#cache.set(name, { handler, at: Date.now() });
    return handler;
  }
}

/** The node's own key among the CPU rates (container ids never start with a space). */
const NODE_CPU_KEY = " node";
/** The kubelet's ImageGCPeriod. */
const IMAGE_GC_PERIOD_MS = 5 * 60_000;

export function workloads(options: WorkloadOptions = {}): ComponentFactory {
  return (context) => new Workloads(context, options);
}

export class Workloads implements Component {
  readonly name = "workloads";
  readonly runtime: Runtime;
  readonly images: ImageService;
  readonly controller: PodController;
  readonly network: PodNetwork;
  readonly metrics = new WasmletMetrics();
  /** CPU rates for /stats/summary, from one measurement to the next. */
  readonly #cpuRates = new CpuRates();
  readonly #runtimePort: WasiRuntimePort;
  readonly #watch: ResilientWatch<V1Pod>;
  /** Services, for the pods' service variables (the kubelet's service informer). */
  readonly #services: ResilientWatch<V1Service>;
  readonly #log: Logger;
  readonly #node: AppContext["node"];
  readonly #shutdownGraceMs: number;
  #closing: Promise<void> | undefined;
  #imageGc: NodeJS.Timeout | undefined;

  constructor(context: AppContext, options: WorkloadOptions = {}) {
    const { config, kube, events, node, logger } = context;
    this.#log = logger.child({ component: "workloads" });
    kube.onFailure((failure) => this.metrics.apiErrors.inc({ ...failure }));
    this.#shutdownGraceMs = config.shutdownGracePeriodMs;
    this.runtime = new Runtime({
      workers: config.runtimeWorkers,
      ...options.runtime,
      logger: logger.child({ component: "runtime" }),
    });
    this.images = new ImageService({
      dataDir: config.dataDir,
      registry: { plainHttp: config.insecureRegistries },
      ...(config.imageCredentialFile ? { dockerConfigPath: config.imageCredentialFile } : {}),
      supportedImports: Object.entries(SUPPORTED_IMPORTS).flatMap(([module, names]) =>
        names.map((n) => `${module}.${n}`),
      ),
      gc: {
        highPercent: config.imageGcHighThresholdPercent,
        lowPercent: config.imageGcLowThresholdPercent,
      },
      inUse: () => this.controller.imagesInUse(),
    });
    const fieldSelector = `spec.nodeName=${config.nodeName}`;
    const podLogsDir = join(config.dataDir, "logs");
    this.#runtimePort = new WasiRuntimePort({
      runtime: this.runtime,
      logRotation: {
        maxBytes: config.containerLogMaxSizeBytes,
        maxFiles: config.containerLogMaxFiles,
      },
      scratchDir: join(config.dataDir, "mounts"),
      onRestart: () => this.metrics.containerRestarts.inc(),
      onExit: (status) => {
        if (status.reason === "OOMKilled") this.metrics.oomKills.inc();
      },
    });
    const seenAt = new Map<string, number>();
    this.network = new PodNetwork({
      mode: config.podNetwork,
      nodeIP: config.nodeIP,
      ...(config.podCIDR ? { cidr: parsePodCidr(config.podCIDR) } : {}),
      maxConnections: config.maxPodConnections,
      wasmletPorts: [config.port, config.healthzPort].filter((p) => p > 0),
    });
    this.#node = node;
    this.controller = new PodController({
      network: this.network,
      node: {
        nodeName: config.nodeName,
        nodeIPs: [config.nodeIP],
        allocatable: () => (node.node?.status?.allocatable ?? {}) as Record<string, string>,
        podLogsDir,
      },
      podsDir: join(config.dataDir, "pods"),
      hostPath: config.allowHostPath,
      images: new ImageServicePort(this.images, {
        onPulled: (bytes) => {
          this.metrics.imagePulls.inc({ result: "pulled" });
          this.metrics.imagePullBytes.inc(bytes);
        },
        onPresent: () => this.metrics.imagePulls.inc({ result: "cached" }),
        onFailed: () => this.metrics.imagePulls.inc({ result: "failed" }),
      }),
      runtime: this.#runtimePort,
      kube: new KubeApiPort({
        kube,
        events,
        runtimeClasses: new RuntimeClassCache(kube),
        services: () => (this.#services.hasSynced ? this.#services.list() : undefined),
      }),
      logger: logger.child({ component: "pods" }),
      onState: (pod, state) => {
        if (!seenAt.has(pod.uid)) seenAt.set(pod.uid, performance.now());
        if (state === "Running")
          this.metrics.podStartSeconds.observe((performance.now() - seenAt.get(pod.uid)!) / 1000);
        if (state === "Terminated") seenAt.delete(pod.uid);
      },
      timing: {
        crashLoop: {
          initialMs: config.crashLoopBackoffBaseMs,
          maxMs: config.crashLoopBackoffMaxMs,
          resetAfterMs: 600_000,
        },
        volumeRefreshMs: config.syncFrequencyMs,
        ...options.timing,
      },
    });
    this.#watch = new ResilientWatch<V1Pod>({
      kubeConfig: kube.kubeConfig,
      path: "/api/v1/pods",
      typeName: "V1Pod",
      fieldSelector,
      list: () => kube.core.listPodForAllNamespaces({ fieldSelector }),
      handler: {
        added: (pod) => this.controller.onPodUpsert(pod),
        modified: (pod) => this.controller.onPodUpsert(pod),
        deleted: (pod) => this.controller.onPodDeleted(pod),
        synced: (pods) => {
          this.controller
            .resync(pods)
            .catch((error: unknown) => this.#log.error({ err: error }, "resync failed"));
        },
      },
      logger: this.#log,
    });
    this.#services = new ResilientWatch<V1Service>({
      kubeConfig: kube.kubeConfig,
      path: "/api/v1/services",
      typeName: "V1Service",
      list: () => kube.core.listServiceForAllNamespaces(),
      handler: {},
      logger: this.#log,
    });
    this.#routes(context, podLogsDir);
    node.setImageSource(async () =>
      (await this.images.list()).map((image) => ({
        id: image.imageID,
        reference: image.reference,
        sizeBytes: image.size,
      })),
    );
    node.setWorkloadSource(() => {
      const containers = this.runtime.containers();
      const memoryBytes = containers.reduce((sum, c) => sum + c.memoryBytes(), 0);
      return {
        pods: this.controller.size,
        containers: containers.length,
        memoryBytes,
      };
    });
  }

  /** Registers the kubelet API endpoints that read what runs here. */
  #routes(context: AppContext, podLogsDir: string): void {
    const { server } = context;
    server.route(
      containerLogsRoute({
        resolve: (namespace, name, container, previous) =>
          resolveLogTarget(
            {
              podLogsDir,
              pod: (ns, n) => this.#watch.get(ns, n),
              live: (ns, n, c) => {
                const instance = this.controller.instance(ns, n, c);
                const running = instance && this.runtime.container(instance.id);
                return instance && running
                  ? { logPath: instance.logPath, exited: running.exited }
                  : undefined;
              },
            },
            namespace,
            name,
            container,
            previous,
          ),
      }),
    );
    const execDeps: ExecAttachDeps = {
      resolve: (namespace, name, containerName, podUid) => {
        const pod = this.#watch.get(namespace, name);
        if (!pod || (podUid !== undefined && pod.metadata?.uid !== podUid))
          return { kind: "pod-not-found" };
        const spec = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].find(
          (c) => c.name === containerName,
        );
        if (!spec) return { kind: "container-not-found" };
        const instance = this.controller.instance(namespace, name, containerName);
        const container = instance && this.runtime.container(instance.id);
        if (!container?.running) {
          const waiting = [
            ...(pod.status?.containerStatuses ?? []),
            ...(pod.status?.initContainerStatuses ?? []),
          ].find((s) => s.name === containerName)?.state?.waiting?.reason;
          return waiting ? { kind: "not-running", reason: waiting } : { kind: "not-running" };
        }
        return { kind: "container", container, stdinOnce: spec.stdinOnce ?? false };
      },
    };
    for (const route of [...execRoutes(execDeps), ...attachRoutes(execDeps)]) server.route(route);
    // Lifecycle states in which a pod's containers may run: its ports can be forwarded to.
    const forwardable = new Set<string | undefined>(["Initializing", "Running", "Terminating"]);
    const portForward = portForwardRoutes({
      resolve: (namespace, name, podUid) => {
        const pod = this.#watch.get(namespace, name);
        const uid = pod?.metadata?.uid ?? "";
        if (!pod || (podUid !== undefined && uid !== podUid)) return { kind: "pod-not-found" };
        // The pod's listeners are bound to its address (the node's IP in node mode).
        const host = this.network.podIP(uid) ?? pod.status?.podIP;
        if (!host || !forwardable.has(this.controller.stateOf(uid))) return { kind: "not-running" };
        return { kind: "pod", uid, dial: (port) => connectTcp(host, port) };
      },
    });
    for (const route of portForward) server.route(route);
    for (const route of statsRoutes({
      usage: () => this.#usage(context),
      pods: () => this.#watch.list(),
      metrics: async () => {
        await this.#refreshGauges();
        return { contentType: this.metrics.contentType, body: await this.metrics.render() };
      },
    })) {
      server.route(route);
    }
  }

  async #refreshGauges(): Promise<void> {
    const phases = new Map<string, number>();
    for (const pod of this.#watch.list()) {
      const phase = pod.status?.phase ?? "Pending";
      phases.set(phase, (phases.get(phase) ?? 0) + 1);
    }
    this.metrics.podsByPhase.reset();
    for (const [phase, count] of phases) this.metrics.podsByPhase.set({ phase }, count);
    const stats = this.runtime.stats();
    this.metrics.workers.set({ state: "idle" }, stats.workers - stats.busyWorkers);
    this.metrics.workers.set({ state: "busy" }, stats.busyWorkers);
    this.metrics.containerCpu.reset();
    for (const { labels, container } of this.#runtimePort.running()) {
      const usage = await container.cpuUsage().catch(() => undefined);
      if (!usage) continue;
      this.metrics.containerCpu.set(
        {
          namespace: labels.namespace ?? "",
          pod: labels.pod ?? "",
          container: labels.container ?? "",
        },
        (usage.user + usage.system) / 1e6,
      );
    }
  }

  /** The node (this process and its worker threads) and every running container, measured now. */
  async #usage(context: AppContext) {
    const time = new Date();
    const cpu = process.cpuUsage();
    const pods = new Map<string, PodUsage>();
    const measured = new Set<string>([NODE_CPU_KEY]);
    for (const { labels, container } of this.#runtimePort.running()) {
      const startTime = await Promise.race([container.started, Promise.resolve(undefined)]).catch(
        () => undefined,
      );
      if (!startTime || !labels.uid) continue;
      const usage = await container.cpuUsage().catch(() => undefined);
      if (!usage) continue;
      let pod = pods.get(labels.uid);
      if (!pod) {
        pod = {
          namespace: labels.namespace ?? "",
          name: labels.pod ?? "",
          uid: labels.uid,
          startTime,
          containers: [],
        };
        pods.set(labels.uid, pod);
      }
      if (startTime < pod.startTime) pod.startTime = startTime;
      measured.add(container.id);
      pod.containers.push({
        name: labels.container ?? "",
        startTime,
        cpu: this.#cpuRates.withRate(container.id, {
          time,
          usageCoreSeconds: (usage.user + usage.system) / 1e6,
        }),
        memory: { time, workingSetBytes: container.memoryBytes() },
      });
    }
    this.#cpuRates.retain(measured);
    return {
      node: {
        nodeName: context.config.nodeName,
        startTime: new Date(Date.now() - process.uptime() * 1000),
        cpu: this.#cpuRates.withRate(NODE_CPU_KEY, {
          time,
          usageCoreSeconds: (cpu.user + cpu.system) / 1e6,
        }),
        memory: { time, workingSetBytes: process.memoryUsage.rss() },
      },
      pods: [...pods.values()],
    };
  }

  async start(): Promise<void> {
    await this.images.start();
    await this.runtime.start();
    await this.#preparePodNetwork();
    this.#services.start();
    this.#watch.start();
    await this.#watch.synced;
    // Besides after every pull, images are collected on the kubelet's period.
    this.#imageGc = setInterval(() => void this.#collectImages(), IMAGE_GC_PERIOD_MS);
    this.#imageGc.unref();
  }

  /** pod-cidr mode: the block (flag, else the Node's spec.podCIDR), made local to this host. */
  async #preparePodNetwork(): Promise<void> {
    if (this.network.mode !== "pod-cidr") return;
    if (!this.network.cidr) {
      const fromNode = this.#node.node?.spec?.podCIDR;
      if (!fromNode) {
        throw appError(
          "WASMLET_ERR_POD_CIDR",
          "the pod-cidr network mode needs a pod CIDR: pass --pod-cidr, or let kube-controller-manager assign the Node one (--allocate-node-cidrs)",
        );
      }
      this.network.useCidr(parsePodCidr(fromNode));
    }
    const cidr = this.network.cidr!;
    const route = await ensureLocalRoute(cidr);
    if (!route.local) {
      this.#log.error(
        { cidr: cidr.text, reason: route.reason, command: route.command },
        `pods cannot listen on their addresses until ${cidr.text} is local to this host; run as root: ${route.command}`,
      );
    } else if (route.added) {
      this.#log.info({ cidr: cidr.text }, "made the pod CIDR local (ip route add local … dev lo)");
    }
  }

  async #collectImages(): Promise<void> {
    try {
      const result = await this.images.gc();
      if (result.removedImages.length > 0)
        this.#log.info(
          { images: result.removedImages, freedBytes: result.freedBytes },
          "collected unused images",
        );
    } catch (error) {
      this.#log.warn({ err: describeError(error) }, "image garbage collection failed");
    }
  }

  close(): Promise<void> {
    clearInterval(this.#imageGc);
    this.#closing ??= (async () => {
      await this.#watch.close();
      await this.#services.close();
      await this.controller.close(this.#shutdownGraceMs);
      await this.runtime.close();
      await this.images.close();
    })();
    return this.#closing;
  }

  async destroy(): Promise<void> {
    clearInterval(this.#imageGc);
    await this.#watch.close();
    await this.#services.close();
    await this.controller.destroy();
    await this.runtime.destroy();
    await this.images.close();
  }
}
