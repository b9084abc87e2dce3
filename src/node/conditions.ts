// The Node's conditions, from real measurements: Ready (False only while wasmlet shuts down),
// MemoryPressure, DiskPressure and PIDPressure (against configured thresholds). Reasons are the
// kubelet's, so tools that read them keep working; messages say what wasmlet saw, without live
// numbers, so a condition changes only when its state does. A tracker keeps lastTransitionTime.
import type { V1NodeCondition } from "@kubernetes/client-node";
import type { Config } from "../config/config.ts";
import { bytesQuantity } from "../quantity/quantity.ts";
import { ConditionReason } from "./constants.ts";
import type { HostSnapshot } from "./host.ts";

export type ConditionType = "Ready" | "MemoryPressure" | "DiskPressure" | "PIDPressure";

export interface ConditionState {
  type: ConditionType;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
}

export type Thresholds = Pick<
  Config,
  "memoryPressureThresholdBytes" | "diskPressureThresholdPercent" | "pidPressureThresholdPercent"
>;

function pretty(bytes: number): string {
  const units = ["Ki", "Mi", "Gi", "Ti"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return Number.isInteger(value) ? `${value}${units[unit]}` : bytesQuantity(bytes);
}

/**
 * The four conditions for one measurement. `notReady` lists why wasmlet is not ready (empty when
 * it is), e.g. that it is shutting down.
 */
export function evaluateConditions(
  host: HostSnapshot,
  thresholds: Thresholds,
  notReady: readonly string[],
): ConditionState[] {
  const memoryLow = host.memoryAvailableBytes < thresholds.memoryPressureThresholdBytes;
  const diskFreePercent =
    host.diskTotalBytes > 0 ? (host.diskAvailableBytes / host.diskTotalBytes) * 100 : 100;
  const diskLow = diskFreePercent < thresholds.diskPressureThresholdPercent;
  const pidFreePercent =
    host.pidLimit > 0 ? ((host.pidLimit - host.pidsInUse) / host.pidLimit) * 100 : 100;
  const pidLow = pidFreePercent < thresholds.pidPressureThresholdPercent;
  return [
    notReady.length === 0
      ? {
          type: "Ready",
          status: "True",
          reason: ConditionReason.ready,
          message: "wasmlet is posting ready status",
        }
      : {
          type: "Ready",
          status: "False",
          reason: ConditionReason.notReady,
          message: notReady.join("; "),
        },
    memoryLow
      ? {
          type: "MemoryPressure",
          status: "True",
          reason: ConditionReason.insufficientMemory,
          message: `wasmlet has insufficient memory available: less than ${pretty(thresholds.memoryPressureThresholdBytes)} free`,
        }
      : {
          type: "MemoryPressure",
          status: "False",
          reason: ConditionReason.sufficientMemory,
          message: "wasmlet has sufficient memory available",
        },
    diskLow
      ? {
          type: "DiskPressure",
          status: "True",
          reason: ConditionReason.diskPressure,
          message: `wasmlet has disk pressure: less than ${thresholds.diskPressureThresholdPercent}% of the data directory's filesystem is free`,
        }
      : {
          type: "DiskPressure",
          status: "False",
          reason: ConditionReason.noDiskPressure,
          message: "wasmlet has no disk pressure",
        },
    pidLow
      ? {
          type: "PIDPressure",
          status: "True",
          reason: ConditionReason.insufficientPID,
          message: `wasmlet has insufficient PIDs available: less than ${thresholds.pidPressureThresholdPercent}% free`,
        }
      : {
          type: "PIDPressure",
          status: "False",
          reason: ConditionReason.sufficientPID,
          message: "wasmlet has sufficient PID available",
        },
  ];
}

/** Remembers when each condition last changed status, across posts. */
export class ConditionTracker {
  readonly #since = new Map<ConditionType, { status: string; at: Date }>();

  /**
   * Seeds transition times from the Node as the API server has it, so a restart does not claim
   * every condition just changed.
   */
  seed(existing: readonly V1NodeCondition[] | undefined): void {
    for (const condition of existing ?? []) {
      if (!condition.lastTransitionTime) continue;
      this.#since.set(condition.type as ConditionType, {
        status: condition.status,
        at: new Date(condition.lastTransitionTime),
      });
    }
  }

  /**
   * The Node conditions for these states with heartbeat `now`, and which ones changed status.
   * Nothing is remembered until `commit()` (call it once the status is posted).
   */
  apply(
    states: readonly ConditionState[],
    now: Date,
  ): { conditions: V1NodeCondition[]; changed: ConditionState[]; commit: () => void } {
    const changed: ConditionState[] = [];
    const conditions = states.map((state) => {
      const previous = this.#since.get(state.type);
      const transition = !previous || previous.status !== state.status;
      if (transition) changed.push(state);
      return {
        type: state.type,
        status: state.status,
        reason: state.reason,
        message: state.message,
        lastHeartbeatTime: now,
        lastTransitionTime: transition ? now : (previous as { at: Date }).at,
      };
    });
    const commit = () => {
      for (const state of changed) this.#since.set(state.type, { status: state.status, at: now });
    };
    return { conditions, changed, commit };
  }
}
