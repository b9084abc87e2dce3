// What every lifecycle state is: a name (which is also what users and logs see), the states it may
// move to, and the work it does. `run` can only return one of its declared next states: an
// undeclared move does not compile. Deletion and pod-level verdicts (eviction, deadline) abort
// `ctx.signal`; the driver then moves to Terminating or Failed (overrides.ts), which every
// non-final state declares.
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { DownwardContext } from "../../volumes/field-ref.ts";
import type { MountedVolume } from "../../volumes/volume-manager.ts";
import type { ContainerRunner } from "../containers/runner.ts";
import type { LifecycleDeps } from "../lifecycle-deps.ts";
import type { ContainerRecord, PodRecord, PodVerdict } from "../pod-record.ts";
import type { EnsuredImage, PodRef } from "../ports.ts";
import type { EventType } from "../reasons.ts";

export const STATE_NAMES = [
  "Pending",
  "Pulling",
  "Preparing",
  "Initializing",
  "Running",
  "Succeeded",
  "Failed",
  "Terminating",
  "Terminated",
] as const;
export type StateName = (typeof STATE_NAMES)[number];

export interface PodState<Name extends StateName = StateName, Next extends StateName = StateName> {
  readonly name: Name;
  readonly next: readonly Next[];
  run(ctx: StateContext): Promise<Next>;
}

/** How one supervised container ended. */
export type SuperviseOutcome = "done" | "aborted";

export interface StateContext {
  readonly pod: V1Pod;
  readonly ref: PodRef;
  readonly record: PodRecord;
  readonly deps: LifecycleDeps;
  readonly logger: Logger;
  /** Images ensured by this process, by container name. */
  readonly images: Map<string, EnsuredImage>;
  volumes: ReadonlyMap<string, MountedVolume>;
  /** Aborted on deletion or a pod-level verdict. */
  readonly signal: AbortSignal;
  /** Aborted on force deletion or node shutdown: what would only delay the end (a preStop sleep, DELETE retries) ends early. */
  readonly cutShort: AbortSignal;
  /** The pod has a deletionTimestamp (or is gone from the API). */
  readonly deletionRequested: boolean;
  /** The pod is gone from the API (force deletion): no status to patch, nothing to DELETE. */
  readonly forced: boolean;
  containerSpec(name: string): V1Container | undefined;
  publish(): void;
  flushStatus(): Promise<void>;
  event(type: EventType, reason: string, message: string, container?: ContainerRecord): void;
  /** Resolves true after `ms`, false as soon as `signal` (default: the pod's `signal`) aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<boolean>;
  downward(): DownwardContext;
  setVerdict(verdict: PodVerdict): void;
  /** Starts volume refresh and emptyDir checks (once volumes exist). */
  startVolumeChecks(): void;
  /** Every container's start, restarts, probes, hooks and stop (supervise, sidecars, stopAll). */
  readonly containers: ContainerRunner;
  /** Resolves once the pod is being deleted (not on verdicts). */
  waitForDeletion(): Promise<void>;
  /** The deletion grace period now in force. */
  graceMs(): number;
  /** Marks the pod terminal and every unfinished container terminated, the kubelet's TerminatePod. */
  terminalize(): void;
}
