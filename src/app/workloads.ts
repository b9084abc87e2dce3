// The part of the node that runs pods: it builds the runtime, the image service and the pod
// controller, connects them through the pods' ports, feeds the controller from a resilient watch
// of the pods bound to this node (echoes of status patches left out), and registers the kubelet
// API endpoints that read what runs (logs, exec, attach, port-forward, metrics, stats, pods),
// each answered by a module of its own.
import { join } from "node:path";
import type { V1Pod, V1Service } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { describeError } from "../errors.ts";
import { CredentialProviders } from "../images/credential-providers.ts";
import { ImageService } from "../images/image-service.ts";
import { RegistryHosts } from "../images/registry-hosts.ts";
import { ResilientWatch } from "../kube/watch.ts";
import { WasmletMetrics } from "../metrics/wasmlet-metrics.ts";
import { parsePodCidr } from "../network/cidr.ts";
import { networkError } from "../network/errors.ts";
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
import { type ExecTargetDeps, resolveExecTarget } from "./exec-targets.ts";
import { type ForwardTargetDeps, resolveForwardTarget } from "./forward-targets.ts";
import { refreshGauges } from "./gauges.ts";
import { ImageServicePort } from "./image-port.ts";
import { KubeApiPort } from "./kube-port.ts";
import { type LogTargetDeps, resolveLogTarget } from "./log-targets.ts";
import { ignoringStatusEchoes } from "./pod-changes.ts";
import { RuntimeClassCache } from "./runtime-classes.ts";
import { WasiRuntimePort } from "./runtime-port.ts";
import { UsageMeter } from "./usage.ts";

export interface WorkloadOptions {
  /** Overrides of the kubelet's timings (tests shorten them). */
  timing?: Partial<Timing>;
  runtime?: Omit<RuntimeOptions, "logger">;
}

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
    // Read (and checked) before anything is started: a bad hosts.toml stops the node here.
    const hosts = config.registryConfigDir
      ? RegistryHosts.load(config.registryConfigDir)
      : undefined;
    this.runtime = new Runtime({
      workers: config.runtimeWorkers,
      ...options.runtime,
      logger: logger.child({ component: "runtime" }),
    });
    this.images = new ImageService({
      dataDir: config.dataDir,
      registry: { plainHttp: config.insecureRegistries, ...(hosts ? { hosts } : {}) },
      ...(config.imageCredentialFile ? { dockerConfigPath: config.imageCredentialFile } : {}),
      ...(config.imageCredentialProviderConfig && config.imageCredentialProviderBinDir
        ? {
            credentialProviders: CredentialProviders.fromFile(
              config.imageCredentialProviderConfig,
              config.imageCredentialProviderBinDir,
            ),
          }
        : {}),
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
      nodePressure: () =>
        (node.node?.status?.conditions ?? [])
          .filter((c) => c.type.endsWith("Pressure") && c.status === "True")
          .map((c) => c.type),
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
        if (state === "Terminated") {
          seenAt.delete(pod.uid);
          this.#runtimePort.forgetPod(pod.uid);
          void events.forget(pod.uid);
        }
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
      handler: ignoringStatusEchoes({
        added: (pod) => this.controller.onPodUpsert(pod),
        modified: (pod) => this.controller.onPodUpsert(pod),
        deleted: (pod) => this.controller.onPodDeleted(pod),
        synced: (pods) => {
          this.controller
            .resync(pods)
            .catch((error: unknown) => this.#log.error({ err: error }, "resync failed"));
        },
      }),
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
    const pod = (namespace: string, name: string) => this.#watch.get(namespace, name);
    const instance = (namespace: string, name: string, container: string) => {
      const found = this.controller.instance(namespace, name, container);
      const running = found && this.runtime.container(found.id);
      return found && running ? { logPath: found.logPath, container: running } : undefined;
    };
    const logTargets: LogTargetDeps = {
      podLogsDir,
      pod,
      live: (namespace, name, container) => {
        const found = instance(namespace, name, container);
        return found && { logPath: found.logPath, exited: found.container.exited };
      },
    };
    const execTargets: ExecTargetDeps = {
      pod,
      instance: (namespace, name, container) => instance(namespace, name, container)?.container,
    };
    const forwardTargets: ForwardTargetDeps = {
      pod,
      podIP: (uid) => this.network.podIP(uid),
      state: (uid) => this.controller.stateOf(uid),
      dial: (host, port) => connectTcp(host, port),
    };
    const usage = new UsageMeter({
      nodeName: context.config.nodeName,
      running: () => this.#runtimePort.running(),
    });
    const execAttach: ExecAttachDeps = {
      resolve: (namespace, name, container, podUid) =>
        resolveExecTarget(execTargets, namespace, name, container, podUid),
    };
    const routes = [
      containerLogsRoute({
        resolve: (namespace, name, container, previous) =>
          resolveLogTarget(logTargets, namespace, name, container, previous),
      }),
      ...execRoutes(execAttach),
      ...attachRoutes(execAttach),
      ...portForwardRoutes({
        resolve: (namespace, name, podUid) =>
          resolveForwardTarget(forwardTargets, namespace, name, podUid),
      }),
      ...statsRoutes({
        usage: () => usage.measure(),
        pods: () => this.#watch.list(),
        metrics: async () => {
          await refreshGauges(this.metrics, {
            pods: () => this.#watch.list(),
            runtimeStats: () => this.runtime.stats(),
            running: () => this.#runtimePort.running(),
          });
          return { contentType: this.metrics.contentType, body: await this.metrics.render() };
        },
      }),
    ];
    for (const route of routes) server.route(route);
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
        throw networkError(
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
