// Terminated: nothing of the pod runs or remains on this node; the lifecycle is over. The
// controller forgets it once the API reports the pod deleted.
import { podError } from "../errors.ts";
import type { PodState } from "./state.ts";

const NEXT = [] as const;

export const terminated: PodState<"Terminated", (typeof NEXT)[number]> = {
  name: "Terminated",
  next: NEXT,
  run: () => Promise.reject(podError("WASMLET_ERR_LIFECYCLE_STATE", "Terminated is final")),
};
