// Builds the Node's status from a host measurement and posts it with server-side apply (field
// manager `wasmlet`): wasmlet owns addresses, daemonEndpoints, nodeInfo, capacity, allocatable, its
// four conditions, images and declaredFeatures, and leaves every other field (extended resources, other
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
  /** Images present on the node (the scheduler's ImageLocality scores with them). */
  images: readonly NodeImage[];
}

/** One image present on the node: `repository@digest` and the references that name it. */
export interface NodeImage {
  id: string;
  reference: string;
  sizeBytes: number;
}

/** Like the kubelet's --node-status-max-images default, and its names-per-image cap. */
const MAX_IMAGES = 50;
const MAX_NAMES_PER_IMAGE = 5;

/** status.images as the kubelet writes it: largest first, names = digest form then references. */
export function nodeImages(images: readonly NodeImage[]): { names: string[]; sizeBytes: number }[] {
  const byId = new Map<string, { names: string[]; sizeBytes: number }>();
  for (const image of images) {
    const entry = byId.get(image.id) ?? { names: [image.id], sizeBytes: image.sizeBytes };
    if (!entry.names.includes(image.reference)) entry.names.push(image.reference);
    byId.set(image.id, entry);
  }
  return [...byId.values()]
    .map((entry) => ({
      names: [entry.names[0]!, ...entry.names.slice(1).sort()].slice(0, MAX_NAMES_PER_IMAGE),
      sizeBytes: entry.sizeBytes,
    }))
    .sort((a, b) => b.sizeBytes - a.sizeBytes || a.names[0]!.localeCompare(b.names[0]!))
    .slice(0, MAX_IMAGES);
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
  if (inputs.images.length > 0) status.images = nodeImages(inputs.images);
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
