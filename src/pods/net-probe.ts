// httpGet, tcpSocket and grpc probes of a container, carried out as the kubelet's prober does
// (pkg/kubelet/prober/prober.go runProbe): the target is the action's host or else the pod's IP
// (grpc: always the pod's IP), the port a number or one of the container's named ports. An httpGet
// probe passes on a status from 200 to 399; a 3xx it did not follow (another host) passes with a
// warning.
import type { V1Container, V1HTTPGetAction, V1Probe } from "@kubernetes/client-node";
import { messageOf } from "./format.ts";
import { grpcProbe } from "./grpc-probe.ts";
import { httpGet, httpGetRequest } from "./http-get.ts";
import { resolveContainerPort } from "./probe-target.ts";
import { tcpProbe } from "./tcp-probe.ts";

/**
 * pkg/probe's (result, output, error). An error means the probe could not be carried out
 * properly: the kubelet reports it as "errored" and throws the result away.
 */
export type ProbeOutcome =
  | { result: "success" | "warning" | "failure"; output: string }
  | { result: "failure" | "unknown"; error: string };

export async function runNetworkProbe(
  probe: V1Probe,
  container: V1Container,
  podIP: string,
  timeoutMs: number,
): Promise<ProbeOutcome> {
  try {
    if (probe.httpGet) return await httpGetProbe(probe.httpGet, container, podIP, timeoutMs);
    if (probe.tcpSocket) {
      const port = resolveContainerPort(probe.tcpSocket.port, container);
      return await tcpProbe(probe.tcpSocket.host || podIP, port, timeoutMs);
    }
    if (probe.grpc) {
      return await grpcProbe(podIP, probe.grpc.port, probe.grpc.service ?? "", timeoutMs);
    }
    return { result: "unknown", error: `missing probe handler for container ${container.name}` };
  } catch (error) {
    // No request could be made (a port name the container does not have, a bad URL).
    return { result: "unknown", error: messageOf(error) };
  }
}

/** pkg/probe/http DoHTTPProbe. */
async function httpGetProbe(
  action: V1HTTPGetAction,
  container: V1Container,
  podIP: string,
  timeoutMs: number,
): Promise<ProbeOutcome> {
  const outcome = await httpGet(httpGetRequest(action, container, podIP, "probe"), {
    timeoutMs,
    readBody: true,
  });
  if (outcome.kind === "error") return { result: "failure", output: outcome.message };
  if (outcome.bodyError !== undefined) return { result: "failure", error: outcome.bodyError };
  const { status, body } = outcome;
  if (status >= 200 && status < 300) return { result: "success", output: body };
  if (status >= 300 && status < 400) {
    return { result: "warning", output: `Probe terminated redirects, Response body: ${body}` };
  }
  // The kubelet leaves the body out of this message: it may hold secrets (issue 99425).
  return { result: "failure", output: `HTTP probe failed with statuscode: ${status}` };
}
