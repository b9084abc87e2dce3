// One pod's life on this node: a driver that walks the declared states (states/) and the pod-level
// context they share (status, events, deletion and grace, verdicts, deadline, volume checks). Each
// container's start, restarts, probes, hooks and stop are the ContainerRunner's
// (containers/runner.ts).
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { describeError } from "../errors.ts";
import type { DownwardContext } from "../volumes/field-ref.ts";
import type { MountedVolume } from "../volumes/volume-manager.ts";
import { ephemeralRunSpec } from "./containers/ephemeral.ts";
import { ContainerRunner } from "./containers/runner.ts";
import { podError } from "./errors.ts";
import { formatPod } from "./format.ts";
import type { LifecycleDeps } from "./lifecycle-deps.ts";
import {
  type ContainerRecord,
  ephemeralRecord,
  ephemeralUnstarted,
  type PodRecord,
  type PodVerdict,
  recordFromPod,
} from "./pod-record.ts";
import type { EnsuredImage, PodRef } from "./ports.ts";
import { ConditionReason, ContainerReason, EventReason, EventType, PodReason } from "./reasons.ts";
import { STATES, TRANSITIONS } from "./states/index.ts";
import { drivenNext } from "./states/overrides.ts";
import { ensureImage, pullSecrets } from "./states/pulling.ts";
import type { StateContext, StateName } from "./states/state.ts";
import { buildStatus } from "./status.ts";
import { StatusPatcher } from "./status-patcher.ts";

const DEFAULT_GRACE_SECONDS = 30;

function refOf(pod: V1Pod): PodRef {
  return {
    namespace: pod.metadata?.namespace ?? "default",
    name: pod.metadata?.name ?? "",
    uid: pod.metadata?.uid ?? "",
  };
}

export interface PodLifecycleOptions {
  deps: LifecycleDeps;
  logger: Logger;
  /** Called on every state change (for tests and metrics). */
  onState?: (state: StateName) => void;
}

export class PodLifecycle implements StateContext {
  readonly ref: PodRef;
  readonly record: PodRecord;
  readonly deps: LifecycleDeps;
  readonly logger: Logger;
  readonly images = new Map<string, EnsuredImage>();
  volumes: ReadonlyMap<string, MountedVolume> = new Map();
  /** Every container's start, restarts, probes, hooks and stop. */
  readonly containers: ContainerRunner = new ContainerRunner(this);
  readonly #abort = new AbortController();
  readonly #deletion = new AbortController();
  readonly #forceDeletion = new AbortController();
  readonly #nodeShutdown = new AbortController();
  readonly cutShort = AbortSignal.any([this.#forceDeletion.signal, this.#nodeShutdown.signal]);
  readonly #patcher: StatusPatcher;
  readonly #onState: ((state: StateName) => void) | undefined;
  readonly #timers: NodeJS.Timeout[] = [];
  /** Ephemeral containers whose (single) start was begun. */
  readonly #ephemeralStarts = new Set<string>();
  #deadlineTimer: NodeJS.Timeout | undefined;
  #pod: V1Pod;
  #state: StateName = "Pending";
  #deletionRequested = false;
  #forced = false;
  #graceMs: number | undefined;
  #done: Promise<void> | undefined;
  #volumeChecks = false;
  #stopped = false;

  constructor(pod: V1Pod, options: PodLifecycleOptions) {
    this.#pod = pod;
    this.ref = refOf(pod);
    this.deps = options.deps;
    this.logger = options.logger;
    this.#onState = options.onState;
    this.record = recordFromPod(pod, this.deps.now());
    this.#patcher = new StatusPatcher({
      kube: this.deps.kube,
      pod: this.ref,
      initial: pod.status,
      logger: this.logger,
      firstPatchHoldMs: this.deps.timing.firstStatusHoldMs,
    });
    if (pod.metadata?.deletionTimestamp) this.#requestDeletion(pod);
    this.#armDeadline();
  }

  get pod(): V1Pod {
    return this.#pod;
  }

  get state(): StateName {
    return this.#state;
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  get deletionRequested(): boolean {
    return this.#deletionRequested;
  }

  get forced(): boolean {
    return this.#forced;
  }

  get statusPatches(): number {
    return this.#patcher.patches;
  }

  /** Live instance of a container (for exec/attach/logs). */
  instance(container: string): { id: string; logPath: string } | undefined {
    return this.containers.instance(container);
  }

  /** Starts the state machine; resolves when the pod reached Terminated. */
  start(): Promise<void> {
    this.#done ??= this.#drive();
    return this.#done;
  }

  /** A newer version of the pod object from the API. */
  update(pod: V1Pod): void {
    if (pod.metadata?.uid !== this.ref.uid) return;
    const before = this.#pod;
    this.#pod = pod;
    this.#patcher.observe(pod.status);
    if (pod.metadata?.deletionTimestamp) this.#requestDeletion(pod);
    if (before.spec?.activeDeadlineSeconds !== pod.spec?.activeDeadlineSeconds) this.#armDeadline();
    // `kubectl debug` adds ephemeral containers (the ephemeralcontainers subresource): each is
    // started once, as soon as the pod's volumes are ready, and never restarted.
    for (const c of pod.spec?.ephemeralContainers ?? []) {
      if (!this.record.ephemeral.has(c.name))
        this.record.ephemeral.set(
          c.name,
          ephemeralRecord(c.name, c.image ?? "", undefined, this.deps.now()),
        );
    }
    this.#startEphemeral();
    if (this.#state !== "Terminated") this.publish();
  }

  /** The pod is gone from the API (deleted with grace 0 or by its finalizers' end): stop now. */
  forceDelete(): void {
    this.#forced = true;
    this.#patcher.close();
    this.#graceMs = 0;
    this.#deletionRequested = true;
    this.#abort.abort();
    this.#deletion.abort();
    this.#forceDeletion.abort();
    this.containers.stopNow(0);
  }

  /**
   * wasmlet shuts down: stops every instance within the pod's own grace period, or `graceMs` when
   * that is shorter, preStop hooks first, as the kubelet's graceful node shutdown does. Statuses
   * are rebuilt on the next start; nothing more is sent.
   */
  async shutdown(graceMs: number): Promise<void> {
    graceMs = Math.min(graceMs, this.graceMs());
    this.#stopped = true;
    if (!this.#abort.signal.aborted) this.#abort.abort();
    this.#nodeShutdown.abort();
    this.#patcher.close();
    this.#clearTimers();
    // These stops run their own preStop hooks within `graceMs`: only a force deletion cuts them.
    await this.containers.shutdown(graceMs, this.#forceDeletion.signal);
  }

  #requestDeletion(pod: V1Pod): void {
    const seconds =
      pod.metadata?.deletionGracePeriodSeconds ??
      pod.spec?.terminationGracePeriodSeconds ??
      DEFAULT_GRACE_SECONDS;
    const graceMs = Math.max(0, seconds) * 1000;
    const shortened = this.#graceMs !== undefined && graceMs < this.#graceMs;
    if (this.#graceMs === undefined || shortened) this.#graceMs = graceMs;
    this.#deletionRequested = true;
    if (!this.#abort.signal.aborted) this.#abort.abort();
    if (!this.#deletion.signal.aborted) this.#deletion.abort();
    if (shortened) {
      // A second, shorter deletion (e.g. --force --grace-period=0 while terminating) cuts the wait.
      this.containers.stopNow(graceMs);
    }
  }

  async #drive(): Promise<void> {
    this.#onState?.(this.#state);
    while (this.#state !== "Terminated" && !this.#stopped) {
      const current = STATES[this.#state];
      let next: StateName;
      try {
        next = await current.run(this);
      } catch (error) {
        if (!this.signal.aborted) {
          this.logger.error(
            { err: describeError(error), state: this.#state },
            "pod state failed; retrying",
          );
          await this.sleep(this.deps.timing.retryMs);
          if (!this.signal.aborted) continue;
        }
        next = this.#state;
      }
      if (this.#stopped) break;
      next = drivenNext(this.#state, next, {
        deletionRequested: this.#deletionRequested,
        verdict: this.record.verdict !== undefined,
      });
      if (next === this.#state) continue;
      if (!TRANSITIONS[this.#state].includes(next)) {
        throw podError(
          "WASMLET_ERR_ILLEGAL_TRANSITION",
          `pod ${formatPod(this.ref)}: ${this.#state} may not move to ${next}`,
        );
      }
      this.logger.debug({ from: this.#state, to: next }, "pod state");
      this.#state = next;
      this.#onState?.(next);
      this.#startEphemeral();
    }
    this.#clearTimers();
  }

  // ------------------------------------------------------------------ StateContext

  containerSpec(name: string): V1Container | undefined {
    const spec = this.#pod.spec;
    const found = [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])].find(
      (c) => c.name === name,
    );
    if (found) return found;
    const ephemeral = spec?.ephemeralContainers?.find((c) => c.name === name);
    return ephemeral && ephemeralRunSpec(ephemeral, this.containerSpec.bind(this));
  }

  /**
   * Starts the ephemeral containers not yet started, once the pod's volumes are ready and while it
   * runs (Initializing or Running): pull, then one instance (ContainerRunner.runEphemeral).
   */
  #startEphemeral(): void {
    if (this.#state !== "Initializing" && this.#state !== "Running") return;
    if (this.signal.aborted || this.record.terminal || !this.record.readyToStart) return;
    for (const record of this.record.ephemeral.values()) {
      if (this.#ephemeralStarts.has(record.name) || !ephemeralUnstarted(record)) continue;
      const spec = this.containerSpec(record.name);
      if (!spec) continue;
      this.#ephemeralStarts.add(record.name);
      void (async () => {
        const secrets = await pullSecrets(this);
        if (!(await ensureImage(this, record, spec, secrets))) return;
        // The pod may have ended while the image came: nothing starts in a finished pod.
        if (!this.record.terminal) await this.containers.runEphemeral(record);
      })().catch((error) => {
        this.logger.warn(
          { err: describeError(error), container: record.name },
          "ephemeral container failed",
        );
      });
    }
  }

  publish(): void {
    if (this.#forced) return;
    this.#patcher.set(
      buildStatus(this.#pod, this.record, {
        nodeIPs: this.deps.node.nodeIPs,
        now: this.deps.now(),
      }),
    );
  }

  flushStatus(): Promise<void> {
    return this.#patcher.flush();
  }

  event(
    type: EventType,
    reason: string,
    message: string,
    container?: ContainerRecord,
    fieldPath?: string,
  ): void {
    const path =
      fieldPath ??
      (container
        ? `spec.${container.ephemeral ? "ephemeralContainers" : container.init ? "initContainers" : "containers"}{${container.name}}`
        : undefined);
    try {
      this.deps.kube.recordEvent({
        pod: this.ref,
        ...(path ? { fieldPath: path } : {}),
        type,
        reason,
        message,
      });
    } catch (error) {
      this.logger.warn({ err: describeError(error), reason }, "could not record event");
    }
  }

  sleep(ms: number, signal: AbortSignal = this.signal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve(true);
      }, ms);
      const onAbort = () => {
        clearTimeout(timer);
        resolve(false);
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  downward(): DownwardContext {
    return {
      podIPs: this.record.podIPs ?? this.deps.node.nodeIPs,
      hostIPs: this.deps.node.nodeIPs,
      nodeAllocatable: this.deps.node.allocatable(),
    };
  }

  setVerdict(verdict: PodVerdict): void {
    if (this.record.verdict || this.record.terminal) return;
    this.record.verdict = verdict;
    if (!this.#abort.signal.aborted) this.#abort.abort();
  }

  waitForDeletion(): Promise<void> {
    const signal = this.#deletion.signal;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) =>
      signal.addEventListener("abort", () => resolve(), { once: true }),
    );
  }

  graceMs(): number {
    if (this.#graceMs !== undefined) return this.#graceMs;
    return (
      Math.max(0, this.#pod.spec?.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS) * 1000
    );
  }

  startVolumeChecks(): void {
    if (this.#volumeChecks) return;
    this.#volumeChecks = true;
    const { volumeRefreshMs, emptyDirCheckMs } = this.deps.timing;
    const refresh = setInterval(() => {
      if (this.record.terminal) return;
      this.deps.volumes.refresh(this.#pod, this.downward()).then(
        ({ changed }) => {
          if (changed.length > 0) this.logger.debug({ volumes: changed }, "volumes updated");
        },
        (error) => this.logger.warn({ err: describeError(error) }, "volume refresh failed"),
      );
    }, volumeRefreshMs);
    refresh.unref();
    this.#timers.push(refresh);
    if ((this.#pod.spec?.volumes ?? []).some((v) => v.emptyDir?.sizeLimit !== undefined)) {
      const check = setInterval(() => {
        if (this.record.terminal || this.record.verdict) return;
        this.deps.volumes.emptyDirOverLimit(this.#pod).then(
          (over) => {
            if (!over) return;
            this.event(EventType.Warning, EventReason.Evicted, over.message);
            this.setVerdict({
              phase: "Failed",
              reason: PodReason.Evicted,
              message: over.message,
              disruption: { reason: ConditionReason.TerminationByKubelet, message: over.message },
            });
          },
          (error) => this.logger.warn({ err: describeError(error) }, "emptyDir usage check failed"),
        );
      }, emptyDirCheckMs);
      check.unref();
      this.#timers.push(check);
    }
  }

  #armDeadline(): void {
    if (this.#deadlineTimer) clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    const seconds = this.#pod.spec?.activeDeadlineSeconds;
    if (seconds === undefined || seconds === null) return;
    const due = this.record.startTime.getTime() + seconds * 1000 - this.deps.now().getTime();
    this.#deadlineTimer = setTimeout(
      () => {
        if (this.record.terminal || this.#deletionRequested) return;
        const message = "Pod was active on the node longer than the specified deadline";
        this.event(EventType.Warning, EventReason.DeadlineExceeded, message);
        this.setVerdict({
          phase: "Failed",
          reason: PodReason.DeadlineExceeded,
          message,
          disruption: { reason: ConditionReason.TerminationByKubelet, message },
        });
      },
      Math.max(0, due),
    );
    this.#deadlineTimer.unref();
  }

  #clearTimers(): void {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers.length = 0;
    if (this.#deadlineTimer) clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
  }

  terminalize(): void {
    const now = this.deps.now();
    const hasRun = (c: ContainerRecord) =>
      c.state.kind === "running" || (c.state.kind === "waiting" && c.lastState !== undefined);
    // Like the kubelet's TerminatePod: app containers of a pod that never got through its init
    // containers stay waiting (PodInitializing), so Initialized stays False and kubectl shows Init:….
    const initialized = this.#hasInitialized();
    for (const container of this.record.containers.values()) {
      container.ready = false;
      container.started = false;
      if (container.state.kind === "terminated") continue;
      if (container.init && !hasRun(container)) continue;
      if (!container.init && !initialized) continue;
      container.state = {
        kind: "terminated",
        exitCode: 137,
        reason: ContainerReason.ContainerStatusUnknown,
        message: "The container could not be located when the pod was terminated",
        finishedAt: now,
      };
    }
    for (const container of this.record.ephemeral.values()) {
      container.ready = false;
      container.started = false;
      if (container.state.kind !== "running") continue;
      container.state = {
        kind: "terminated",
        exitCode: 137,
        reason: ContainerReason.ContainerStatusUnknown,
        message: "The container could not be located when the pod was terminated",
        startedAt: container.state.startedAt,
        finishedAt: now,
        ...(container.instanceId ? { instanceId: container.instanceId } : {}),
      };
    }
    this.record.terminal = true;
    this.#clearTimers();
  }

  /** The kubelet's hasPodInitialized: an app container ever left waiting, or the last init container completed. */
  #hasInitialized(): boolean {
    const containers = [...this.record.containers.values()];
    const inits = containers.filter((c) => c.init);
    if (inits.length === 0) return true;
    if (containers.some((c) => !c.init && (c.state.kind !== "waiting" || c.lastState))) return true;
    const last = inits.at(-1)?.state;
    return last?.kind === "terminated" && last.exitCode === 0;
  }
}
