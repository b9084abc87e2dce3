// Running: the app containers run concurrently, each restarted under the pod's restartPolicy
// (Always, OnFailure, Never) with CrashLoopBackOff; sidecars run beside them, always restarted.
// When no app will run again the sidecars are stopped and the pod ends Succeeded (all apps exited
// 0) or Failed — a Job's pods end here.
import { buildStatus, podPhase } from "../status.ts";
import type { PodState, StateContext } from "./state.ts";

const NEXT = ["Succeeded", "Failed", "Terminating"] as const;

export const running: PodState<"Running", (typeof NEXT)[number]> = {
  name: "Running",
  next: NEXT,
  async run(ctx: StateContext) {
    const apps = [...ctx.record.containers.values()].filter((c) => !c.init);
    const outcomes = await Promise.all(
      apps.map((container) => ctx.containers.supervise(container)),
    );
    if (outcomes.includes("aborted")) return "Terminating";
    // The apps will not run again: the sidecars have nothing left to serve.
    await ctx.containers.stopSidecars(ctx.graceMs());
    if (ctx.signal.aborted) return "Terminating";
    ctx.record.terminal = true;
    const status = buildStatus(ctx.pod, ctx.record, { nodeIPs: [], now: ctx.deps.now() });
    const phase = podPhase(
      ctx.pod,
      status.initContainerStatuses ?? [],
      status.containerStatuses,
      true,
    );
    return phase === "Succeeded" ? "Succeeded" : "Failed";
  },
};
