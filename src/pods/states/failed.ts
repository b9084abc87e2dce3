// Failed: rejected by admission, evicted (emptyDir over its sizeLimit), past activeDeadlineSeconds,
// an init container failed under restartPolicy Never, or app containers ended with a failure that
// the policy does not restart. The pod stays until it is deleted.
import { finish } from "./finish.ts";
import type { PodState, StateContext } from "./state.ts";

const NEXT = ["Terminating"] as const;

export const failed: PodState<"Failed", (typeof NEXT)[number]> = {
  name: "Failed",
  next: NEXT,
  run: (ctx: StateContext) => finish(ctx),
};
