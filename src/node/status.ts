// Builds the Node's status from a host measurement and posts it with server-side apply (field
// manager `wasmlet`): wasmlet owns addresses, daemonEndpoints, nodeInfo, capacity, allocatable, its
// four conditions and declaredFeatures, and leaves every other field (extended resources, other
// controllers' conditions) alone.
import type { V1Node, V1NodeCondition } from "@kubernetes/client-node";
import type { Config } from "../config/config.ts";
import type { KubeClient } from "../kube/client.ts";
import { patchNodeStatus } from "../kube/patch.ts";
import type { HostIdentity, HostSnapshot } from "./host.ts";
import { nodeAddresses, nodeInfo } from "./node-info.ts";
import { allocatable, capacity } from "./resources.ts";

export type StatusConfig = Pick<
  Config,
  | "nodeName"
  | "nodeIP"
  | "maxPods"
  | "reserved"
  | "memoryPressureThresholdBytes"
  | "diskPressureThresholdPercent"
>;

export interface StatusInputs {
  config: StatusConfig;
  host: HostSnapshot;
  identity: HostIdentity;
  kubeletPort: number;
  conditions: V1NodeCondition[];
  declaredFeatures: string[];
}

/** The status wasmlet applies, in the API server's JSON form. */
export function buildStatus(inputs: StatusInputs): Record<string, unknown> {
  const { config, host, identity } = inputs;
  const status: Record<string, unknown> = {
    addresses: nodeAddresses(config.nodeIP, identity.hostname),
    daemonEndpoints: { kubeletEndpoint: { Port: inputs.kubeletPort } },
    nodeInfo: nodeInfo(identity),
    capacity: capacity(host, config),
    allocatable: allocatable(host, config),
    conditions: inputs.conditions.map((c) => ({
      ...c,
      lastHeartbeatTime: (c.lastHeartbeatTime as Date).toISOString(),
      lastTransitionTime: (c.lastTransitionTime as Date).toISOString(),
    })),
  };
  if (inputs.declaredFeatures.length > 0)
    status.declaredFeatures = [...inputs.declaredFeatures].sort();
  return status;
}

/** The status without heartbeat times: when this changes, the status must be posted now. */
export function statusFingerprint(status: Record<string, unknown>): string {
  return JSON.stringify(status, (key, value) => (key === "lastHeartbeatTime" ? undefined : value));
}

export async function applyStatus(
  kube: KubeClient,
  nodeName: string,
  status: Record<string, unknown>,
): Promise<V1Node> {
  return patchNodeStatus(kube, nodeName, "apply", {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: nodeName },
    status,
  });
}
