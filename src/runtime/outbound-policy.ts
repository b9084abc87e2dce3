// Where a guest may connect. The rule: a guest reaches other pods and the network beyond, never
// this host's own services. A connection is refused (EACCES) when it goes to
// - an unspecified address (0.0.0.0, ::), which means this host;
// - a loopback address (127.0.0.0/8, ::1), unless it is a pod address: inside the pod CIDR, or the
//   node's address in node mode (a loopback node address is what `wasmlet dev`-style setups use);
// - any address of this host on wasmlet's own ports (the kubelet API, healthz): pods' ports on
//   the node's address stay reachable, the kubelet's does not.
// The policy is plain data: it crosses to the worker threads with the run message.
import { isIP } from "node:net";
import { type Cidr, cidrContains, parseCidr } from "../network/cidr.ts";

export interface OutboundPolicy {
  /** Loopback blocks that hold pod addresses (CIDRs; a single address as /32). */
  podLoopback: string[];
  /** This host's addresses (every interface's). */
  hostAddresses: string[];
  /** wasmlet's own ports, refused on this host's addresses. */
  wasmletPorts: number[];
}

function isLoopback(ip: string): boolean {
  return isIP(ip) === 4 ? ip.startsWith("127.") : ip === "::1" || ip === "0:0:0:0:0:0:0:1";
}

function isUnspecified(ip: string): boolean {
  return ip === "0.0.0.0" || ip === "::" || /^[0:]+$/.test(ip);
}

/** Why the policy refuses a connection to ip:port, or undefined when it allows it. */
export function outboundRefusal(
  policy: OutboundPolicy,
  ip: string,
  port: number,
): string | undefined {
  const mapped = ip.startsWith("::ffff:") && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
  if (isUnspecified(mapped)) return `${ip} means this host, which guests cannot reach`;
  const local = isLoopback(mapped) || policy.hostAddresses.includes(mapped);
  if (local && policy.wasmletPorts.includes(port))
    return `${ip}:${port} is wasmlet's own port on this host`;
  if (isLoopback(mapped)) {
    const blocks: Cidr[] = policy.podLoopback.map((c) =>
      parseCidr(c.includes("/") ? c : `${c}/32`),
    );
    if (!blocks.some((block) => cidrContains(block, mapped)))
      return `${ip} is a loopback address of this host, not a pod's`;
  }
  return undefined;
}
