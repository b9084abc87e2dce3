// Pending: the pod was just seen. A pod the API already shows terminal is adopted as such; otherwise
// admission decides whether this node can run it at all (rejected → Failed with the reason), and
// the first status (Pending, startTime, IPs, ContainerCreating) goes out.
import { describeError } from "../../errors.ts";
import { admit } from "../admission.ts";
import { EventType, PodPhase } from "../reasons.ts";
import type { PodState, StateContext } from "./state.ts";

const NEXT = ["Pulling", "Succeeded", "Failed", "Terminating"] as const;

export const pending: PodState<"Pending", (typeof NEXT)[number]> = {
  name: "Pending",
  next: NEXT,
  async run(ctx: StateContext) {
    const phase = ctx.pod.status?.phase;
    if (phase === PodPhase.Succeeded || phase === PodPhase.Failed) {
      // Finished before this process saw it (wasmlet restarted): keep what the API says.
      const reason = ctx.pod.status?.reason;
      const message = ctx.pod.status?.message;
      ctx.record.verdict = {
        phase,
        ...(reason ? { reason } : {}),
        ...(message ? { message } : {}),
      };
      ctx.record.terminal = true;
      return phase;
    }
    for (;;) {
      if (ctx.signal.aborted) return "Terminating";
      let result: Awaited<ReturnType<typeof admit>>;
      try {
        result = await admit(ctx.pod, ctx.deps.admission);
      } catch (error) {
        ctx.logger.warn({ err: describeError(error) }, "admission lookup failed; retrying");
        if (!(await ctx.sleep(ctx.deps.timing.retryMs))) return "Terminating";
        continue;
      }
      if (!result.admitted) {
        ctx.event(EventType.Warning, result.reason, result.message);
        ctx.record.verdict = {
          phase: "Failed",
          reason: result.reason,
          message: `Pod was rejected: ${result.message}`,
        };
        ctx.record.rejected = true;
        ctx.record.terminal = true;
        ctx.publish();
        return "Failed";
      }
      const network = ctx.deps.network.admit(ctx.pod);
      if (!network.admitted) {
        ctx.event(EventType.Warning, network.reason, network.message);
        ctx.record.verdict = {
          phase: "Failed",
          reason: network.reason,
          message: `Pod was rejected: ${network.message}`,
        };
        ctx.record.rejected = true;
        ctx.record.terminal = true;
        ctx.publish();
        return "Failed";
      }
      ctx.record.podIPs = network.podIPs;
      for (const warning of [...result.warnings, ...network.warnings]) {
        ctx.deps.kube.recordEvent({
          pod: ctx.ref,
          ...(warning.fieldPath ? { fieldPath: warning.fieldPath } : {}),
          type: EventType.Warning,
          reason: warning.reason,
          message: warning.message,
        });
      }
      ctx.publish();
      return "Pulling";
    }
  },
};
