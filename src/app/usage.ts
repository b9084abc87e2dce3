// What /stats/summary and /metrics/resource report: this process (with its worker threads) as the
// node, and every running container grouped by pod, measured now. CPU rates come from the previous
// measurement of the same container (or the node).
import { CpuRates, type NodeUsage, type PodUsage } from "../metrics/usage.ts";
import type { RunningContainer } from "./runtime-port.ts";

/** The node's own key among the CPU rates (container ids never start with a space). */
const NODE_CPU_KEY = " node";

export interface UsageSources {
  nodeName: string;
  /** Containers that run now, with their pod labels. */
  running(): RunningContainer[];
}

export class UsageMeter {
  readonly #sources: UsageSources;
  readonly #cpuRates = new CpuRates();

  constructor(sources: UsageSources) {
    this.#sources = sources;
  }

  async measure(): Promise<{ node: NodeUsage; pods: PodUsage[] }> {
    const time = new Date();
    const cpu = process.cpuUsage();
    const pods = new Map<string, PodUsage>();
    const measured = new Set<string>([NODE_CPU_KEY]);
    for (const { labels, container } of this.#sources.running()) {
      const startTime = await Promise.race([container.started, Promise.resolve(undefined)]).catch(
        () => undefined,
      );
      if (!startTime || !labels.uid) continue;
      const usage = await container.cpuUsage().catch(() => undefined);
      if (!usage) continue;
      let pod = pods.get(labels.uid);
      if (!pod) {
        pod = {
          namespace: labels.namespace ?? "",
          name: labels.pod ?? "",
          uid: labels.uid,
          startTime,
          containers: [],
        };
        pods.set(labels.uid, pod);
      }
      if (startTime < pod.startTime) pod.startTime = startTime;
      measured.add(container.id);
      pod.containers.push({
        name: labels.container ?? "",
        startTime,
        cpu: this.#cpuRates.withRate(container.id, {
          time,
          usageCoreSeconds: (usage.user + usage.system) / 1e6,
        }),
        memory: { time, workingSetBytes: container.memoryBytes() },
      });
    }
    this.#cpuRates.retain(measured);
    return {
      node: {
        nodeName: this.#sources.nodeName,
        startTime: new Date(Date.now() - process.uptime() * 1000),
        cpu: this.#cpuRates.withRate(NODE_CPU_KEY, {
          time,
          usageCoreSeconds: (cpu.user + cpu.system) / 1e6,
        }),
        memory: { time, workingSetBytes: process.memoryUsage.rss() },
      },
      pods: [...pods.values()],
    };
  }
}
