// Terminating: the pod has a deletionTimestamp (or is gone). Every live instance gets a Killing
// event, its preStop sleep, and is stopped within the grace period (shortened if a later deletion
// asks for less); every container is reported terminated and the pod's phase terminal; then the
// pod object is deleted with grace 0 and a uid precondition, so it never stays Terminating; its
// volumes and logs are removed.
// A force-deleted pod (already gone from the API) is stopped at once and nothing is sent; a force
// deletion or the node's shutdown also ends the DELETE retries.
import { describeError } from "../../errors.ts";
import { removePodLogs } from "../log-layout.ts";
import { httpStatusOf } from "../ports.ts";
import type { PodState, StateContext } from "./state.ts";

const NEXT = ["Terminated"] as const;
const DELETE_RETRY_MAX_MS = 10_000;

export const terminating: PodState<"Terminating", (typeof NEXT)[number]> = {
  name: "Terminating",
  next: NEXT,
  async run(ctx: StateContext) {
    if (!ctx.record.terminal) {
      await ctx.containers.stopAll(ctx.graceMs());
      ctx.terminalize();
    }
    if (!ctx.forced) {
      ctx.publish();
      await ctx.flushStatus();
      let delay = 200;
      for (;;) {
        try {
          await ctx.deps.kube.deletePod(ctx.ref.namespace, ctx.ref.name, ctx.ref.uid);
          break;
        } catch (error) {
          const code = httpStatusOf(error);
          if (code === 404 || code === 409 || ctx.forced) break;
          ctx.logger.warn(
            { err: describeError(error), retryInMs: delay },
            "pod DELETE failed; retrying",
          );
          if (!(await ctx.sleep(delay, ctx.cutShort))) break;
          delay = Math.min(delay * 2, DELETE_RETRY_MAX_MS);
        }
      }
    }
    await ctx.deps.volumes.tearDown(ctx.ref.uid).catch((error) => {
      ctx.logger.warn({ err: describeError(error) }, "could not remove the pod's volumes");
    });
    const { namespace, name, uid } = ctx.ref;
    await removePodLogs(ctx.deps.node.podLogsDir, namespace, name, uid).catch((error) => {
      ctx.logger.warn({ err: describeError(error) }, "could not remove the pod's logs");
    });
    ctx.deps.crashBackoff.forget(`${ctx.ref.uid}/`);
    ctx.deps.imageBackoff.forget(`${ctx.ref.uid}/`);
    return "Terminated";
  },
};
