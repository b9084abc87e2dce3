// Builds the pod status the kubelet would report, from the pod spec and wasmlet's record: phase
// (the kubelet's getPhase), the four node-owned conditions with their exact reasons and messages,
// IPs, startTime, qosClass and full container statuses. The output is the JSON wire form (times as
// RFC 3339 strings with second precision, like metav1.Time) ready for a status patch.
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import {
  addQuantity,
  compareQuantity,
  parseQuantity,
  type Quantity,
  ZERO,
} from "../quantity/quantity.ts";
import type { ContainerRecord, ContainerState, PodRecord, TerminatedState } from "./pod-record.ts";
import { toDate } from "./pod-record.ts";
import { CONTAINER_ID_SCHEME, ConditionReason, ConditionType, PodPhase } from "./reasons.ts";

export interface StateDoc {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt: string };
  terminated?: {
    exitCode: number;
    reason?: string;
    message?: string;
    startedAt?: string;
    finishedAt?: string;
    containerID?: string;
  };
}

export interface ContainerStatusDoc {
  name: string;
  state: StateDoc;
  lastState: StateDoc;
  ready: boolean;
  restartCount: number;
  image: string;
  imageID: string;
  containerID?: string;
  started: boolean;
  volumeMounts?: {
    name: string;
    mountPath: string;
    readOnly?: boolean;
    recursiveReadOnly?: string;
  }[];
}

export interface ConditionDoc {
  type: string;
  status: "True" | "False" | "Unknown";
  reason?: string;
  message?: string;
  lastProbeTime: null;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface PodStatusDoc {
  phase: string;
  /** metadata.generation this status reflects (PodObservedGenerationTracking). */
  observedGeneration?: number;
  conditions: ConditionDoc[];
  hostIP?: string;
  hostIPs?: { ip: string }[];
  podIP?: string;
  podIPs?: { ip: string }[];
  startTime: string;
  qosClass: string;
  reason?: string;
  message?: string;
  initContainerStatuses?: ContainerStatusDoc[];
  containerStatuses: ContainerStatusDoc[];
  ephemeralContainerStatuses?: ContainerStatusDoc[];
}

/** metav1.Time: RFC 3339, second precision, UTC. */
export function kubeTime(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

export function containerIdOf(instanceId: string | undefined): string | undefined {
  return instanceId ? `${CONTAINER_ID_SCHEME}${instanceId}` : undefined;
}

function stateDoc(state: ContainerState | undefined): StateDoc {
  if (!state) return {};
  switch (state.kind) {
    case "waiting":
      return {
        waiting: { reason: state.reason, ...(state.message ? { message: state.message } : {}) },
      };
    case "running":
      return { running: { startedAt: kubeTime(state.startedAt) } };
    case "terminated":
      return { terminated: terminatedDoc(state) };
  }
}

function terminatedDoc(state: TerminatedState): NonNullable<StateDoc["terminated"]> {
  const containerID = containerIdOf(state.instanceId);
  return {
    exitCode: state.exitCode,
    reason: state.reason,
    ...(state.message ? { message: state.message } : {}),
    ...(state.startedAt ? { startedAt: kubeTime(state.startedAt) } : {}),
    finishedAt: kubeTime(state.finishedAt),
    ...(containerID ? { containerID } : {}),
  };
}

export function containerStatusDoc(
  record: ContainerRecord,
  spec: V1Container | undefined,
): ContainerStatusDoc {
  const containerID = containerIdOf(record.instanceId);
  const doc: ContainerStatusDoc = {
    name: record.name,
    state: stateDoc(record.state),
    lastState: stateDoc(record.lastState),
    ready: record.ready,
    restartCount: record.restartCount,
    image: record.image,
    imageID: record.imageID,
    ...(containerID ? { containerID } : {}),
    started: record.started,
  };
  const mounts = spec?.volumeMounts ?? [];
  if (mounts.length > 0) {
    doc.volumeMounts = mounts.map((m) => ({
      name: m.name,
      mountPath: m.mountPath,
      ...(m.readOnly
        ? { readOnly: true, recursiveReadOnly: m.recursiveReadOnly ?? "Disabled" }
        : {}),
    }));
  }
  return doc;
}

/** The kubelet's GetPodQOS. */
export function qosClass(pod: V1Pod): "Guaranteed" | "Burstable" | "BestEffort" {
  const requests = new Map<string, Quantity>();
  const limits = new Map<string, Quantity>();
  let guaranteed = true;
  const containers = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])];
  for (const container of containers) {
    for (const [name, text] of Object.entries(container.resources?.requests ?? {})) {
      if (name !== "cpu" && name !== "memory") continue;
      const q = parseQuantity(String(text));
      if (compareQuantity(q, ZERO) > 0)
        requests.set(name, addQuantity(requests.get(name) ?? ZERO, q));
    }
    const found = new Set<string>();
    for (const [name, text] of Object.entries(container.resources?.limits ?? {})) {
      if (name !== "cpu" && name !== "memory") continue;
      const q = parseQuantity(String(text));
      if (compareQuantity(q, ZERO) > 0) {
        found.add(name);
        limits.set(name, addQuantity(limits.get(name) ?? ZERO, q));
      }
    }
    if (!found.has("cpu") || !found.has("memory")) guaranteed = false;
  }
  if (requests.size === 0 && limits.size === 0) return "BestEffort";
  if (guaranteed) {
    for (const [name, request] of requests) {
      const limit = limits.get(name);
      if (!limit || compareQuantity(limit, request) !== 0) {
        guaranteed = false;
        break;
      }
    }
  }
  return guaranteed && requests.size === limits.size ? "Guaranteed" : "Burstable";
}

type StatusView = Pick<ContainerStatusDoc, "name" | "state" | "lastState" | "ready" | "started">;

function find(statuses: readonly StatusView[], name: string): StatusView | undefined {
  return statuses.find((s) => s.name === name);
}

const isSidecar = (container: V1Container) => container.restartPolicy === "Always";

/** The kubelet's getPhase. */
export function podPhase(
  pod: V1Pod,
  initStatuses: readonly StatusView[],
  statuses: readonly StatusView[],
  podIsTerminal: boolean,
): string {
  const spec = pod.spec;
  let pendingInitialization = 0;
  let failedInitialization = 0;
  for (const container of spec?.initContainers ?? []) {
    if (isSidecar(container)) continue;
    const s = find(initStatuses, container.name);
    if (!s) {
      pendingInitialization++;
      continue;
    }
    if (s.state.running) pendingInitialization++;
    else if (s.state.terminated) {
      if (s.state.terminated.exitCode !== 0) failedInitialization++;
    } else if (s.state.waiting) {
      if (s.lastState.terminated) {
        if (s.lastState.terminated.exitCode !== 0) failedInitialization++;
      } else pendingInitialization++;
    } else pendingInitialization++;
  }
  let unknown = 0;
  let running = 0;
  let waiting = 0;
  let stopped = 0;
  let succeeded = 0;
  // Sidecars: a terminated one does not count towards the phase (it is restarted, or stopped
  // because the apps are done).
  for (const container of (spec?.initContainers ?? []).filter(isSidecar)) {
    const s = find(initStatuses, container.name);
    if (!s) unknown++;
    else if (s.state.running) {
      if (!s.started) pendingInitialization++;
      running++;
    } else if (s.state.terminated) {
      // not counted
    } else if (s.state.waiting) {
      if (!s.lastState.terminated) {
        pendingInitialization++;
        waiting++;
      }
    } else {
      pendingInitialization++;
      unknown++;
    }
  }
  for (const container of spec?.containers ?? []) {
    const s = find(statuses, container.name);
    if (!s) {
      unknown++;
      continue;
    }
    if (s.state.running) running++;
    else if (s.state.terminated) {
      stopped++;
      if (s.state.terminated.exitCode === 0) succeeded++;
    } else if (s.state.waiting) {
      if (s.lastState.terminated) stopped++;
      else waiting++;
    } else unknown++;
  }
  const restartPolicy = spec?.restartPolicy ?? "Always";
  if (failedInitialization > 0 && restartPolicy === "Never") return PodPhase.Failed;
  if ((pendingInitialization > 0 && !anyRegularStarted(statuses)) || waiting > 0)
    return PodPhase.Pending;
  if (running > 0 && unknown === 0) return PodPhase.Running;
  if (running === 0 && stopped > 0 && unknown === 0) {
    if (podIsTerminal) return stopped === succeeded ? PodPhase.Succeeded : PodPhase.Failed;
    if (restartPolicy === "Always") return PodPhase.Running;
    if (stopped === succeeded) return PodPhase.Succeeded;
    if (restartPolicy === "Never") return PodPhase.Failed;
    return PodPhase.Running;
  }
  return PodPhase.Pending;
}

function anyRegularStarted(statuses: readonly StatusView[]): boolean {
  return statuses.some(
    (s) => s.state.running || s.state.terminated || (s.state.waiting && s.lastState.terminated),
  );
}

function goList(names: string[]): string {
  return `[${names.join(" ")}]`;
}

interface ConditionValue {
  type: string;
  status: "True" | "False";
  reason?: string;
  message?: string;
}

function initializedCondition(
  pod: V1Pod,
  initStatuses: StatusView[],
  statuses: StatusView[],
  phase: string,
): ConditionValue {
  const type = ConditionType.Initialized;
  if (anyRegularStarted(statuses)) return { type, status: "True" };
  const unknown: string[] = [];
  const incomplete: string[] = [];
  for (const container of pod.spec?.initContainers ?? []) {
    const s = find(initStatuses, container.name);
    if (!s) unknown.push(container.name);
    else if (isSidecar(container) ? !s.started : s.state.terminated?.exitCode !== 0)
      incomplete.push(container.name);
  }
  if (phase === PodPhase.Succeeded && unknown.length === 0)
    return { type, status: "True", reason: ConditionReason.PodCompleted };
  return listedCondition(type, ConditionReason.ContainersNotInitialized, unknown, {
    incomplete,
  });
}

/**
 * True when no container is listed, else False with `reason` and the kubelet's message:
 * `containers with unknown status: [a], containers with <label> status: [b]`.
 */
function listedCondition(
  type: string,
  reason: string,
  unknown: string[],
  listed: Record<string, string[]>,
): ConditionValue {
  const messages = Object.entries({ unknown, ...listed })
    .filter(([, names]) => names.length > 0)
    .map(([label, names]) => `containers with ${label} status: ${goList(names)}`);
  if (messages.length === 0) return { type, status: "True" };
  return { type, status: "False", reason, message: messages.join(", ") };
}

function containersReadyCondition(
  pod: V1Pod,
  initStatuses: StatusView[],
  statuses: StatusView[],
  phase: string,
): ConditionValue {
  const type = ConditionType.ContainersReady;
  const unknown: string[] = [];
  const unready: string[] = [];
  const check = (containers: V1Container[], views: StatusView[]) => {
    for (const container of containers) {
      const s = find(views, container.name);
      if (!s) unknown.push(container.name);
      else if (!s.ready) unready.push(container.name);
    }
  };
  check((pod.spec?.initContainers ?? []).filter(isSidecar), initStatuses);
  check(pod.spec?.containers ?? [], statuses);
  if (phase === PodPhase.Succeeded && unknown.length === 0)
    return { type, status: "False", reason: ConditionReason.PodCompleted };
  if (phase === PodPhase.Failed)
    return { type, status: "False", reason: ConditionReason.PodFailed };
  return listedCondition(type, ConditionReason.ContainersNotReady, unknown, { unready });
}

function readyCondition(pod: V1Pod, containersReady: ConditionValue): ConditionValue {
  const type = ConditionType.Ready;
  if (containersReady.status !== "True") {
    return {
      type,
      status: containersReady.status,
      ...(containersReady.reason ? { reason: containersReady.reason } : {}),
      ...(containersReady.message ? { message: containersReady.message } : {}),
    };
  }
  const messages: string[] = [];
  for (const gate of pod.spec?.readinessGates ?? []) {
    const condition = (pod.status?.conditions ?? []).find((c) => c.type === gate.conditionType);
    if (!condition)
      messages.push(
        `corresponding condition of pod readiness gate "${gate.conditionType}" does not exist.`,
      );
    else if (condition.status !== "True")
      messages.push(
        `the status of pod readiness gate "${gate.conditionType}" is not "True", but ${condition.status}`,
      );
  }
  if (messages.length > 0)
    return {
      type,
      status: "False",
      reason: ConditionReason.ReadinessGatesNotReady,
      message: messages.join(", "),
    };
  return { type, status: "True" };
}

export interface BuildContext {
  nodeIPs: readonly string[];
  now: Date;
}

/** The full status the node owns for this pod. */
export function buildStatus(pod: V1Pod, record: PodRecord, context: BuildContext): PodStatusDoc {
  if (record.rejected) {
    // The kubelet's rejectPod: phase, reason, message and qosClass only.
    return {
      phase: PodPhase.Failed,
      conditions: [],
      startTime: kubeTime(record.startTime),
      qosClass: pod.status?.qosClass ?? qosClass(pod),
      containerStatuses: [],
      ...(record.verdict?.reason ? { reason: record.verdict.reason } : {}),
      ...(record.verdict?.message ? { message: record.verdict.message } : {}),
    };
  }
  const specs = new Map(
    [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c) => [c.name, c]),
  );
  const docs = (init: boolean) =>
    [...record.containers.values()]
      .filter((c) => c.init === init)
      .map((c) => containerStatusDoc(c, specs.get(c.name)));
  const initStatuses = docs(true);
  const statuses = docs(false);
  let phase = record.verdict?.phase ?? podPhase(pod, initStatuses, statuses, record.terminal);
  // The kubelet's TerminatePod: a pod that will run nothing more has a terminal phase.
  if (record.terminal && phase !== PodPhase.Succeeded && phase !== PodPhase.Failed)
    phase = PodPhase.Failed;

  const containersReady = containersReadyCondition(pod, initStatuses, statuses, phase);
  const values: ConditionValue[] = [
    {
      type: ConditionType.PodReadyToStartContainers,
      status: record.readyToStart && !record.terminal ? "True" : "False",
    },
    initializedCondition(pod, initStatuses, statuses, phase),
    readyCondition(pod, containersReady),
    containersReady,
  ];
  if (record.verdict?.disruption) {
    values.push({
      type: ConditionType.DisruptionTarget,
      status: "True",
      reason: record.verdict.disruption.reason,
      message: record.verdict.disruption.message,
    });
  }
  const existing = new Map((pod.status?.conditions ?? []).map((c) => [c.type, c]));
  const conditions: ConditionDoc[] = values.map((value) => {
    const old = existing.get(value.type);
    const since = old && old.status === value.status ? toDate(old.lastTransitionTime) : undefined;
    return {
      type: value.type,
      status: value.status,
      ...(value.reason ? { reason: value.reason } : {}),
      ...(value.message ? { message: value.message } : {}),
      lastProbeTime: null,
      lastTransitionTime: kubeTime(since ?? context.now),
    };
  });

  const status: PodStatusDoc = {
    phase,
    conditions,
    startTime: kubeTime(record.startTime),
    qosClass: pod.status?.qosClass ?? qosClass(pod),
    containerStatuses: statuses,
  };
  if (context.nodeIPs.length > 0) {
    status.hostIP = context.nodeIPs[0];
    status.hostIPs = context.nodeIPs.map((ip) => ({ ip }));
  }
  const podIPs = record.podIPs ?? context.nodeIPs;
  if (podIPs.length > 0) {
    status.podIP = podIPs[0];
    status.podIPs = podIPs.map((ip) => ({ ip }));
  }
  if (typeof pod.metadata?.generation === "number")
    status.observedGeneration = pod.metadata.generation;
  if (record.verdict?.reason) status.reason = record.verdict.reason;
  if (record.verdict?.message) status.message = record.verdict.message;
  if (initStatuses.length > 0) status.initContainerStatuses = initStatuses;
  if (record.ephemeral.size > 0) {
    // Own volumeMounts only, as the kubelet reports them; never ready, never restarted.
    const ephemeralSpecs = new Map(
      (pod.spec?.ephemeralContainers ?? []).map((c) => [c.name, c as V1Container]),
    );
    status.ephemeralContainerStatuses = [...record.ephemeral.values()].map((c) =>
      containerStatusDoc(c, ephemeralSpecs.get(c.name)),
    );
  }
  return status;
}
