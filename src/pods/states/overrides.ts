// What the driver makes of a state's answer: a deletion wins over everything (Terminating), a
// pod-level verdict (eviction, active deadline) over everything but the end (Failed). Every
// non-final state declares both moves, so an override never leaves the transition table.
import type { StateName } from "./state.ts";

/** States a verdict no longer redirects: the pod already ends. */
const ENDING: readonly StateName[] = ["Succeeded", "Failed", "Terminating"];

export interface PodFlags {
  /** The pod has a deletionTimestamp (or is gone from the API). */
  deletionRequested: boolean;
  /** A pod-level verdict was reached (eviction, active deadline). */
  verdict: boolean;
}

/** The state the driver moves to when `current` answered `proposed`. */
export function drivenNext(current: StateName, proposed: StateName, pod: PodFlags): StateName {
  if (pod.deletionRequested && current !== "Terminating") return "Terminating";
  if (pod.verdict && !ENDING.includes(current) && proposed !== "Failed") return "Failed";
  return proposed;
}
