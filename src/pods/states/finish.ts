// What Succeeded and Failed share: stop whatever still runs (a verdict such as eviction or an
// active deadline can end a pod with containers running), mark every container terminated, report,
// release the pod's volumes, then wait for the pod's deletion.
import { describeError } from "../../errors.ts";
import type { StateContext } from "./state.ts";

export async function finish(ctx: StateContext): Promise<"Terminating"> {
  if (!ctx.record.rejected) {
    await ctx.containers.stopAll(ctx.graceMs());
    ctx.terminalize();
  }
  // Nothing listens any more: another pod may take the ports (the status keeps the address).
  ctx.deps.network.release(ctx.ref.uid);
  ctx.record.terminal = true;
  ctx.publish();
  await ctx.deps.volumes.tearDown(ctx.ref.uid).catch((error) => {
    ctx.logger.warn({ err: describeError(error) }, "could not remove the pod's volumes");
  });
  await ctx.waitForDeletion();
  return "Terminating";
}
