// Succeeded: every app container exited 0 and none will run again. The pod stays until it is deleted.
import { finish } from "./finish.ts";
import type { PodState, StateContext } from "./state.ts";

const NEXT = ["Terminating"] as const;

export const succeeded: PodState<"Succeeded", (typeof NEXT)[number]> = {
  name: "Succeeded",
  next: NEXT,
  run: (ctx: StateContext) => finish(ctx),
};
