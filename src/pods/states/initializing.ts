// Initializing: init containers run one at a time, in order; each must exit 0 before the next
// starts. A failing one is restarted with CrashLoopBackOff (Init:CrashLoopBackOff) unless the pod's
// restartPolicy is Never, which fails the pod. A sidecar (restartPolicy Always) is started and,
// once it has started, left running while the next one goes. Init containers that already
// completed (seen in the API after a wasmlet restart) are not run again; sidecars are.
import type { PodState, StateContext } from "./state.ts";

const NEXT = ["Running", "Failed", "Terminating"] as const;

export const initializing: PodState<"Initializing", (typeof NEXT)[number]> = {
  name: "Initializing",
  next: NEXT,
  async run(ctx: StateContext) {
    const containers = [...ctx.record.containers.values()];
    const anyAppStarted = containers.some((c) => !c.init && c.instanceId !== undefined);
    for (const container of containers) {
      if (!container.init) continue;
      if (container.sidecar) {
        // After a wasmlet restart with the apps already run, sidecars come back beside them.
        const started = ctx.containers.startSidecar(container);
        if (!anyAppStarted && (await started) === "aborted") return "Terminating";
        continue;
      }
      if (anyAppStarted) continue;
      if (container.state.kind === "terminated" && container.state.exitCode === 0) continue;
      const outcome = await ctx.containers.supervise(container);
      if (outcome === "aborted") return "Terminating";
      const exit = ctx.containers.lastExit(container.name);
      if (exit?.exitCode !== 0) return "Failed";
    }
    return "Running";
  },
};
