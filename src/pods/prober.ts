// The probes of one running container instance, with the kubelet's semantics: a startup probe
// holds back the others until it succeeds; liveness and startup failures `failureThreshold` times
// in a row kill the instance (its restart policy decides what follows); readiness flips after
// `successThreshold` successes or `failureThreshold` failures in a row, starting not ready. Every
// failure is an Unhealthy event. An exec probe's command runs as another instance of the
// container's module (like `kubectl exec`); exit code 0 is success. httpGet, tcpSocket and grpc
// probes go over the network (net-probe.ts); one that cannot be carried out at all (a port name
// the container does not have) is tried 3 times, then reported as "errored" and not counted, and
// an httpGet probe answered by a redirect it does not follow passes with a ProbeWarning event.
import type { V1Container, V1Probe } from "@kubernetes/client-node";
import type { ProbeOutcome } from "./net-probe.ts";
import type { ExecResult } from "./ports.ts";

export type ProbeKind = "startup" | "liveness" | "readiness";

/** The kubelet keeps this much of a probe's output for its event. */
export const MAX_PROBE_OUTPUT_BYTES = 10 * 1024;
/** How often the kubelet tries a probe that could not be carried out before it gives up on it. */
const MAX_PROBE_ATTEMPTS = 3;

export interface ProberCallbacks {
  /** Runs the probe's command in the instance; rejects when it cannot be run. */
  exec(args: string[], timeoutMs: number): Promise<ExecResult>;
  /** Carries out an httpGet, tcpSocket or grpc probe (runNetworkProbe, bound to the container). */
  network(probe: V1Probe, timeoutMs: number): Promise<ProbeOutcome>;
  /** The startup probe succeeded (called at once when there is none). */
  started(): void;
  readiness(ready: boolean): void;
  /** One failed probe, for an Unhealthy event: e.g. `Liveness probe failed: …`. */
  unhealthy(message: string): void;
  /** A probe passed with a warning, for a ProbeWarning event: `Readiness probe warning: …`. */
  warning(message: string): void;
  /** Liveness or startup failed `failureThreshold` times: the instance must be killed. */
  kill(kind: "liveness" | "startup"): void;
}

const LABEL: Record<ProbeKind, string> = {
  startup: "Startup",
  liveness: "Liveness",
  readiness: "Readiness",
};

/** The probes of a container that wasmlet runs: those with an action (exec needs a command). */
export function runnableProbes(container: V1Container): Partial<Record<ProbeKind, V1Probe>> {
  const pick = (probe: V1Probe | undefined) =>
    probe && (probe.exec?.command?.length || probe.httpGet || probe.tcpSocket || probe.grpc)
      ? probe
      : undefined;
  const out: Partial<Record<ProbeKind, V1Probe>> = {};
  const startup = pick(container.startupProbe);
  const liveness = pick(container.livenessProbe);
  const readiness = pick(container.readinessProbe);
  if (startup) out.startup = startup;
  if (liveness) out.liveness = liveness;
  if (readiness) out.readiness = readiness;
  return out;
}

export class ContainerProber {
  readonly #probes: Partial<Record<ProbeKind, V1Probe>>;
  readonly #callbacks: ProberCallbacks;
  /** Milliseconds per probe second (1000; tests shrink it). */
  readonly #second: number;
  readonly #sleeps = new Map<NodeJS.Timeout, (awake: boolean) => void>();
  #stopped = false;

  constructor(
    probes: Partial<Record<ProbeKind, V1Probe>>,
    callbacks: ProberCallbacks,
    secondMs = 1000,
  ) {
    this.#probes = probes;
    this.#callbacks = callbacks;
    this.#second = secondMs;
  }

  /** Starts probing; the instance started just now. */
  start(): void {
    if (this.#probes.startup) void this.#run("startup", this.#probes.startup);
    else this.#afterStartup();
  }

  stop(): void {
    this.#stopped = true;
    for (const [timer, wake] of this.#sleeps) {
      clearTimeout(timer);
      wake(false);
    }
    this.#sleeps.clear();
  }

  #afterStartup(): void {
    this.#callbacks.started();
    if (this.#probes.liveness) void this.#run("liveness", this.#probes.liveness);
    if (this.#probes.readiness) void this.#run("readiness", this.#probes.readiness);
    else this.#callbacks.readiness(true);
  }

  async #run(kind: ProbeKind, probe: V1Probe): Promise<void> {
    const period = (probe.periodSeconds ?? 10) * this.#second;
    const timeout = (probe.timeoutSeconds ?? 1) * this.#second;
    const failureThreshold = probe.failureThreshold ?? 3;
    const successThreshold = kind === "readiness" ? (probe.successThreshold ?? 1) : 1;
    let successes = 0;
    let failures = 0;
    let ready = false;
    if (!(await this.#sleep((probe.initialDelaySeconds ?? 0) * this.#second))) return;
    for (;;) {
      const outcome = await this.#probeOnce(probe, timeout);
      if (this.#stopped) return;
      if ("error" in outcome) {
        // The kubelet throws such a result away: neither a success nor a failure.
        this.#callbacks.unhealthy(
          `${LABEL[kind]} probe errored and resulted in ${outcome.result} state: ${outcome.error}`,
        );
      } else if (outcome.result !== "failure") {
        if (outcome.result === "warning") {
          this.#callbacks.warning(`${LABEL[kind]} probe warning: ${outcome.output}`);
        }
        failures = 0;
        successes++;
        if (kind === "startup") {
          this.#afterStartup();
          return;
        }
        if (kind === "readiness" && !ready && successes >= successThreshold) {
          ready = true;
          this.#callbacks.readiness(true);
        }
      } else {
        successes = 0;
        failures++;
        this.#callbacks.unhealthy(`${LABEL[kind]} probe failed: ${outcome.output}`);
        if (failures >= failureThreshold) {
          if (kind === "readiness") {
            if (ready) this.#callbacks.readiness(false);
            ready = false;
          } else {
            this.#callbacks.kill(kind);
            return;
          }
        }
      }
      if (!(await this.#sleep(period))) return;
    }
  }

  #probeOnce(probe: V1Probe, timeoutMs: number): Promise<ProbeOutcome> {
    const command = probe.exec?.command;
    return command?.length ? this.#exec(command, timeoutMs) : this.#network(probe, timeoutMs);
  }

  /** The command's exit code decides; its output (or what went wrong) is the message. */
  async #exec(command: string[], timeoutMs: number): Promise<ProbeOutcome> {
    try {
      const result = await this.#callbacks.exec(command, timeoutMs);
      if (result.timedOut) {
        return { result: "failure", output: `command ${JSON.stringify(command)} timed out` };
      }
      if (result.exitCode === 0) return { result: "success", output: result.output };
      return {
        result: "failure",
        output:
          result.output.trim() ||
          `command ${JSON.stringify(command)} exited with ${result.exitCode}`,
      };
    } catch (error) {
      return { result: "failure", output: error instanceof Error ? error.message : String(error) };
    }
  }

  /** Like the kubelet's runProbeWithRetries: a probe that could not be carried out is tried again. */
  async #network(probe: V1Probe, timeoutMs: number): Promise<ProbeOutcome> {
    let outcome: ProbeOutcome = { result: "unknown", error: "not run" };
    for (let attempt = 0; attempt < MAX_PROBE_ATTEMPTS && !this.#stopped; attempt++) {
      try {
        outcome = await this.#callbacks.network(probe, timeoutMs);
      } catch (error) {
        outcome = {
          result: "failure",
          output: error instanceof Error ? error.message : String(error),
        };
      }
      if (!("error" in outcome)) break;
    }
    return outcome;
  }

  #sleep(ms: number): Promise<boolean> {
    if (this.#stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#sleeps.delete(timer);
        resolve(!this.#stopped);
      }, ms);
      this.#sleeps.set(timer, resolve);
    });
  }
}
