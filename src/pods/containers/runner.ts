// Every container of one pod, supervised: start (resolve config → pure run spec → launch), watch
// its exit, restart it under the pod's restartPolicy with CrashLoopBackOff, probe it, run its
// hooks and stop it within the grace period (sidecars last). The pod machine (lifecycle.ts and
// states/) decides when; this decides how, and keeps the live instances.
import { randomBytes } from "node:crypto";
import type { V1Container } from "@kubernetes/client-node";
import { describeError } from "../../errors.ts";
import type { ContainerMountRequest } from "../../volumes/volume-manager.ts";
import { expand, invalidKeysMessage, mappingFor, resolveEnv } from "../env.ts";
import { podError } from "../errors.ts";
import { formatPod, goDuration, messageOf } from "../format.ts";
import { InstanceRegistry } from "../instance-registry.ts";
import { containerLogPath, newInstanceLog, podLogDir } from "../log-layout.ts";
import { runNetworkProbe } from "../net-probe.ts";
import type { ContainerRecord, ContainerState, TerminatedState } from "../pod-record.ts";
import type { RunHandle, RunSpec } from "../ports.ts";
import { ContainerProber, runnableProbes } from "../prober.ts";
import { ContainerReason, EventReason, EventType } from "../reasons.ts";
import { serviceEnv } from "../service-env.ts";
import type { StateContext, SuperviseOutcome } from "../states/state.ts";
import { type HookContext, runHook } from "./hooks.ts";
import { buildRunSpec } from "./run-spec.ts";

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

/** What the runner needs of its pod: the pod's state, its signals and how it reports. */
export type ContainerHost = Pick<
  StateContext,
  | "pod"
  | "ref"
  | "record"
  | "deps"
  | "logger"
  | "images"
  | "volumes"
  | "signal"
  | "cutShort"
  | "forced"
  | "containerSpec"
  | "publish"
  | "event"
  | "sleep"
  | "downward"
  | "graceMs"
>;

type StartResult =
  | { kind: "started"; exit: Promise<TerminatedState> }
  | { kind: "not-started" }
  | { kind: "aborted" };

type ResolvedConfig =
  | { kind: "resolved"; env: Map<string, string>; mounts: RunSpec["mounts"] }
  | { kind: "not-started" }
  | { kind: "aborted" };

export class ContainerRunner {
  readonly #host: ContainerHost;
  readonly #handles = new Map<string, RunHandle>();
  readonly #exits = new Map<string, Promise<TerminatedState>>();
  /** Probers by instance id; each stops when its instance exits. */
  readonly #probers = new Map<string, ContainerProber>();
  /** Supervision of the sidecars (init containers with restartPolicy Always), by name. */
  readonly #sidecars = new Map<string, Promise<SuperviseOutcome>>();
  readonly #startedWaiters = new Map<string, () => void>();
  /** Aborted when the app containers are done for good: the sidecars end too. */
  readonly #sidecarsEnd = new AbortController();

  constructor(host: ContainerHost) {
    this.#host = host;
  }

  /** Live instance of a container (for exec/attach/logs). */
  instance(container: string): { id: string; logPath: string } | undefined {
    const host = this.#host;
    const handle = this.#handles.get(container);
    const record = this.#recordOf(container);
    if (!handle || !record) return undefined;
    const dir = podLogDir(
      host.deps.node.podLogsDir,
      host.ref.namespace,
      host.ref.name,
      host.ref.uid,
    );
    return { id: handle.id, logPath: containerLogPath(dir, container, record.restartCount) };
  }

  /** A container's record: app, init or ephemeral. */
  #recordOf(name: string): ContainerRecord | undefined {
    return this.#host.record.containers.get(name) ?? this.#host.record.ephemeral.get(name);
  }

  /** Latest exit of a container, once it is known. */
  lastExit(container: string): TerminatedState | undefined {
    const record = this.#recordOf(container);
    if (record?.state.kind === "terminated") return record.state;
    return record?.lastState;
  }

  // ------------------------------------------------------------------ supervision

  /** Runs a container until it is done for good under the restart policy, or the pod's signal aborts. */
  async supervise(container: ContainerRecord): Promise<SuperviseOutcome> {
    const host = this.#host;
    const key = InstanceRegistry.key(host.ref.uid, container.name);
    const policy = host.pod.spec?.restartPolicy;
    // A sidecar also ends, as "done", when the pod's app containers are done for good.
    const signal = container.sidecar
      ? AbortSignal.any([host.signal, this.#sidecarsEnd.signal])
      : host.signal;
    while (!signal.aborted) {
      if (container.state.kind === "terminated") {
        if (!container.sidecar && !shouldRestart(policy, container.init, container.state.exitCode))
          return "done";
        const finishedAt = container.state.finishedAt.getTime();
        const wait = host.deps.crashBackoff.remaining(key, finishedAt);
        if (wait > 0) {
          container.lastState = container.state;
          container.state = {
            kind: "waiting",
            reason: ContainerReason.CrashLoopBackOff,
            message: `back-off ${goDuration(host.deps.crashBackoff.get(key))} restarting failed container=${container.name} pod=${formatPod(host.ref)}`,
          };
          host.event(
            EventType.Warning,
            EventReason.BackOff,
            `Back-off restarting failed container ${container.name} in pod ${formatPod(host.ref)}`,
            container,
          );
          host.publish();
          if (!(await host.sleep(wait, signal))) return this.#endOf(container);
        }
        host.deps.crashBackoff.next(key, finishedAt);
      }
      const started = await this.#start(container);
      if (started.kind === "aborted") return "aborted";
      if (started.kind === "not-started") {
        if (!(await host.sleep(host.deps.timing.retryMs, signal))) return this.#endOf(container);
        continue;
      }
      const ended = await Promise.race([started.exit, this.#aborted()]);
      if (ended === "aborted") return "aborted";
    }
    return this.#endOf(container);
  }

  /**
   * Runs an ephemeral container once (`kubectl debug`): started when it can be (a configuration
   * error is retried, as the kubelet retries a container it could not create), never restarted.
   * Resolves when it exited or the pod's signal aborted.
   */
  async runEphemeral(container: ContainerRecord): Promise<void> {
    const host = this.#host;
    while (!host.signal.aborted && !host.record.terminal) {
      const started = await this.#start(container);
      if (started.kind === "aborted") return;
      if (started.kind === "started") {
        await Promise.race([started.exit, this.#aborted()]);
        return;
      }
      if (!(await host.sleep(host.deps.timing.retryMs))) return;
    }
  }

  #endOf(container: ContainerRecord): SuperviseOutcome {
    return container.sidecar && !this.#host.signal.aborted ? "done" : "aborted";
  }

  /** Starts a sidecar's supervision (once) and resolves when it has started (its startup probe passed). */
  startSidecar(container: ContainerRecord): Promise<"started" | "aborted"> {
    if (!this.#sidecars.has(container.name))
      this.#sidecars.set(container.name, this.supervise(container));
    if (container.started) return Promise.resolve("started");
    const signal = this.#host.signal;
    return new Promise((resolve) => {
      const onAbort = () => resolve("aborted");
      signal.addEventListener("abort", onAbort, { once: true });
      this.#startedWaiters.set(container.name, () => {
        signal.removeEventListener("abort", onAbort);
        resolve("started");
      });
    });
  }

  /** The app containers are done for good: stops the sidecars, last first, and waits for them. */
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
    const signal = this.#host.signal;
    if (signal.aborted) return Promise.resolve("aborted");
    return new Promise((resolve) =>
      signal.addEventListener("abort", () => resolve("aborted"), { once: true }),
    );
  }

  #waitingFromError(container: ContainerRecord, reason: string, message: string): void {
    if (container.state.kind === "terminated") container.lastState = container.state;
    container.state = { kind: "waiting", reason, message };
    container.ready = false;
    this.#host.event(EventType.Warning, EventReason.Failed, `Error: ${message}`, container);
    this.#host.publish();
  }

  // ------------------------------------------------------------------ start

  /** Resolve config → run spec → launch, then postStart and probes. */
  async #start(container: ContainerRecord): Promise<StartResult> {
    const host = this.#host;
    const spec = host.containerSpec(container.name);
    const image = host.images.get(container.name);
    if (!spec || !image)
      throw podError(
        "WASMLET_ERR_LIFECYCLE_STATE",
        `container ${container.name} has no spec or image`,
      );

    const config = await this.#resolveConfig(container, spec);
    if (config.kind !== "resolved") return config;
    if (host.signal.aborted) return { kind: "aborted" };

    const logDir = podLogDir(
      host.deps.node.podLogsDir,
      host.ref.namespace,
      host.ref.name,
      host.ref.uid,
    );
    const wanted =
      container.instanceId !== undefined ? container.restartCount + 1 : container.restartCount;
    const { index, path: logPath } = newInstanceLog(logDir, container.name, wanted);
    const runSpec = buildRunSpec({
      id: randomBytes(32).toString("hex"),
      pod: host.pod,
      ref: host.ref,
      spec,
      image,
      env: config.env,
      mounts: config.mounts,
      logPath,
      network: host.deps.network.containerNetwork(host.ref.uid, spec),
    });
    return this.#launch(container, spec, runSpec, index);
  }

  /** The container's environment (events for skipped names) and its volume mounts. */
  async #resolveConfig(container: ContainerRecord, spec: V1Container): Promise<ResolvedConfig> {
    const host = this.#host;
    try {
      const resolution = await resolveEnv(host.pod, spec, {
        source: host.deps.kube,
        downward: host.downward(),
        services: serviceEnv(
          host.deps.kube.listServices(),
          host.ref.namespace,
          host.pod.spec?.enableServiceLinks ?? true,
        ),
      });
      const env = resolution.env;
      for (const skipped of resolution.skipped) {
        host.event(
          EventType.Warning,
          EventReason.InvalidEnvironmentVariableNames,
          invalidKeysMessage(skipped, host.ref.namespace),
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
      const mounts = await host.deps.volumes.containerMounts(
        host.pod,
        spec,
        requests,
        host.volumes,
      );
      return { kind: "resolved", env, mounts };
    } catch (error) {
      if (host.signal.aborted) return { kind: "aborted" };
      this.#waitingFromError(
        container,
        ContainerReason.CreateContainerConfigError,
        messageOf(error),
      );
      return { kind: "not-started" };
    }
  }

  /** Hands the run spec to the runtime; the instance counts as running once postStart passed. */
  async #launch(
    container: ContainerRecord,
    spec: V1Container,
    runSpec: RunSpec,
    index: number,
  ): Promise<StartResult> {
    const host = this.#host;
    const id = runSpec.id;
    // No new sidecar instance once the sidecars are being stopped (nothing awaits from here on).
    if (container.sidecar && this.#sidecarsEnd.signal.aborted) return { kind: "not-started" };
    host.deps.instances.claim(host.ref.uid, container.name, id);
    let handle: RunHandle;
    try {
      handle = host.deps.runtime.run(runSpec);
    } catch (error) {
      host.deps.instances.release(host.ref.uid, container.name, id);
      this.#waitingFromError(container, ContainerReason.CreateContainerError, messageOf(error));
      return { kind: "not-started" };
    }
    if (container.state.kind === "terminated") container.lastState = container.state;
    container.restartCount = index;
    container.instanceId = id;
    container.state = { kind: "waiting", reason: ContainerReason.ContainerCreating };
    this.#handles.set(container.name, handle);
    host.event(
      EventType.Normal,
      EventReason.Created,
      `Created container: ${container.name}`,
      container,
    );
    const exit = this.#watchExit(container, spec, handle, runSpec.logPath);
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
      const failure = await runHook(postStart, handle, spec, undefined, this.#hookContext());
      if (failure !== undefined) {
        if (!host.signal.aborted) {
          host.event(EventType.Warning, EventReason.FailedPostStartHook, failure, container);
          void handle.stop(host.graceMs()).catch(() => undefined);
        }
        return { kind: "started", exit };
      }
    }
    if (container.instanceId === id && (container.state as ContainerState).kind !== "terminated") {
      container.state = { kind: "running", startedAt };
      const runs = (!container.init || container.sidecar) && !container.ephemeral;
      const probes = runs ? runnableProbes(spec) : {};
      container.ready = runs && probes.startup === undefined && probes.readiness === undefined;
      if (probes.startup === undefined) this.#markStarted(container);
      if (probes.startup || probes.liveness || probes.readiness)
        this.#startProber(container, spec, handle, probes);
    }
    host.event(
      EventType.Normal,
      EventReason.Started,
      `Started container ${container.name}`,
      container,
    );
    host.publish();
    return { kind: "started", exit };
  }

  #watchExit(
    container: ContainerRecord,
    spec: V1Container,
    handle: RunHandle,
    logPath: string,
  ): Promise<TerminatedState> {
    const host = this.#host;
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
      host.deps.instances.release(host.ref.uid, container.name, handle.id);
      if (this.#handles.get(container.name) === handle) this.#handles.delete(container.name);
      let terminated: TerminatedState;
      if (!status) {
        terminated = {
          kind: "terminated",
          exitCode: 128,
          reason: ContainerReason.StartError,
          message: messageOf(startError),
          ...(startedAt ? { startedAt } : {}),
          finishedAt: host.deps.now(),
          instanceId: handle.id,
        };
      } else {
        let message = status.message;
        if (
          !message &&
          status.exitCode !== 0 &&
          spec.terminationMessagePolicy === "FallbackToLogsOnError" &&
          host.deps.logs
        ) {
          message = await host.deps.logs
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
        host.publish();
      }
      return terminated;
    })();
  }

  // ------------------------------------------------------------------ probes

  #startProber(
    container: ContainerRecord,
    spec: V1Container,
    handle: RunHandle,
    probes: ReturnType<typeof runnableProbes>,
  ): void {
    const host = this.#host;
    const current = () => container.instanceId === handle.id && container.state.kind === "running";
    const prober = new ContainerProber(
      probes,
      {
        exec: (args, timeoutMs) => handle.exec(args, timeoutMs),
        network: (probe, timeoutMs) => runNetworkProbe(probe, spec, this.#podIP(), timeoutMs),
        started: () => {
          if (!current() || container.started) return;
          this.#markStarted(container);
          host.publish();
        },
        readiness: (ready) => {
          if (!current() || container.ready === ready) return;
          container.ready = ready;
          host.publish();
        },
        unhealthy: (message) => {
          if (current()) host.event(EventType.Warning, EventReason.Unhealthy, message, container);
        },
        warning: (message) => {
          if (current())
            host.event(EventType.Warning, EventReason.ProbeWarning, message, container);
        },
        kill: (kind) => {
          if (!current()) return;
          host.event(
            EventType.Normal,
            EventReason.Killing,
            `Container ${container.name} failed ${kind} probe, will be restarted`,
            container,
          );
          const probeSeconds = probes[kind]?.terminationGracePeriodSeconds;
          const graceMs =
            probeSeconds === undefined ? host.graceMs() : Math.max(0, probeSeconds) * 1000;
          void handle.stop(graceMs).catch((error) => {
            host.logger.warn(
              { err: describeError(error), container: container.name },
              "stop failed",
            );
          });
        },
      },
      host.deps.timing.probeSecondMs,
    );
    this.#probers.set(handle.id, prober);
    void handle.exited.finally(() => {
      prober.stop();
      this.#probers.delete(handle.id);
    });
    prober.start();
  }

  // ------------------------------------------------------------------ hooks

  #hookContext(): HookContext {
    const host = this.#host;
    return {
      ref: host.ref,
      podIP: this.#podIP(),
      signal: host.signal,
      fellBack: (message) =>
        host.event(EventType.Warning, EventReason.LifecycleHTTPFallback, message),
    };
  }

  /** Where network probes and hooks go when their action names no host: the pod's IP. */
  #podIP(): string {
    return (this.#host.record.podIPs ?? this.#host.deps.node.nodeIPs)[0] ?? "";
  }

  // ------------------------------------------------------------------ stop

  /** Asks every live instance to stop within `graceMs` (no hooks, no wait): force or shortened deletion. */
  stopNow(graceMs: number): void {
    for (const handle of this.#handles.values()) void handle.stop(graceMs).catch(() => undefined);
  }

  /** Node shutdown: stops every live instance within `graceMs`, preStop hooks first; only `cut` ends a preStop sleep. */
  async shutdown(graceMs: number, cut: AbortSignal): Promise<void> {
    await Promise.all([...this.#handles.keys()].map((name) => this.#stopOne(name, graceMs, cut)));
  }

  /** Stops every live instance (Killing events, preStop, then stop within grace; sidecars last) and waits for their exits. */
  async stopAll(graceMs: number): Promise<void> {
    for (const prober of this.#probers.values()) prober.stop();
    const deadline = this.#nowMs() + graceMs;
    const others = [...this.#handles.keys()].filter(
      (name) => !this.#host.record.containers.get(name)?.sidecar,
    );
    await Promise.all(others.map((name) => this.#stopOne(name, graceMs)));
    await this.#stopSidecarsInOrder(deadline);
  }

  /** Sidecars stop after the other containers, last first, within what is left of the grace period. */
  async #stopSidecarsInOrder(deadline: number): Promise<void> {
    const sidecars = [...this.#host.record.containers.values()].filter((c) => c.sidecar).reverse();
    for (const sidecar of sidecars) {
      if (this.#handles.has(sidecar.name))
        await this.#stopOne(sidecar.name, Math.max(0, deadline - this.#nowMs()));
    }
  }

  #nowMs(): number {
    return this.#host.deps.now().getTime();
  }

  /**
   * Killing event, preStop hook (exec, httpGet, tcpSocket or sleep), then stop within what is left
   * of `graceMs`; resolves once it exited. `cut` ends a preStop sleep early.
   */
  async #stopOne(name: string, graceMs: number, cut = this.#host.cutShort): Promise<void> {
    const host = this.#host;
    const handle = this.#handles.get(name);
    if (!handle) return;
    const container = this.#recordOf(name);
    if (container)
      host.event(EventType.Normal, EventReason.Killing, `Stopping container ${name}`, container);
    let remaining = graceMs;
    const spec = host.containerSpec(name);
    const preStop = spec?.lifecycle?.preStop;
    if (spec && preStop && container && remaining > 0 && !host.forced) {
      const started = this.#nowMs();
      if (preStop.exec?.command?.length || preStop.httpGet || preStop.tcpSocket) {
        const failure = await runHook(preStop, handle, spec, remaining, this.#hookContext());
        if (failure !== undefined)
          host.event(EventType.Warning, EventReason.FailedPreStopHook, failure, container);
      } else if (preStop.sleep?.seconds) {
        const slept = await host.sleep(Math.min(preStop.sleep.seconds * 1000, remaining), cut);
        // Cut short by the node's shutdown: its own stop of this container (preStop first) follows.
        if (!slept && !host.forced) {
          await this.#exits.get(name);
          return;
        }
      }
      remaining = Math.max(0, remaining - (this.#nowMs() - started));
    }
    await handle.stop(host.forced ? 0 : remaining).catch((error) => {
      host.logger.warn({ err: describeError(error), container: name }, "stop failed");
    });
    await this.#exits.get(name);
  }
}
