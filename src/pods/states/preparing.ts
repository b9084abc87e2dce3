// Preparing: the pod's volumes are materialised (configMap, secret, emptyDir, downwardAPI, projected,
// hostPath). A volume that cannot be set up (its ConfigMap is missing, …) gives a FailedMount event
// and is retried with back-off (500 ms doubling, at most retryMs), containers staying
// ContainerCreating, as with the kubelet. Then PodReadyToStartContainers turns True.
import { EventReason, EventType } from "../reasons.ts";
import type { PodState, StateContext } from "./state.ts";

const NEXT = ["Initializing", "Failed", "Terminating"] as const;

export const preparing: PodState<"Preparing", (typeof NEXT)[number]> = {
  name: "Preparing",
  next: NEXT,
  async run(ctx: StateContext) {
    let delay = Math.min(500, ctx.deps.timing.retryMs);
    for (;;) {
      if (ctx.signal.aborted) return "Terminating";
      const { volumes, failures } = await ctx.deps.volumes.setUp(ctx.pod, ctx.downward());
      if (failures.length === 0) {
        ctx.volumes = volumes;
        ctx.record.readyToStart = true;
        ctx.startVolumeChecks();
        ctx.publish();
        return "Initializing";
      }
      for (const failure of failures) {
        ctx.event(
          EventType.Warning,
          EventReason.FailedMount,
          `MountVolume.SetUp failed for volume "${failure.volume}" : ${failure.message}`,
        );
      }
      if (!(await ctx.sleep(delay))) return "Terminating";
      delay = Math.min(delay * 2, ctx.deps.timing.retryMs);
    }
  },
};
