// One pod's life on this node: a driver that walks the declared states (states/), the context they
// share, and the container operations every running state needs (start an instance, watch its exit,
// restart it under the policy with CrashLoopBackOff, stop it within the grace period).
import { randomBytes } from "node:crypto";
import type { V1Container, V1LifecycleHandler, V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { describeError } from "../errors.ts";
import { bytesOf, millisOf } from "../quantity/quantity.ts";
import type { DownwardContext } from "../volumes/field-ref.ts";
import type { ContainerMountRequest, MountedVolume } from "../volumes/volume-manager.ts";
import {
  commandLine,
  expand,
  invalidKeysMessage,
  mappingFor,
  podHostname,
  resolveEnv,
  runEnvironment,
} from "./env.ts";
import { podError } from "./errors.ts";
import { formatPod, goDuration, messageOf } from "./format.ts";
import { InstanceRegistry } from "./instance-registry.ts";
import type { LifecycleDeps } from "./lifecycle-deps.ts";
import { containerLogPath, newInstanceLog, podLogDir } from "./log-layout.ts";
import { runHttpHook, tcpSocketHookMessage } from "./net-hooks.ts";
import { runNetworkProbe } from "./net-probe.ts";
import {
  type ContainerRecord,
  type ContainerState,
  type PodRecord,
  type PodVerdict,
  recordFromPod,
  type TerminatedState,
} from "./pod-record.ts";
import type { EnsuredImage, PodRef, RunHandle, RunSpec } from "./ports.ts";
import { ContainerProber, runnableProbes } from "./prober.ts";
import { ConditionReason, ContainerReason, EventReason, EventType, PodReason } from "./reasons.ts";
import { serviceEnv } from "./service-env.ts";
import { STATES, TRANSITIONS } from "./states/index.ts";
import { drivenNext } from "./states/overrides.ts";
import type { StateContext, StateName, SuperviseOutcome } from "./states/state.ts";
import { buildStatus, qosClass } from "./status.ts";
import { StatusPatcher } from "./status-patcher.ts";

const DEFAULT_GRACE_SECONDS = 30;
const TERMINATION_LOG_LINES = 80;
const TERMINATION_LOG_BYTES = 2048;

export function shouldRestart(
  restartPolicy: string | undefined,
  init: boolean,
  exitCode: number,
): boolean {
  const policy = restartPolicy ?? "Always";
  if (init) return policy !== "Never" && exitCode !== 0;
  if (policy === "Always") return true;
  if (policy === "OnFailure") return exitCode !== 0;
  return false;
}

function refOf(pod: V1Pod): PodRef {
  return {
    namespace: pod.metadata?.namespace ?? "default",
    name: pod.metadata?.name ?? "",
    uid: pod.metadata?.uid ?? "",
  };
}

type StartResult =
  | { kind: "started"; exit: Promise<TerminatedState> }
  | { kind: "not-started" }
  | { kind: "aborted" };

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
  readonly #handles = new Map<string, RunHandle>();
  readonly #exits = new Map<string, Promise<TerminatedState>>();
  /** Probers by instance id; each stops when its instance exits. */
  readonly #probers = new Map<string, ContainerProber>();
  /** Supervision of the sidecars (init containers with restartPolicy Always), by name. */
  readonly #sidecars = new Map<string, Promise<SuperviseOutcome>>();
  readonly #startedWaiters = new Map<string, () => void>();
  /** Aborted when the app containers are done for good: the sidecars end too. */
  readonly #sidecarsEnd = new AbortController();
  readonly #abort = new AbortController();
  readonly #deletion = new AbortController();
  readonly #forceDeletion = new AbortController();
  readonly #nodeShutdown = new AbortController();
  readonly cutShort = AbortSignal.any([this.#forceDeletion.signal, this.#nodeShutdown.signal]);
  readonly #patcher: StatusPatcher;
  readonly #onState: ((state: StateName) => void) | undefined;
  readonly #timers: NodeJS.Timeout[] = [];
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
    const handle = this.#handles.get(container);
    const record = this.record.containers.get(container);
    if (!handle || !record) return undefined;
    return { id: handle.id, logPath: this.#logPath(container, record.restartCount) };
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
    if (pod.metadata?.deletionTimestamp) this.#requestDeletion(pod);
    if (before.spec?.activeDeadlineSeconds !== pod.spec?.activeDeadlineSeconds) this.#armDeadline();
    const ephemeral = (pod.spec?.ephemeralContainers ?? []).map((c) => c.name);
    for (const name of ephemeral) {
      if (!this.record.ephemeral.includes(name)) {
        this.record.ephemeral.push(name);
        this.event(
          EventType.Warning,
          EventReason.Failed,
          "Error: ephemeral containers are not supported by wasmlet",
          undefined,
          `spec.ephemeralContainers{${name}}`,
        );
      }
    }
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
    for (const handle of this.#handles.values()) void handle.stop(0).catch(() => undefined);
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
    await Promise.all(
      [...this.#handles.keys()].map((name) =>
        this.#stopOne(name, graceMs, this.#forceDeletion.signal),
      ),
    );
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
      for (const handle of this.#handles.values()) void handle.stop(graceMs).catch(() => undefined);
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
    }
    this.#clearTimers();
  }

  // ------------------------------------------------------------------ StateContext

  containerSpec(name: string): V1Container | undefined {
    const spec = this.#pod.spec;
    return [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])].find(
      (c) => c.name === name,
    );
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
        ? `spec.${container.init ? "initContainers" : "containers"}{${container.name}}`
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

  lastExit(container: string): TerminatedState | undefined {
    const record = this.record.containers.get(container);
    if (record?.state.kind === "terminated") return record.state;
    return record?.lastState;
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

  #logPath(container: string, index: number): string {
    return containerLogPath(
      podLogDir(this.deps.node.podLogsDir, this.ref.namespace, this.ref.name, this.ref.uid),
      container,
      index,
    );
  }

  async supervise(container: ContainerRecord): Promise<SuperviseOutcome> {
    const key = InstanceRegistry.key(this.ref.uid, container.name);
    const policy = this.#pod.spec?.restartPolicy;
    // A sidecar also ends, as "done", when the pod's app containers are done for good.
    const signal = container.sidecar
      ? AbortSignal.any([this.signal, this.#sidecarsEnd.signal])
      : this.signal;
    while (!signal.aborted) {
      if (container.state.kind === "terminated") {
        if (!container.sidecar && !shouldRestart(policy, container.init, container.state.exitCode))
          return "done";
        const finishedAt = container.state.finishedAt.getTime();
        const wait = this.deps.crashBackoff.remaining(key, finishedAt);
        if (wait > 0) {
          container.lastState = container.state;
          container.state = {
            kind: "waiting",
            reason: ContainerReason.CrashLoopBackOff,
            message: `back-off ${goDuration(this.deps.crashBackoff.get(key))} restarting failed container=${container.name} pod=${formatPod(this.ref)}`,
          };
          this.event(
            EventType.Warning,
            EventReason.BackOff,
            `Back-off restarting failed container ${container.name} in pod ${formatPod(this.ref)}`,
            container,
          );
          this.publish();
          if (!(await this.sleep(wait, signal))) return this.#endOf(container);
        }
        this.deps.crashBackoff.next(key, finishedAt);
      }
      const started = await this.#startContainer(container);
      if (started.kind === "aborted") return "aborted";
      if (started.kind === "not-started") {
        if (!(await this.sleep(this.deps.timing.retryMs, signal))) return this.#endOf(container);
        continue;
      }
      const ended = await Promise.race([started.exit, this.#aborted()]);
      if (ended === "aborted") return "aborted";
    }
    return this.#endOf(container);
  }

  #endOf(container: ContainerRecord): SuperviseOutcome {
    return container.sidecar && !this.signal.aborted ? "done" : "aborted";
  }

  startSidecar(container: ContainerRecord): Promise<"started" | "aborted"> {
    if (!this.#sidecars.has(container.name))
      this.#sidecars.set(container.name, this.supervise(container));
    if (container.started) return Promise.resolve("started");
    return new Promise((resolve) => {
      const onAbort = () => resolve("aborted");
      this.signal.addEventListener("abort", onAbort, { once: true });
      this.#startedWaiters.set(container.name, () => {
        this.signal.removeEventListener("abort", onAbort);
        resolve("started");
      });
    });
  }

  async stopSidecars(graceMs: number): Promise<void> {
    this.#sidecarsEnd.abort();
    await this.#stopSidecarsInOrder(this.#nowMs() + graceMs);
    await Promise.all(this.#sidecars.values());
  }

  /** Marks a container started (its startup probe passed, or it has none) and wakes who waits for it. */
  #markStarted(container: ContainerRecord): void {
    container.started = true;
    this.#startedWaiters.get(container.name)?.();
    this.#startedWaiters.delete(container.name);
  }

  #aborted(): Promise<"aborted"> {
    const signal = this.signal;
    if (signal.aborted) return Promise.resolve("aborted");
    return new Promise((resolve) =>
      signal.addEventListener("abort", () => resolve("aborted"), { once: true }),
    );
  }

  #waitingFromError(container: ContainerRecord, reason: string, message: string): void {
    if (container.state.kind === "terminated") container.lastState = container.state;
    container.state = { kind: "waiting", reason, message };
    container.ready = false;
    this.event(EventType.Warning, EventReason.Failed, `Error: ${message}`, container);
    this.publish();
  }

  async #startContainer(container: ContainerRecord): Promise<StartResult> {
    const spec = this.containerSpec(container.name);
    const image = this.images.get(container.name);
    if (!spec || !image)
      throw podError(
        "WASMLET_ERR_LIFECYCLE_STATE",
        `container ${container.name} has no spec or image`,
      );

    let env: Map<string, string>;
    let mounts: RunSpec["mounts"];
    try {
      const resolution = await resolveEnv(this.#pod, spec, {
        source: this.deps.kube,
        downward: this.downward(),
        services: serviceEnv(
          this.deps.kube.listServices(),
          this.ref.namespace,
          this.#pod.spec?.enableServiceLinks ?? true,
        ),
      });
      env = resolution.env;
      for (const skipped of resolution.skipped) {
        this.event(
          EventType.Warning,
          EventReason.InvalidEnvironmentVariableNames,
          invalidKeysMessage(skipped, this.ref.namespace),
          container,
        );
      }
      const requests: ContainerMountRequest[] = (spec.volumeMounts ?? []).map((m) => {
        const subPath = m.subPathExpr ? expand(m.subPathExpr, mappingFor(env)) : m.subPath;
        return {
          name: m.name,
          mountPath: m.mountPath,
          ...(subPath ? { subPath } : {}),
          ...(m.readOnly ? { readOnly: true } : {}),
        };
      });
      mounts = await this.deps.volumes.containerMounts(this.#pod, spec, requests, this.volumes);
    } catch (error) {
      if (this.signal.aborted) return { kind: "aborted" };
      this.#waitingFromError(
        container,
        ContainerReason.CreateContainerConfigError,
        messageOf(error),
      );
      return { kind: "not-started" };
    }
    if (this.signal.aborted) return { kind: "aborted" };

    const logDir = podLogDir(
      this.deps.node.podLogsDir,
      this.ref.namespace,
      this.ref.name,
      this.ref.uid,
    );
    const wanted =
      container.instanceId !== undefined ? container.restartCount + 1 : container.restartCount;
    const { index, path: logPath } = newInstanceLog(logDir, container.name, wanted);

    const id = randomBytes(32).toString("hex");
    const command = commandLine(spec, image.config, env);
    const limits = spec.resources?.limits ?? {};
    const requests = spec.resources?.requests ?? {};
    const runSpec: RunSpec = {
      id,
      module: image.module,
      args: command.args,
      env: runEnvironment(image.config, env, podHostname(this.#pod)),
      mounts,
      workingDir: command.workingDir,
      stdin: spec.stdin ?? false,
      logPath,
      labels: {
        namespace: this.ref.namespace,
        pod: this.ref.name,
        uid: this.ref.uid,
        container: container.name,
      },
    };
    if (image.entrypointExport !== undefined) runSpec.entrypointExport = image.entrypointExport;
    runSpec.network = this.deps.network.containerNetwork(this.ref.uid, spec);
    const memory = bytesOf(limits.memory);
    if (memory !== undefined) runSpec.memoryLimitBytes = memory;
    const cpuLimit = millisOf(limits.cpu);
    if (cpuLimit !== undefined) runSpec.cpuLimitMillis = cpuLimit;
    // The static CPU manager's rule: whole CPUs for a container of a Guaranteed pod.
    const cpuRequest = millisOf(requests.cpu);
    if (cpuRequest !== undefined && cpuRequest % 1000 === 0 && qosClass(this.pod) === "Guaranteed")
      runSpec.exclusiveCpu = true;

    // No new sidecar instance once the sidecars are being stopped (nothing awaits from here on).
    if (container.sidecar && this.#sidecarsEnd.signal.aborted) return { kind: "not-started" };
    this.deps.instances.claim(this.ref.uid, container.name, id);
    let handle: RunHandle;
    try {
      handle = this.deps.runtime.run(runSpec);
    } catch (error) {
      this.deps.instances.release(this.ref.uid, container.name, id);
      this.#waitingFromError(container, ContainerReason.CreateContainerError, messageOf(error));
      return { kind: "not-started" };
    }
    if (container.state.kind === "terminated") container.lastState = container.state;
    container.restartCount = index;
    container.instanceId = id;
    container.state = { kind: "waiting", reason: ContainerReason.ContainerCreating };
    this.#handles.set(container.name, handle);
    this.event(
      EventType.Normal,
      EventReason.Created,
      `Created container: ${container.name}`,
      container,
    );
    const exit = this.#watchExit(container, spec, handle, logPath);
    this.#exits.set(container.name, exit);
    let startedAt: Date;
    try {
      startedAt = await handle.started;
    } catch {
      return { kind: "started", exit };
    }
    // The container counts as running only once its postStart hook succeeded; a failed hook
    // kills it, and the restart policy decides what follows.
    const postStart = spec.lifecycle?.postStart;
    if (postStart) {
      const failure = await this.#runHook(postStart, handle, container, spec, undefined);
      if (failure !== undefined) {
        if (!this.signal.aborted) {
          this.event(EventType.Warning, EventReason.FailedPostStartHook, failure, container);
          void handle.stop(this.graceMs()).catch(() => undefined);
        }
        return { kind: "started", exit };
      }
    }
    if (container.instanceId === id && (container.state as ContainerState).kind !== "terminated") {
      container.state = { kind: "running", startedAt };
      const runs = !container.init || container.sidecar;
      const probes = runs ? runnableProbes(spec) : {};
      container.ready = runs && probes.startup === undefined && probes.readiness === undefined;
      if (probes.startup === undefined) this.#markStarted(container);
      if (probes.startup || probes.liveness || probes.readiness)
        this.#startProber(container, spec, handle, probes);
    }
    this.event(
      EventType.Normal,
      EventReason.Started,
      `Started container ${container.name}`,
      container,
    );
    this.publish();
    return { kind: "started", exit };
  }

  #startProber(
    container: ContainerRecord,
    spec: V1Container,
    handle: RunHandle,
    probes: ReturnType<typeof runnableProbes>,
  ): void {
    const current = () => container.instanceId === handle.id && container.state.kind === "running";
    const prober = new ContainerProber(
      probes,
      {
        exec: (args, timeoutMs) => handle.exec(args, timeoutMs),
        network: (probe, timeoutMs) => runNetworkProbe(probe, spec, this.#podIP(), timeoutMs),
        started: () => {
          if (!current() || container.started) return;
          this.#markStarted(container);
          this.publish();
        },
        readiness: (ready) => {
          if (!current() || container.ready === ready) return;
          container.ready = ready;
          this.publish();
        },
        unhealthy: (message) => {
          if (current()) this.event(EventType.Warning, EventReason.Unhealthy, message, container);
        },
        warning: (message) => {
          if (current())
            this.event(EventType.Warning, EventReason.ProbeWarning, message, container);
        },
        kill: (kind) => {
          if (!current()) return;
          this.event(
            EventType.Normal,
            EventReason.Killing,
            `Container ${container.name} failed ${kind} probe, will be restarted`,
            container,
          );
          const probeSeconds = probes[kind]?.terminationGracePeriodSeconds;
          const graceMs =
            probeSeconds === undefined ? this.graceMs() : Math.max(0, probeSeconds) * 1000;
          void handle.stop(graceMs).catch((error) => {
            this.logger.warn(
              { err: describeError(error), container: container.name },
              "stop failed",
            );
          });
        },
      },
      this.deps.timing.probeSecondMs,
    );
    this.#probers.set(handle.id, prober);
    void handle.exited.finally(() => {
      prober.stop();
      this.#probers.delete(handle.id);
    });
    prober.start();
  }

  #watchExit(
    container: ContainerRecord,
    spec: V1Container,
    handle: RunHandle,
    logPath: string,
  ): Promise<TerminatedState> {
    return (async () => {
      let startError: unknown;
      let startedAt: Date | undefined;
      try {
        startedAt = await handle.started;
      } catch (error) {
        startError = error;
      }
      let status: Awaited<RunHandle["exited"]> | undefined;
      try {
        status = await handle.exited;
      } catch (error) {
        startError ??= error;
      }
      this.deps.instances.release(this.ref.uid, container.name, handle.id);
      if (this.#handles.get(container.name) === handle) this.#handles.delete(container.name);
      let terminated: TerminatedState;
      if (!status) {
        terminated = {
          kind: "terminated",
          exitCode: 128,
          reason: ContainerReason.StartError,
          message: messageOf(startError),
          ...(startedAt ? { startedAt } : {}),
          finishedAt: this.deps.now(),
          instanceId: handle.id,
        };
      } else {
        let message = status.message;
        if (
          !message &&
          status.exitCode !== 0 &&
          spec.terminationMessagePolicy === "FallbackToLogsOnError" &&
          this.deps.logs
        ) {
          message = await this.deps.logs
            .tail(logPath, { maxLines: TERMINATION_LOG_LINES, maxBytes: TERMINATION_LOG_BYTES })
            .catch(() => undefined);
        }
        terminated = {
          kind: "terminated",
          exitCode: status.exitCode,
          reason:
            status.reason ??
            (status.exitCode === 0 ? ContainerReason.Completed : ContainerReason.Error),
          ...(message ? { message } : {}),
          startedAt: status.startedAt,
          finishedAt: status.finishedAt,
          instanceId: handle.id,
        };
      }
      if (container.instanceId === handle.id) {
        container.state = terminated;
        container.ready = container.init && !container.sidecar && terminated.exitCode === 0;
        container.started = false;
        this.publish();
      }
      return terminated;
    })();
  }

  async stopAll(graceMs: number): Promise<void> {
    for (const prober of this.#probers.values()) prober.stop();
    const deadline = this.#nowMs() + graceMs;
    const others = [...this.#handles.keys()].filter(
      (name) => !this.record.containers.get(name)?.sidecar,
    );
    await Promise.all(others.map((name) => this.#stopOne(name, graceMs)));
    await this.#stopSidecarsInOrder(deadline);
  }

  /** Sidecars stop after the other containers, last first, within what is left of the grace period. */
  async #stopSidecarsInOrder(deadline: number): Promise<void> {
    const sidecars = [...this.record.containers.values()].filter((c) => c.sidecar).reverse();
    for (const sidecar of sidecars) {
      if (this.#handles.has(sidecar.name))
        await this.#stopOne(sidecar.name, Math.max(0, deadline - this.#nowMs()));
    }
  }

  /** Where network probes and hooks go when their action names no host: the pod's IP. */
  #nowMs(): number {
    return this.deps.now().getTime();
  }

  #podIP(): string {
    return (this.record.podIPs ?? this.deps.node.nodeIPs)[0] ?? "";
  }

  /**
   * Runs an exec, httpGet or tcpSocket hook: undefined when it succeeded (or is of none of these
   * kinds), else the kubelet's message for its event. Without `timeoutMs` (postStart) an httpGet
   * hook ends with the pod; with it (preStop, the rest of the grace period) when that is over.
   */
  async #runHook(
    hook: V1LifecycleHandler,
    handle: RunHandle,
    container: ContainerRecord,
    spec: V1Container,
    timeoutMs: number | undefined,
  ): Promise<string | undefined> {
    if (hook.exec?.command?.length) {
      return this.#execHook(handle, container, hook.exec.command, timeoutMs);
    }
    if (hook.httpGet) {
      return runHttpHook(hook.httpGet, {
        container: spec,
        pod: this.ref,
        podIP: this.#podIP(),
        signal: timeoutMs === undefined ? this.signal : AbortSignal.timeout(timeoutMs),
        fellBack: (message) =>
          this.event(EventType.Warning, EventReason.LifecycleHTTPFallback, message),
      });
    }
    if (hook.tcpSocket) return tcpSocketHookMessage(hook.tcpSocket);
    return undefined;
  }

  /** Undefined when the hook's command succeeded, else the kubelet's message for its event. */
  async #execHook(
    handle: RunHandle,
    container: ContainerRecord,
    command: string[],
    timeoutMs: number | undefined,
  ): Promise<string | undefined> {
    const line = command.join(" ");
    let error: string;
    let output = "";
    try {
      const result = await handle.exec(command, timeoutMs);
      if (result.exitCode === 0 && !result.timedOut) return undefined;
      output = result.output;
      error = result.timedOut
        ? `command '${line}' timed out`
        : `command '${line}' exited with ${result.exitCode}: ${output}`;
    } catch (cause) {
      error = messageOf(cause);
    }
    return `Exec lifecycle hook ([${line}]) for Container "${container.name}" in Pod "${formatPod(this.ref)}" failed - error: ${error}, message: ${JSON.stringify(output)}`;
  }

  /**
   * Killing event, preStop hook (exec, httpGet, tcpSocket or sleep), then stop within what is left
   * of `graceMs`; resolves once it exited. `cut` ends a preStop sleep early.
   */
  async #stopOne(name: string, graceMs: number, cut = this.cutShort): Promise<void> {
    const handle = this.#handles.get(name);
    if (!handle) return;
    const container = this.record.containers.get(name);
    if (container)
      this.event(EventType.Normal, EventReason.Killing, `Stopping container ${name}`, container);
    let remaining = graceMs;
    const spec = this.containerSpec(name);
    const preStop = spec?.lifecycle?.preStop;
    if (spec && preStop && container && remaining > 0 && !this.#forced) {
      const started = this.#nowMs();
      if (preStop.exec?.command?.length || preStop.httpGet || preStop.tcpSocket) {
        const failure = await this.#runHook(preStop, handle, container, spec, remaining);
        if (failure !== undefined)
          this.event(EventType.Warning, EventReason.FailedPreStopHook, failure, container);
      } else if (preStop.sleep?.seconds) {
        const slept = await this.sleep(Math.min(preStop.sleep.seconds * 1000, remaining), cut);
        // Cut short by the node's shutdown: its own stop of this container (preStop first) follows.
        if (!slept && !this.#forced) {
          await this.#exits.get(name);
          return;
        }
      }
      remaining = Math.max(0, remaining - (this.#nowMs() - started));
    }
    await handle.stop(this.#forced ? 0 : remaining).catch((error) => {
      this.logger.warn({ err: describeError(error), container: name }, "stop failed");
    });
    await this.#exits.get(name);
  }
}
