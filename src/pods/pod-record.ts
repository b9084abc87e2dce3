// What wasmlet knows about one pod's containers: the lifecycle writes it, the status builder reads
// it. Plain data, no Kubernetes client types, so it is easy to assert on.
import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import { ContainerReason } from "./reasons.ts";

export interface WaitingState {
  kind: "waiting";
  reason: string;
  message?: string;
}

export interface RunningState {
  kind: "running";
  startedAt: Date;
}

export interface TerminatedState {
  kind: "terminated";
  exitCode: number;
  reason: string;
  message?: string;
  startedAt?: Date;
  finishedAt: Date;
  /** The instance this state belongs to (without the scheme). */
  instanceId?: string;
}

export type ContainerState = WaitingState | RunningState | TerminatedState;

export interface ContainerRecord {
  name: string;
  init: boolean;
  /** An init container with restartPolicy Always: it keeps running beside the app containers. */
  sidecar: boolean;
  /** Image as written in the spec, until the images module normalises it. */
  image: string;
  imageID: string;
  /** Index of the current (or latest) instance: 0 for the first, +1 per restart. */
  restartCount: number;
  state: ContainerState;
  lastState?: TerminatedState;
  /** Current or latest instance id. */
  instanceId?: string;
  ready: boolean;
  started: boolean;
  /** An ephemeral container (`kubectl debug`): started once, never restarted. */
  ephemeral?: boolean;
}

/** A pod-level outcome decided outside the containers (admission, eviction, deadline). */
export interface PodVerdict {
  phase: "Failed" | "Succeeded";
  reason?: string;
  message?: string;
  /** Adds the DisruptionTarget condition (eviction, deadline). */
  disruption?: { reason: string; message: string };
}

export interface PodRecord {
  uid: string;
  startTime: Date;
  containers: Map<string, ContainerRecord>;
  verdict?: PodVerdict;
  /** The pod's "sandbox" (its directories and volumes) is ready. */
  readyToStart: boolean;
  /** Rejected by admission: the status carries only phase, reason and message, like the kubelet's rejectPod. */
  rejected?: boolean;
  /** No container will run again (terminal phase reached or pod deleted). */
  terminal: boolean;
  /** Ephemeral containers seen on the pod, by name, in the order they were added. */
  ephemeral: Map<string, ContainerRecord>;
  /** The pod's addresses, given at admission (src/network/pod-network.ts). */
  podIPs?: string[];
}

function toDate(value: unknown): Date | undefined {
  if (value instanceof Date) return value;
  if (typeof value === "string" && value !== "") {
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? undefined : date;
  }
  return undefined;
}

export { toDate };

/**
 * The record for a pod seen for the first time by this process. When the API already holds a
 * status (wasmlet restarted), restart counts, terminated states and completed init containers are
 * taken from it: a container the API shows running is no longer running (its worker died with the
 * previous process) and becomes `lastState: ContainerStatusUnknown`.
 */
export function recordFromPod(pod: V1Pod, now: Date): PodRecord {
  const status = pod.status;
  const hasInit = (pod.spec?.initContainers ?? []).length > 0;
  const defaultReason = hasInit
    ? ContainerReason.PodInitializing
    : ContainerReason.ContainerCreating;
  const containers = new Map<string, ContainerRecord>();
  const previous = new Map(
    [...(status?.initContainerStatuses ?? []), ...(status?.containerStatuses ?? [])].map((s) => [
      s.name,
      s,
    ]),
  );
  const specs = [
    ...(pod.spec?.initContainers ?? []).map((c) => ({ c, init: true })),
    ...(pod.spec?.containers ?? []).map((c) => ({ c, init: false })),
  ];
  for (const { c, init } of specs) {
    const record: ContainerRecord = {
      name: c.name,
      init,
      sidecar: init && c.restartPolicy === "Always",
      image: c.image ?? "",
      imageID: "",
      restartCount: 0,
      state: { kind: "waiting", reason: defaultReason },
      ready: false,
      started: false,
    };
    const old = previous.get(c.name);
    if (old) {
      record.restartCount = old.restartCount ?? 0;
      record.imageID = old.imageID ?? "";
      if (old.image) record.image = old.image;
      const oldId = old.containerID?.replace(/^[a-z]+:\/\//, "");
      if (oldId) record.instanceId = oldId;
      const lastTerm = old.lastState?.terminated;
      if (lastTerm) record.lastState = fromApiTerminated(lastTerm, now);
      if (old.state?.terminated) {
        record.state = fromApiTerminated(old.state.terminated, now);
        if (!record.state.instanceId && oldId) record.state.instanceId = oldId;
        record.instanceId ??= record.state.instanceId;
      } else if (old.state?.running) {
        const startedAt = toDate(old.state.running.startedAt);
        record.lastState = {
          kind: "terminated",
          exitCode: 137,
          reason: ContainerReason.ContainerStatusUnknown,
          message:
            "The container could not be located when wasmlet restarted. The container used to be Running",
          ...(startedAt ? { startedAt } : {}),
          finishedAt: now,
          ...(oldId ? { instanceId: oldId } : {}),
        };
        record.state = { ...record.lastState };
      } else if (old.state?.waiting && old.lastState?.terminated) {
        // Waiting to restart (CrashLoopBackOff): the latest instance is the terminated one.
        record.state = { ...fromApiTerminated(old.lastState.terminated, now) };
        record.lastState = undefined;
      }
    }
    containers.set(c.name, record);
  }
  return {
    uid: pod.metadata?.uid ?? "",
    startTime: toDate(status?.startTime) ?? now,
    containers,
    readyToStart: false,
    terminal: false,
    ephemeral: ephemeralRecords(pod, now),
  };
}

/**
 * A new ephemeral container waits (ContainerCreating) to be started once. One the API already
 * shows started (wasmlet restarted) is never started again: a running one is reported
 * terminated (ContainerStatusUnknown), as its instance died with the previous process.
 */
export function ephemeralRecord(
  name: string,
  image: string,
  old: V1ContainerStatus | undefined,
  now: Date,
): ContainerRecord {
  const record: ContainerRecord = {
    name,
    init: false,
    sidecar: false,
    ephemeral: true,
    image,
    imageID: old?.imageID ?? "",
    restartCount: 0,
    state: { kind: "waiting", reason: ContainerReason.ContainerCreating },
    ready: false,
    started: false,
  };
  if (old?.image) record.image = old.image;
  const oldId = old?.containerID?.replace(/^[a-z]+:\/\//, "");
  if (oldId) record.instanceId = oldId;
  if (old?.state?.terminated) {
    record.state = fromApiTerminated(old.state.terminated, now);
    if (!record.state.instanceId && oldId) record.state.instanceId = oldId;
  } else if (old?.state?.running || oldId) {
    const startedAt = toDate(old?.state?.running?.startedAt);
    record.state = {
      kind: "terminated",
      exitCode: 137,
      reason: ContainerReason.ContainerStatusUnknown,
      message: "The container could not be located when wasmlet restarted",
      ...(startedAt ? { startedAt } : {}),
      finishedAt: now,
      ...(oldId ? { instanceId: oldId } : {}),
    };
  }
  return record;
}

function ephemeralRecords(pod: V1Pod, now: Date): Map<string, ContainerRecord> {
  const previous = new Map(
    (pod.status?.ephemeralContainerStatuses ?? []).map((s) => [s.name, s] as const),
  );
  const records = new Map<string, ContainerRecord>();
  for (const c of pod.spec?.ephemeralContainers ?? [])
    records.set(c.name, ephemeralRecord(c.name, c.image ?? "", previous.get(c.name), now));
  return records;
}

/** Whether an ephemeral container is yet to be started (it never is twice). */
export function ephemeralUnstarted(record: ContainerRecord): boolean {
  return record.instanceId === undefined && record.state.kind === "waiting";
}

function fromApiTerminated(
  terminated: {
    exitCode: number;
    reason?: string;
    message?: string;
    startedAt?: Date | string;
    finishedAt?: Date | string;
    containerID?: string;
  },
  now: Date,
): TerminatedState {
  const startedAt = toDate(terminated.startedAt);
  const id = terminated.containerID?.replace(/^[a-z]+:\/\//, "");
  return {
    kind: "terminated",
    exitCode: terminated.exitCode,
    reason:
      terminated.reason ??
      (terminated.exitCode === 0 ? ContainerReason.Completed : ContainerReason.Error),
    ...(terminated.message ? { message: terminated.message } : {}),
    ...(startedAt ? { startedAt } : {}),
    finishedAt: toDate(terminated.finishedAt) ?? now,
    ...(id ? { instanceId: id } : {}),
  };
}
