// Where a network probe or hook goes, worked out as the kubelet does (pkg/probe/util.go,
// pkg/probe/http/request.go): a port given as a number or as the name of one of the container's
// ports, host and port joined like Go's net.JoinHostPort, and the User-Agent it sends.
import type { IntOrString, V1Container } from "@kubernetes/client-node";
import { KUBERNETES_VERSION } from "../node/constants.ts";
import { podError } from "./errors.ts";

/** The port a probe or hook names; throws the kubelet's error when there is no such port. */
export function resolveContainerPort(
  port: IntOrString | undefined,
  container: V1Container,
): number {
  let number: number;
  if (typeof port === "number") {
    number = port;
  } else if (typeof port === "string") {
    const named = container.ports?.find((candidate) => candidate.name === port);
    if (!named) throw podError("WASMLET_ERR_PROBE_PORT", `port ${JSON.stringify(port)} not found`);
    number = named.containerPort;
  } else {
    throw podError("WASMLET_ERR_PROBE_PORT", `intOrString had no kind: ${JSON.stringify(port)}`);
  }
  if (Number.isInteger(number) && number > 0 && number < 65536) return number;
  throw podError("WASMLET_ERR_PROBE_PORT", `invalid port number: ${number}`);
}

/** Go's net.JoinHostPort: IPv6 addresses go in brackets. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** `kube-probe/1.37` or `kube-lifecycle/1.37`: the kubelet's User-Agent for its own requests. */
export function kubeUserAgent(purpose: "probe" | "lifecycle"): string {
  const [major, minor] = KUBERNETES_VERSION.split(".");
  return `kube-${purpose}/${major}.${minor}`;
}
