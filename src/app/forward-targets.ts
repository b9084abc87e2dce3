// Where `kubectl port-forward` connects: the pod's own address (the node's IP in node mode), while
// the pod is in a state in which its containers may run.
import type { Socket } from "node:net";
import type { V1Pod } from "@kubernetes/client-node";
import type { StateName } from "../pods/states/state.ts";
import type { PortForwardTarget } from "../server/port-forward.ts";

export interface ForwardTargetDeps {
  /** The pod as last seen from the API (the watch cache). */
  pod(namespace: string, name: string): V1Pod | undefined;
  /** The address the pod's listeners are bound to, when the node gave it one. */
  podIP(uid: string): string | undefined;
  /** The pod's lifecycle state, undefined when this node does not run it. */
  state(uid: string): StateName | undefined;
  /** A TCP connection to `host:port`. */
  dial(host: string, port: number): Promise<Socket>;
}

/** Lifecycle states in which a pod's containers may run: its ports can be forwarded to. */
const FORWARDABLE = new Set<StateName | undefined>(["Initializing", "Running", "Terminating"]);

export function resolveForwardTarget(
  deps: ForwardTargetDeps,
  namespace: string,
  name: string,
  podUid: string | undefined,
): PortForwardTarget {
  const pod = deps.pod(namespace, name);
  const uid = pod?.metadata?.uid ?? "";
  if (!pod || (podUid !== undefined && uid !== podUid)) return { kind: "pod-not-found" };
  const host = deps.podIP(uid) ?? pod.status?.podIP;
  if (!host || !FORWARDABLE.has(deps.state(uid))) return { kind: "not-running" };
  return { kind: "pod", uid, dial: (port) => deps.dial(host, port) };
}
