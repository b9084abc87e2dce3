// `/metrics/resource` in the exact shape metrics-server reads (the kubelet's resource metrics
// endpoint): Prometheus text where every container and node sample carries its own millisecond
// timestamp — metrics-server drops samples without one, which is why prom-client (no per-sample
// timestamps) does not write this endpoint.
import type { NodeUsage, PodUsage } from "./usage.ts";

interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge";
  samples: string[];
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function labels(pairs: Record<string, string>): string {
  const body = Object.entries(pairs)
    .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
    .join(",");
  return body ? `{${body}}` : "";
}

function number(value: number): string {
  return Number.isFinite(value) ? String(value) : "NaN";
}

function sample(name: string, pairs: Record<string, string>, value: number, time?: Date): string {
  return `${name}${labels(pairs)} ${number(value)}${time ? ` ${time.getTime()}` : ""}`;
}

function family(name: string, type: Family["type"], help: string, samples: string[] = []): Family {
  return { name, type, help: `[STABLE] ${help}`, samples };
}

export function renderResourceMetrics(
  node: NodeUsage,
  pods: PodUsage[],
  scrapeError = false,
): string {
  const containerCpu = family(
    "container_cpu_usage_seconds_total",
    "counter",
    "Cumulative cpu time consumed by the container in core-seconds",
  );
  const containerMemory = family(
    "container_memory_working_set_bytes",
    "gauge",
    "Current working set of the container in bytes",
  );
  const containerStart = family(
    "container_start_time_seconds",
    "gauge",
    "Start time of the container since unix epoch in seconds",
  );
  const podCpu = family(
    "pod_cpu_usage_seconds_total",
    "counter",
    "Cumulative cpu time consumed by the pod in core-seconds",
  );
  const podMemory = family(
    "pod_memory_working_set_bytes",
    "gauge",
    "Current working set of the pod in bytes",
  );
  for (const pod of pods) {
    if (pod.containers.length === 0) continue;
    let cpu = 0;
    let memory = 0;
    let latest = pod.containers[0]!.cpu.time;
    for (const c of pod.containers) {
      const l = { container: c.name, namespace: pod.namespace, pod: pod.name };
      containerCpu.samples.push(sample(containerCpu.name, l, c.cpu.usageCoreSeconds, c.cpu.time));
      containerMemory.samples.push(
        sample(containerMemory.name, l, c.memory.workingSetBytes, c.memory.time),
      );
      containerStart.samples.push(
        sample(containerStart.name, l, c.startTime.getTime() / 1000, c.cpu.time),
      );
      cpu += c.cpu.usageCoreSeconds;
      memory += c.memory.workingSetBytes;
      if (c.cpu.time > latest) latest = c.cpu.time;
    }
    const podLabels = { namespace: pod.namespace, pod: pod.name };
    podCpu.samples.push(sample(podCpu.name, podLabels, cpu, latest));
    podMemory.samples.push(sample(podMemory.name, podLabels, memory, latest));
  }
  const families = [
    containerCpu,
    containerMemory,
    containerStart,
    family(
      "node_cpu_usage_seconds_total",
      "counter",
      "Cumulative cpu time consumed by the node in core-seconds",
      [sample("node_cpu_usage_seconds_total", {}, node.cpu.usageCoreSeconds, node.cpu.time)],
    ),
    family("node_memory_working_set_bytes", "gauge", "Current working set of the node in bytes", [
      sample("node_memory_working_set_bytes", {}, node.memory.workingSetBytes, node.memory.time),
    ]),
    podCpu,
    podMemory,
    family(
      "resource_scrape_error",
      "gauge",
      "1 if there was an error while getting container metrics, 0 otherwise",
      [sample("resource_scrape_error", {}, scrapeError ? 1 : 0)],
    ),
  ];
  const lines: string[] = [];
  for (const f of families) {
    if (f.samples.length === 0) continue;
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...f.samples);
  }
  return `${lines.join("\n")}\n`;
}
