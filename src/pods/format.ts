// Small formats the kubelet uses in messages.
import type { PodRef } from "./ports.ts";

export { messageOf } from "../errors.ts";

/** Go's time.Duration.String for whole milliseconds ("10s", "1m20s", "250ms"). */
export function goDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const totalSeconds = ms / 1000;
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = Number((totalSeconds % 60).toFixed(3));
  return `${hours > 0 ? `${hours}h` : ""}${hours > 0 || minutes > 0 ? `${minutes}m` : ""}${seconds}s`;
}

/** The kubelet's format.Pod: name_namespace(uid). */
export function formatPod(ref: PodRef): string {
  return `${ref.name}_${ref.namespace}(${ref.uid})`;
}
