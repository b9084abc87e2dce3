// `/stats/summary`: the kubelet's statsapi Summary JSON (k8s.io/kubelet/pkg/apis/stats/v1alpha1),
// for tools that predate /metrics/resource. Only what wasmlet measures is filled; the rest is
// omitted, as the kubelet does for stats it lacks.
import type { CpuSample, FsSample, MemorySample, NodeUsage, PodUsage } from "./usage.ts";

interface CpuStats {
  time: string;
  usageCoreNanoSeconds: number;
  usageNanoCores?: number;
}

interface MemoryStats {
  time: string;
  workingSetBytes: number;
  usageBytes?: number;
  rssBytes?: number;
  availableBytes?: number;
}

function cpu(sample: CpuSample): CpuStats {
  return {
    time: sample.time.toISOString(),
    usageCoreNanoSeconds: Math.round(sample.usageCoreSeconds * 1e9),
    ...(sample.usageNanoCores === undefined ? {} : { usageNanoCores: sample.usageNanoCores }),
  };
}

function memory(sample: MemorySample): MemoryStats {
  const out: MemoryStats = {
    time: sample.time.toISOString(),
    workingSetBytes: sample.workingSetBytes,
  };
  if (sample.usageBytes !== undefined) out.usageBytes = sample.usageBytes;
  if (sample.rssBytes !== undefined) out.rssBytes = sample.rssBytes;
  if (sample.availableBytes !== undefined) out.availableBytes = sample.availableBytes;
  return out;
}

function fs(sample: FsSample) {
  return {
    time: sample.time.toISOString(),
    capacityBytes: sample.capacityBytes,
    availableBytes: sample.availableBytes,
    usedBytes: sample.usedBytes,
  };
}

function latest(times: Date[]): Date {
  return new Date(Math.max(...times.map((t) => t.getTime())));
}

function sum(samples: CpuSample[]): CpuSample {
  const time = latest(samples.map((s) => s.time));
  const nano = samples.every((s) => s.usageNanoCores !== undefined)
    ? samples.reduce((n, s) => n + s.usageNanoCores!, 0)
    : undefined;
  return {
    time,
    usageCoreSeconds: samples.reduce((n, s) => n + s.usageCoreSeconds, 0),
    ...(nano === undefined ? {} : { usageNanoCores: nano }),
  };
}

export function buildStatsSummary(node: NodeUsage, pods: PodUsage[]) {
  return {
    node: {
      nodeName: node.nodeName,
      startTime: node.startTime.toISOString(),
      cpu: cpu(node.cpu),
      memory: memory(node.memory),
      ...(node.fs ? { fs: fs(node.fs) } : {}),
    },
    pods: pods.map((pod) => ({
      podRef: { name: pod.name, namespace: pod.namespace, uid: pod.uid },
      startTime: pod.startTime.toISOString(),
      containers: pod.containers.map((c) => ({
        name: c.name,
        startTime: c.startTime.toISOString(),
        cpu: cpu(c.cpu),
        memory: memory(c.memory),
      })),
      ...(pod.containers.length
        ? {
            cpu: cpu(sum(pod.containers.map((c) => c.cpu))),
            memory: memory({
              time: latest(pod.containers.map((c) => c.memory.time)),
              workingSetBytes: pod.containers.reduce((n, c) => n + c.memory.workingSetBytes, 0),
            }),
          }
        : {}),
    })),
  };
}
