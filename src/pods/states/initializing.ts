// Initializing: init containers run one at a time, in order; each must exit 0 before the next
// starts. A failing one is restarted with CrashLoopBackOff (Init:CrashLoopBackOff) unless the pod's
// restartPolicy is Never, which fails the pod. Init containers that already completed (seen in the
// API after a wasmlet restart) are not run again.
import type { PodState, StateContext } from "./state.ts";

const NEXT = ["Running", "Failed", "Terminating"] as const;

export const initializing: PodState<"Initializing", (typeof NEXT)[number]> = {
  name: "Initializing",
  next: NEXT,
  async run(ctx: StateContext) {
    const anyAppStarted = [...ctx.record.containers.values()].some(
      (c) => !c.init && c.instanceId !== undefined,
    );
    if (anyAppStarted) return "Running";
    for (const container of ctx.record.containers.values()) {
      if (!container.init) continue;
      if (container.state.kind === "terminated" && container.state.exitCode === 0) continue;
      const outcome = await ctx.supervise(container);
      if (outcome === "aborted") return "Terminating";
      const exit = ctx.lastExit(container.name);
      if (exit?.exitCode !== 0) return "Failed";
    }
    return "Running";
  },
};
