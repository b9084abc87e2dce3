// Terminated: nothing of the pod runs or remains on this node; the lifecycle is over. The
// controller forgets it once the API reports the pod deleted.
import type { PodState } from "./state.ts";

const NEXT = [] as const;

export const terminated: PodState<"Terminated", (typeof NEXT)[number]> = {
  name: "Terminated",
  next: NEXT,
  run: () => Promise.reject(new Error("Terminated is final")),
};
