// The gauges of wasmlet's /metrics, set from what is there at the moment of a scrape: pods by
// phase, idle and busy workers, and each running container's CPU time.
import type { V1Pod } from "@kubernetes/client-node";
import type { WasmletMetrics } from "../metrics/wasmlet-metrics.ts";
import type { RuntimeStats } from "../runtime/runtime.ts";
import type { RunningContainer } from "./runtime-port.ts";

export interface GaugeSources {
  /** The pods bound to this node, as the API shows them. */
  pods(): readonly V1Pod[];
  runtimeStats(): RuntimeStats;
  running(): RunningContainer[];
}

export async function refreshGauges(metrics: WasmletMetrics, sources: GaugeSources): Promise<void> {
  const phases = new Map<string, number>();
  for (const pod of sources.pods()) {
    const phase = pod.status?.phase ?? "Pending";
    phases.set(phase, (phases.get(phase) ?? 0) + 1);
  }
  metrics.podsByPhase.reset();
  for (const [phase, count] of phases) metrics.podsByPhase.set({ phase }, count);
  const stats = sources.runtimeStats();
  metrics.workers.set({ state: "idle" }, stats.workers - stats.busyWorkers);
  metrics.workers.set({ state: "busy" }, stats.busyWorkers);
  metrics.containerCpu.reset();
  for (const { labels, container } of sources.running()) {
    const usage = await container.cpuUsage().catch(() => undefined);
    if (!usage) continue;
    metrics.containerCpu.set(
      {
        namespace: labels.namespace ?? "",
        pod: labels.pod ?? "",
        container: labels.container ?? "",
      },
      (usage.user + usage.system) / 1e6,
    );
  }
}
