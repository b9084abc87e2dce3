// Capacity and allocatable as the Node reports them. Capacity is what the host has; allocatable is
// capacity minus the configured reservation and minus the pressure thresholds (the kubelet does the
// same with its hard eviction thresholds), so the scheduler never fills the node into pressure.
import type { Config } from "../config/config.ts";
import { bytesQuantity, cpuQuantity } from "../quantity/quantity.ts";
import type { HostSnapshot } from "./host.ts";

export type ResourceList = Record<"cpu" | "memory" | "ephemeral-storage" | "pods", string>;

export function capacity(host: HostSnapshot, config: Pick<Config, "maxPods">): ResourceList {
  return {
    cpu: cpuQuantity(host.cpuMillis),
    memory: bytesQuantity(host.memoryTotalBytes),
    "ephemeral-storage": bytesQuantity(host.diskTotalBytes),
    pods: String(config.maxPods),
  };
}

export function allocatable(
  host: HostSnapshot,
  config: Pick<
    Config,
    "maxPods" | "reserved" | "memoryPressureThresholdBytes" | "diskPressureThresholdPercent"
  >,
): ResourceList {
  const diskThreshold = (host.diskTotalBytes * config.diskPressureThresholdPercent) / 100;
  return {
    cpu: cpuQuantity(host.cpuMillis - config.reserved.cpuMillis),
    memory: bytesQuantity(
      host.memoryTotalBytes - config.reserved.memoryBytes - config.memoryPressureThresholdBytes,
    ),
    "ephemeral-storage": bytesQuantity(
      host.diskTotalBytes - config.reserved.ephemeralStorageBytes - diskThreshold,
    ),
    pods: String(config.maxPods),
  };
}
