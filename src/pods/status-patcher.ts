// Sends a pod's status to the API: one patch in flight per pod, changes made meanwhile coalesced
// into the next, each patch holding only what differs from the last acknowledged status
// (conditions merge by type under a strategic merge patch, so only changed ones are sent and
// conditions owned by others — PodScheduled, readiness gates — are never touched). A status never
// regresses: a terminal phase stays terminal, an instance that terminated is never shown running or
// waiting again, restart counts never go down.
import type { Logger } from "pino";
import { describeError } from "../errors.ts";
import { httpStatusOf, type KubePort, type PodRef } from "./ports.ts";
import type { ConditionDoc, ContainerStatusDoc, PodStatusDoc } from "./status.ts";

/** Status fields the node owns; others (nominatedNodeName, resize, …) are left alone. */
const OWNED_FIELDS = [
  "phase",
  "observedGeneration",
  "conditions",
  "hostIP",
  "hostIPs",
  "podIP",
  "podIPs",
  "startTime",
  "qosClass",
  "reason",
  "message",
  "initContainerStatuses",
  "containerStatuses",
  "ephemeralContainerStatuses",
] as const;

/** Condition fields that a newer condition of the same type may leave out. */
const CLEARABLE_CONDITION_FIELDS = ["reason", "message"] as const;

type Owned = Partial<Record<(typeof OWNED_FIELDS)[number], unknown>>;

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function isTerminalPhase(phase: unknown): boolean {
  return phase === "Succeeded" || phase === "Failed";
}

/** Normalises an API status (client-node turns times into Dates) into the wire form. */
export function normaliseStatus(status: unknown): Owned {
  if (status === undefined || status === null) return {};
  const json = JSON.parse(JSON.stringify(status)) as Record<string, unknown>;
  const fix = (value: unknown): unknown => {
    if (typeof value === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(value))
      return `${value.slice(0, 19)}Z`;
    if (Array.isArray(value)) return value.map(fix);
    if (value && typeof value === "object")
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fix(v)]));
    return value;
  };
  const out: Owned = {};
  for (const field of OWNED_FIELDS) if (json[field] !== undefined) out[field] = fix(json[field]);
  return out;
}

function fixContainers(
  previous: unknown,
  next: ContainerStatusDoc[] | undefined,
): ContainerStatusDoc[] | undefined {
  if (!next || !Array.isArray(previous)) return next;
  const old = new Map((previous as ContainerStatusDoc[]).map((s) => [s.name, s]));
  return next.map((status) => {
    const before = old.get(status.name);
    if (!before) return status;
    let fixed = status;
    if (fixed.restartCount < before.restartCount)
      fixed = { ...fixed, restartCount: before.restartCount };
    const endedId = before.state?.terminated?.containerID;
    if (endedId) {
      const nowTerminatedSame = fixed.state.terminated?.containerID === endedId;
      const movedToLast = fixed.lastState.terminated?.containerID === endedId;
      const newerInstance = fixed.containerID !== undefined && fixed.containerID !== endedId;
      if (!nowTerminatedSame && !movedToLast && !newerInstance) {
        fixed = { ...fixed, state: before.state, ready: false };
      }
    }
    return fixed;
  });
}

/** Applies the never-regress rules to `next` given the last acknowledged status. */
export function withoutRegression(acked: Owned, next: PodStatusDoc): PodStatusDoc {
  let out = next;
  if (isTerminalPhase(acked.phase) && acked.phase !== next.phase) {
    out = { ...out, phase: acked.phase as string };
  }
  const init = fixContainers(acked.initContainerStatuses, out.initContainerStatuses);
  const containers =
    fixContainers(acked.containerStatuses, out.containerStatuses) ?? out.containerStatuses;
  if (init !== out.initContainerStatuses || containers !== out.containerStatuses) {
    out = {
      ...out,
      ...(init ? { initContainerStatuses: init } : {}),
      containerStatuses: containers,
    };
  }
  return out;
}

/** The strategic merge patch that turns `acked` into `desired`, or undefined when nothing differs. */
export function statusPatch(
  acked: Owned,
  desired: PodStatusDoc,
): Record<string, unknown> | undefined {
  const patch: Record<string, unknown> = {};
  const wanted = desired as unknown as Owned;
  for (const field of OWNED_FIELDS) {
    const next = wanted[field];
    const prev = acked[field];
    if (field === "conditions") {
      const before = new Map(((prev as ConditionDoc[] | undefined) ?? []).map((c) => [c.type, c]));
      const changed = ((next as ConditionDoc[] | undefined) ?? []).filter((c) => {
        const old = before.get(c.type);
        return (
          !old ||
          old.status !== c.status ||
          (old.reason ?? "") !== (c.reason ?? "") ||
          (old.message ?? "") !== (c.message ?? "")
        );
      });
      // Conditions merge by type: a field the new condition leaves out must be cleared, or the
      // API keeps the old state's reason and message next to the new status.
      if (changed.length > 0)
        patch.conditions = changed.map((c) => {
          const old = before.get(c.type);
          const cleared = CLEARABLE_CONDITION_FIELDS.filter(
            (key) => old?.[key] !== undefined && c[key] === undefined,
          );
          return cleared.length === 0
            ? c
            : { ...c, ...Object.fromEntries(cleared.map((key) => [key, null])) };
        });
      continue;
    }
    if (next === undefined) {
      if (prev !== undefined && (field === "reason" || field === "message")) patch[field] = null;
      continue;
    }
    if (!same(prev, next)) patch[field] = next;
  }
  return Object.keys(patch).length === 0 ? undefined : patch;
}

function applyPatch(acked: Owned, patch: Record<string, unknown>): Owned {
  const out: Owned = { ...acked };
  for (const [field, value] of Object.entries(patch)) {
    const key = field as keyof Owned;
    if (field === "conditions") {
      const merged = new Map(
        ((acked.conditions as ConditionDoc[] | undefined) ?? []).map((c) => [c.type, c]),
      );
      for (const c of value as ConditionDoc[])
        merged.set(
          c.type,
          Object.fromEntries(Object.entries(c).filter(([, v]) => v !== null)) as ConditionDoc,
        );
      out.conditions = [...merged.values()];
    } else if (value === null) {
      delete out[key];
    } else {
      out[key] = value;
    }
  }
  return out;
}

export interface StatusPatcherOptions {
  kube: Pick<KubePort, "patchPodStatus">;
  pod: PodRef;
  /** The status the API holds now (from the pod object). */
  initial: unknown;
  logger: Logger;
  retryInitialMs?: number;
  retryMaxMs?: number;
  /**
   * How long the first patch waits for the pod to leave Pending. A pod whose image is present
   * starts in milliseconds: its Pending status would be stale before the API stored it, and the
   * Running status would queue behind it. One patch then says Running.
   */
  firstPatchHoldMs?: number;
  /** Called once when the API says the pod is gone (404) or was recreated (409). */
  onGone?: () => void;
}

export class StatusPatcher {
  readonly #options: StatusPatcherOptions;
  #acked: Owned;
  #desired: PodStatusDoc | undefined;
  #running: Promise<void> | undefined;
  #closed = false;
  #gone = false;
  #patches = 0;
  #holdFirst: boolean;
  #endHold: (() => void) | undefined;

  constructor(options: StatusPatcherOptions) {
    this.#options = options;
    this.#acked = normaliseStatus(options.initial);
    this.#holdFirst = (options.firstPatchHoldMs ?? 0) > 0;
  }

  /** Number of patches sent (for tests and metrics). */
  get patches(): number {
    return this.#patches;
  }

  get acknowledged(): Readonly<Owned> {
    return this.#acked;
  }

  /**
   * The pod's status as the API now holds it (a watch event). Others change the node's conditions
   * too: the node lifecycle controller marks the pods of an unreachable node Ready=False. Diffing
   * against these conditions (not the ones last acknowledged) puts the node's view back with the
   * next patch, as the kubelet's status manager does when it reconciles with the API. An event
   * older than the last patch at most causes one redundant patch; the newest event always wins.
   */
  observe(status: unknown): void {
    const conditions = normaliseStatus(status).conditions;
    if (conditions !== undefined) this.#acked = { ...this.#acked, conditions };
  }

  /** Sets the status wanted; it is sent soon, coalesced with other changes. */
  set(status: PodStatusDoc): void {
    if (this.#closed || this.#gone) return;
    this.#desired = status;
    if (status.phase !== "Pending") this.#endHold?.();
    if (!this.#running) this.#running = this.#drain();
  }

  /** Resolves once everything set so far is acknowledged (or the pod is gone, or the patcher closed). */
  async flush(): Promise<void> {
    this.#endHold?.();
    while (this.#running) await this.#running;
  }

  close(): void {
    this.#closed = true;
    this.#endHold?.();
  }

  async #drain(): Promise<void> {
    if (this.#holdFirst) {
      this.#holdFirst = false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => this.#endHold?.(), this.#options.firstPatchHoldMs);
        this.#endHold = () => {
          clearTimeout(timer);
          this.#endHold = undefined;
          resolve();
        };
      });
    }
    // Let the caller finish the current burst of changes before the patch.
    await new Promise<void>((resolve) => setImmediate(resolve));
    let delay = this.#options.retryInitialMs ?? 200;
    try {
      while (!this.#closed && !this.#gone && this.#desired) {
        const target = this.#desired;
        const desired = withoutRegression(this.#acked, target);
        const patch = statusPatch(this.#acked, desired);
        if (!patch) {
          this.#desired = undefined;
          break;
        }
        try {
          this.#patches++;
          await this.#options.kube.patchPodStatus(
            this.#options.pod.namespace,
            this.#options.pod.name,
            {
              metadata: { uid: this.#options.pod.uid },
              status: patch,
            },
          );
          this.#acked = applyPatch(this.#acked, patch);
          delay = this.#options.retryInitialMs ?? 200;
          if (this.#desired === target) this.#desired = undefined;
        } catch (error) {
          const code = httpStatusOf(error);
          if (code === 404 || code === 409) {
            this.#gone = true;
            this.#options.logger.info(
              { code },
              "pod is gone or was recreated; status no longer patched",
            );
            this.#options.onGone?.();
            break;
          }
          this.#options.logger.warn(
            { err: describeError(error), retryInMs: delay },
            "status patch failed; retrying",
          );
          await new Promise((resolve) => setTimeout(resolve, delay).unref?.());
          delay = Math.min(delay * 2, this.#options.retryMaxMs ?? 5000);
        }
      }
    } finally {
      this.#running = undefined;
      if (!this.#closed && !this.#gone && this.#desired) this.#running = this.#drain();
    }
  }
}
