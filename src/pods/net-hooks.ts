// httpGet and tcpSocket lifecycle hooks as the kubelet runs them (pkg/kubelet/lifecycle/handlers.go).
// An httpGet hook is one GET to the action's host or else the pod's IP; any response will do — its
// status does not matter, only that the server answered (a redirect to another host included). An
// HTTPS hook that meets a plain HTTP server is sent again over HTTP, with a LifecycleHTTPFallback
// event when that works. tcpSocket is deprecated and not supported as a hook by Kubernetes: such a
// hook fails whenever it runs ("invalid handler"), as on every kubelet.
import type { V1Container, V1HTTPGetAction, V1TCPSocketAction } from "@kubernetes/client-node";
import { formatPod, messageOf } from "./format.ts";
import { type HttpGetOptions, type HttpGetRequest, httpGet, httpGetRequest } from "./http-get.ts";
import type { PodRef } from "./ports.ts";

export interface HttpHookContext {
  container: V1Container;
  pod: PodRef;
  podIP: string;
  /** Ends the request: the pod stops, or the preStop hook's grace period is over. */
  signal?: AbortSignal;
  /** Records the LifecycleHTTPFallback event with this message. */
  fellBack(message: string): void;
}

/** Undefined when the hook succeeded, else the kubelet's message for its Failed…Hook event. */
export async function runHttpHook(
  action: V1HTTPGetAction,
  context: HttpHookContext,
): Promise<string | undefined> {
  const error = await httpHookError(action, context);
  if (error === undefined) return undefined;
  const container = JSON.stringify(context.container.name);
  const pod = JSON.stringify(formatPod(context.pod));
  return `HTTP lifecycle hook (${action.path ?? ""}) for Container ${container} in Pod ${pod} failed - error: ${error}`;
}

/** The kubelet's message for a tcpSocket hook: Go's rendering of the handler it cannot run. */
export function tcpSocketHookMessage(action: V1TCPSocketAction): string {
  const port = typeof action.port === "number" ? `{0 ${action.port} }` : `{1 0 ${action.port}}`;
  return `Cannot run handler: invalid handler: &LifecycleHandler{Exec:nil,HTTPGet:nil,TCPSocket:&TCPSocketAction{Port:${port},Host:${action.host ?? ""},},Sleep:nil,}`;
}

async function httpHookError(
  action: V1HTTPGetAction,
  context: HttpHookContext,
): Promise<string | undefined> {
  let request: HttpGetRequest;
  try {
    request = httpGetRequest(action, context.container, context.podIP, "lifecycle");
  } catch (error) {
    return messageOf(error);
  }
  // The kubelet's hook client has no timeout; it accepts compressed answers like Go's default.
  const options: HttpGetOptions = {
    readBody: false,
    acceptGzip: true,
    ...(context.signal ? { signal: context.signal } : {}),
  };
  const outcome = await httpGet(request, options);
  if (outcome.kind === "response") return undefined;
  if (!outcome.notTls || request.url.protocol !== "https:") return outcome.message;
  const plain = overHttp(request);
  const retry = await httpGet(plain, options);
  if (retry.kind === "error") return outcome.message;
  context.fellBack(
    `request to HTTPS lifecycle hook ${plain.authority} got HTTP response, retry with HTTP succeeded`,
  );
  return undefined;
}

/** The same request over plain HTTP, without its Authorization header. */
function overHttp(request: HttpGetRequest): HttpGetRequest {
  const origin = `http://${request.authority}`;
  const rest = `${request.url.pathname}${request.url.search}${request.url.hash}`;
  const headers = new Map(request.headers);
  headers.delete("Authorization");
  const display = request.display.replace(/^https:/, "http:");
  return { url: new URL(rest, origin), authority: request.authority, display, headers };
}
