// A container's lifecycle hooks (postStart, preStop) of kind exec, httpGet or tcpSocket: each
// resolves undefined when it succeeded, else the kubelet's message for the Failed…Hook event. A
// preStop `sleep` is the stop's own business (see runner.ts), as it only delays the stop.
import type { V1Container, V1LifecycleHandler } from "@kubernetes/client-node";
import { formatPod, messageOf } from "../format.ts";
import { runHttpHook, tcpSocketHookMessage } from "../net-hooks.ts";
import type { PodRef, RunHandle } from "../ports.ts";

export interface HookContext {
  ref: PodRef;
  /** Where httpGet hooks go when they name no host: the pod's IP. */
  podIP: string;
  /** Ends an httpGet hook that has no timeout (postStart): the pod's signal. */
  signal: AbortSignal;
  /** An httpGet hook fell back from HTTPS to HTTP (LifecycleHTTPFallback event). */
  fellBack(message: string): void;
}

/**
 * Runs an exec, httpGet or tcpSocket hook: undefined when it succeeded (or is of none of these
 * kinds), else the kubelet's message for its event. Without `timeoutMs` (postStart) an httpGet
 * hook ends with the pod; with it (preStop, the rest of the grace period) when that is over.
 */
export async function runHook(
  hook: V1LifecycleHandler,
  handle: RunHandle,
  spec: V1Container,
  timeoutMs: number | undefined,
  ctx: HookContext,
): Promise<string | undefined> {
  if (hook.exec?.command?.length) {
    return execHook(handle, spec.name, hook.exec.command, timeoutMs, ctx.ref);
  }
  if (hook.httpGet) {
    return runHttpHook(hook.httpGet, {
      container: spec,
      pod: ctx.ref,
      podIP: ctx.podIP,
      signal: timeoutMs === undefined ? ctx.signal : AbortSignal.timeout(timeoutMs),
      fellBack: ctx.fellBack,
    });
  }
  if (hook.tcpSocket) return tcpSocketHookMessage(hook.tcpSocket);
  return undefined;
}

/** Undefined when the hook's command succeeded, else the kubelet's message for its event. */
async function execHook(
  handle: RunHandle,
  container: string,
  command: string[],
  timeoutMs: number | undefined,
  ref: PodRef,
): Promise<string | undefined> {
  const line = command.join(" ");
  let error: string;
  let output = "";
  try {
    const result = await handle.exec(command, timeoutMs);
    if (result.exitCode === 0 && !result.timedOut) return undefined;
    output = result.output;
    error = result.timedOut
      ? `command '${line}' timed out`
      : `command '${line}' exited with ${result.exitCode}: ${output}`;
  } catch (cause) {
    error = messageOf(cause);
  }
  return `Exec lifecycle hook ([${line}]) for Container "${container}" in Pod "${formatPod(ref)}" failed - error: ${error}, message: ${JSON.stringify(output)}`;
}
