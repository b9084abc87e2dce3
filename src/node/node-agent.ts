// The node's life: make sure the name is ours, register or adopt the Node, post its status, keep
// its Lease fresh, measure the host every few seconds and post the status when it changed (and at
// least every report period), and on shutdown leave the Node NotReady, saying why.
//
// While the API server is away, every loop retries with exponential backoff and jitter, and the
// node recovers by itself when it returns (re-registering if its Node was deleted meanwhile).
// Wrong credentials or missing permissions at startup are fatal; a live holder of the node name is
// fatal at any time (see lease.ts) and reported through onFatal().
import { mkdir } from "node:fs/promises";
import type { V1Node } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Config } from "../config/config.ts";
import { describeError, type WasmletError } from "../errors.ts";
import { apiError, isNotFound, isTransient } from "../kube/api-error.ts";
import { Backoff, sleep } from "../kube/backoff.ts";
import type { KubeClient } from "../kube/client.ts";
import type { EventRecorder, EventTarget } from "../kube/events.ts";
import { type ConditionState, ConditionTracker, evaluateConditions } from "./conditions.ts";
import { NodeEvent } from "./constants.ts";
import { type HostIdentity, type HostProbe, type HostSnapshot, LinuxHostProbe } from "./host.ts";
import { assertNameFree, type HolderInfo, LeaseHeartbeat, newHolder } from "./lease.ts";
import { ensureRuntimeClass, registerNode } from "./registration.ts";
import { applyStatus, buildStatus, type NodeImage, statusFingerprint } from "./status.ts";

export type NodeAgentConfig = Pick<
  Config,
  | "nodeName"
  | "nodeIP"
  | "dataDir"
  | "nodeLabels"
  | "registerWithTaints"
  | "reserved"
  | "maxPods"
  | "memoryPressureThresholdBytes"
  | "diskPressureThresholdPercent"
  | "pidPressureThresholdPercent"
  | "nodeLeaseDurationSeconds"
  | "nodeLeaseRenewIntervalMs"
  | "nodeStatusUpdateFrequencyMs"
  | "nodeStatusReportFrequencyMs"
>;

/** What runs on the node, for metrics and stats (reported by the pod controller). */
export interface WorkloadUsage {
  pods: number;
  containers: number;
  memoryBytes: number;
}

export interface NodeSnapshot {
  host: HostSnapshot | undefined;
  workload: WorkloadUsage;
}

export interface NodeAgentOptions {
  kube: KubeClient;
  config: NodeAgentConfig;
  logger: Logger;
  events: EventRecorder;
  /** The kubelet API's bound port, advertised in daemonEndpoints. */
  kubeletPort: () => number;
  /** Node features to declare (status.declaredFeatures), e.g. from the kubelet API's routes. */
  declaredFeatures: () => string[];
  probe?: HostProbe;
  /** How long a fresh Lease held elsewhere is watched for renewals before taking it. */
  holderObserveMs?: number;
}

const EVENT_FOR: Record<string, { True: string; False: string }> = {
  Ready: { True: NodeEvent.ready, False: NodeEvent.notReady },
  MemoryPressure: { True: NodeEvent.insufficientMemory, False: NodeEvent.sufficientMemory },
  DiskPressure: { True: NodeEvent.diskPressure, False: NodeEvent.noDiskPressure },
  PIDPressure: { True: NodeEvent.insufficientPID, False: NodeEvent.sufficientPID },
};

export class NodeAgent {
  readonly nodeName: string;
  readonly nodeIP: string;
  readonly #options: NodeAgentOptions;
  readonly #log: Logger;
  readonly #probe: HostProbe;
  readonly #tracker = new ConditionTracker();
  readonly #stop = new AbortController();
  #holder: HolderInfo | undefined;
  #lease: LeaseHeartbeat | undefined;
  #identity: HostIdentity | undefined;
  #node: V1Node | undefined;
  #host: HostSnapshot | undefined;
  #workload: () => WorkloadUsage = () => ({ pods: 0, containers: 0, memoryBytes: 0 });
  #images: () => Promise<NodeImage[]> = async () => [];
  #lastImages: NodeImage[] = [];
  #lastFingerprint = "";
  #lastPosted = 0;
  #shutdownReason: string | undefined;
  #loop: Promise<void> | undefined;
  #fatalListeners: Array<(error: WasmletError) => void> = [];
  #closing: Promise<void> | undefined;
  #wake: (() => void) | undefined;

  constructor(options: NodeAgentOptions) {
    this.#options = options;
    this.nodeName = options.config.nodeName;
    this.nodeIP = options.config.nodeIP;
    this.#log = options.logger.child({ component: "node", node: options.config.nodeName });
    this.#probe = options.probe ?? new LinuxHostProbe({ dataDir: options.config.dataDir });
  }

  /** The Node as last written (its uid is known after start()). */
  get node(): V1Node | undefined {
    return this.#node;
  }

  get #target(): EventTarget {
    return { kind: "Node", name: this.nodeName, uid: this.#node?.metadata?.uid };
  }

  /** Where the node learns which images it holds, for status.images. */
  setImageSource(source: () => Promise<NodeImage[]>): void {
    this.#images = source;
  }

  /** Where the node learns what its pods use (the pod controller provides it). */
  setWorkloadSource(source: () => WorkloadUsage): void {
    this.#workload = source;
  }

  /** The latest host measurement and workload usage, for metrics and stats endpoints. */
  snapshot(): NodeSnapshot {
    return { host: this.#host, workload: this.#workload() };
  }

  onFatal(listener: (error: WasmletError) => void): void {
    this.#fatalListeners.push(listener);
  }

  /** For /healthz: a problem when the heartbeat has been failing for longer than the lease lasts. */
  healthProblem(): string | undefined {
    return this.#lease ? this.#lease.problem() : "the node has not started";
  }

  /**
   * Registers the node and posts its first status and heartbeat. Retries while the API server is
   * unreachable; fails at once on wrong credentials, missing permissions or a taken node name.
   */
  async start(): Promise<void> {
    const { config } = this.#options;
    await mkdir(config.dataDir, { recursive: true });
    this.#identity = await this.#probe.identity();
    this.#holder = newHolder(this.#identity.bootID);
    const lease = new LeaseHeartbeat({
      kube: this.#options.kube,
      config,
      holder: this.#holder,
      logger: this.#log,
    });
    lease.onFatal((error) => this.#emitFatal(error));
    lease.onRecovered(() => this.#postSoon());

    await this.#untilDone("registering the node", async () => {
      await assertNameFree({
        kube: this.#options.kube,
        config,
        holder: this.#holder as HolderInfo,
        logger: this.#log,
        observeMs: this.#options.holderObserveMs,
      });
      await this.#register();
      await this.#postStatus(true);
      await lease.start(this.#node?.metadata?.uid ?? "");
    });
    this.#lease = lease;
    this.#options.events.normal(this.#target, NodeEvent.starting, "Starting wasmlet.");
    void ensureRuntimeClass(this.#options.kube, this.#log);
    this.#loop = this.#statusLoop();
    this.#log.info(
      { nodeIP: config.nodeIP, kubeletPort: this.#options.kubeletPort() },
      "node is up",
    );
  }

  /** Runs `step` until it succeeds, backing off on transient API errors; other errors end it. */
  async #untilDone(what: string, step: () => Promise<void>): Promise<void> {
    const backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
    for (;;) {
      try {
        await step();
        return;
      } catch (error) {
        if (!isTransient(error) || this.#stop.signal.aborted) throw error;
        const delay = backoff.next();
        this.#log.warn(
          { attempt: backoff.attempts, retryInMs: delay, err: describeError(error) },
          `${what} failed; retrying`,
        );
        await sleep(delay, this.#stop.signal);
        if (this.#stop.signal.aborted) throw error;
      }
    }
  }

  async #register(): Promise<void> {
    const { node } = await registerNode({
      kube: this.#options.kube,
      config: this.#options.config,
      hostname: (this.#identity as HostIdentity).hostname,
      logger: this.#log,
    });
    this.#node = node;
    this.#tracker.seed(node.status?.conditions);
    this.#lastFingerprint = "";
    this.#lease?.setNodeUid(node.metadata?.uid ?? "");
  }

  /** Measures and posts when something changed, or when `force`, or when the report period passed. */
  async #postStatus(force: boolean): Promise<void> {
    const { config, kube } = this.#options;
    const host = await this.#probe.measure();
    this.#host = host;
    const states = evaluateConditions(
      host,
      config,
      this.#shutdownReason ? [this.#shutdownReason] : [],
    );
    const now = new Date();
    const { conditions, changed, commit } = this.#tracker.apply(states, now);
    const status = buildStatus({
      config,
      host,
      identity: this.#identity as HostIdentity,
      kubeletPort: this.#options.kubeletPort(),
      conditions,
      declaredFeatures: this.#options.declaredFeatures(),
      images: await this.#images().then(
        (images) => (this.#lastImages = images),
        (error: unknown) => {
          this.#log.warn(
            { err: describeError(error) },
            "cannot list images; status keeps the last list",
          );
          return this.#lastImages;
        },
      ),
    });
    const fingerprint = statusFingerprint(status);
    const due = Date.now() - this.#lastPosted >= config.nodeStatusReportFrequencyMs;
    if (!force && !due && fingerprint === this.#lastFingerprint) return;
    try {
      this.#node = await applyStatus(kube, this.nodeName, status);
    } catch (error) {
      if (isNotFound(error)) {
        this.#log.warn("the Node object was deleted; registering it again");
        await this.#register();
        this.#node = await applyStatus(kube, this.nodeName, status);
      } else throw error;
    }
    commit();
    this.#lastFingerprint = fingerprint;
    this.#lastPosted = Date.now();
    this.#announce(changed);
  }

  #announce(changed: readonly ConditionState[]): void {
    for (const state of changed) {
      const reason = EVENT_FOR[state.type]?.[state.status as "True" | "False"];
      if (!reason) continue;
      const note =
        state.type === "Ready" && state.status === "False"
          ? `Node ${this.nodeName} status is now: NodeNotReady (${state.message})`
          : `Node ${this.nodeName} status is now: ${reason}`;
      if (state.status === "True" && state.type !== "Ready")
        this.#options.events.warning(this.#target, reason, note);
      else this.#options.events.normal(this.#target, reason, note);
      this.#log.info(
        { condition: state.type, status: state.status, reason: state.reason },
        "node condition changed",
      );
    }
  }

  async #statusLoop(): Promise<void> {
    const { config } = this.#options;
    const backoff = new Backoff({ initialMs: 500, maxMs: config.nodeStatusUpdateFrequencyMs });
    let wait = config.nodeStatusUpdateFrequencyMs;
    let failures = 0;
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      const asleep = Date.now();
      await this.#sleepOrWake(wait, signal);
      if (signal.aborted) return;
      // Woke far too late (the process was stopped or starved): the controller-manager may have
      // marked the node Unknown meanwhile, so post now whatever changed.
      if (Date.now() - asleep > wait + 2 * config.nodeStatusUpdateFrequencyMs)
        this.#lastFingerprint = "";
      try {
        await this.#postStatus(false);
        if (failures > 0) this.#log.info({ failures }, "node status posted again");
        failures = 0;
        backoff.reset();
        wait = config.nodeStatusUpdateFrequencyMs;
      } catch (error) {
        failures++;
        wait = backoff.next();
        // Conditions must be re-evaluated against the last posted state next time.
        this.#lastFingerprint = "";
        this.#log.warn(
          { failures, retryInMs: wait, err: describeError(apiError(error, "posting node status")) },
          "cannot post node status; retrying",
        );
      }
    }
  }

  /** Posts the status at the next opportunity, changed or not. */
  #postSoon(): void {
    this.#lastFingerprint = "";
    this.#wake?.();
  }

  #sleepOrWake(ms: number, signal: AbortSignal): Promise<void> {
    const wake = new AbortController();
    this.#wake = () => wake.abort();
    return sleep(ms, AbortSignal.any([signal, wake.signal])).finally(() => {
      this.#wake = undefined;
    });
  }

  #emitFatal(error: WasmletError): void {
    for (const listener of this.#fatalListeners) listener(error);
  }

  /**
   * Marks the node NotReady with `reason` (e.g. "wasmlet is shutting down") and posts it at once,
   * so no new pods are placed here while it stops. Best effort: a failure is logged.
   */
  async markNotReady(reason: string): Promise<void> {
    this.#shutdownReason = reason;
    if (!this.#identity || !this.#node) return;
    try {
      await this.#postStatus(true);
    } catch (error) {
      this.#log.warn({ err: describeError(error) }, "could not post the NotReady status");
    }
  }

  /**
   * Stops heartbeats and status updates and posts a last NotReady status saying `message`; safe
   * to call twice.
   */
  close(message = "wasmlet stopped"): Promise<void> {
    this.#closing ??= (async () => {
      this.#stop.abort();
      await this.#loop;
      await this.#lease?.close();
      if (this.#node) {
        await this.markNotReady(message);
        this.#options.events.normal(
          this.#target,
          NodeEvent.shutdown,
          `Node ${this.nodeName}: ${message}.`,
        );
      }
      this.#log.info({ reason: message }, "node stopped");
    })();
    return this.#closing;
  }
}
