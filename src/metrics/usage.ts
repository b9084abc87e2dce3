// Plain resource-usage samples, the one input of /metrics/resource and /stats/summary. Whoever
// measures (the runtime for containers, the host for the node) fills these; nothing here knows
// Kubernetes objects.

export interface CpuSample {
  /** When the sample was taken. */
  time: Date;
  /** Cumulative CPU time in core-seconds. */
  usageCoreSeconds: number;
  /** Average usage over the last sampling window, when a previous sample exists. */
  usageNanoCores?: number;
}

export interface MemorySample {
  time: Date;
  /** Bytes the workload cannot give back (a wasm guest: its linear memory plus host overhead). */
  workingSetBytes: number;
  usageBytes?: number;
  rssBytes?: number;
  availableBytes?: number;
}

export interface ContainerUsage {
  name: string;
  startTime: Date;
  cpu: CpuSample;
  memory: MemorySample;
}

export interface PodUsage {
  namespace: string;
  name: string;
  uid: string;
  startTime: Date;
  containers: ContainerUsage[];
}

export interface FsSample {
  time: Date;
  capacityBytes: number;
  availableBytes: number;
  usedBytes: number;
}

export interface NodeUsage {
  nodeName: string;
  startTime: Date;
  cpu: CpuSample;
  memory: MemorySample;
  fs?: FsSample;
}

/** CPU rate between two cumulative samples, in nanocores (1e9 = one full core). */
export function nanoCoresBetween(previous: CpuSample, current: CpuSample): number | undefined {
  const seconds = (current.time.getTime() - previous.time.getTime()) / 1000;
  if (seconds <= 0) return undefined;
  return Math.max(
    0,
    Math.round(((current.usageCoreSeconds - previous.usageCoreSeconds) / seconds) * 1e9),
  );
}

/**
 * Gives cumulative CPU samples their rate (`usageNanoCores`, which the kubelet's summary always
 * carries) from the previous sample of the same workload (a key: one container instance, or the
 * node). The first sample of a key has no rate. A window shorter than `minWindowMs`
 * would make a noisy rate: such a sample gets the rate computed before, and does not become the
 * new base.
 */
export class CpuRates {
  readonly #minWindowMs: number;
  readonly #last = new Map<string, { sample: CpuSample; nanoCores: number | undefined }>();

  constructor(minWindowMs = 1000) {
    this.#minWindowMs = minWindowMs;
  }

  /** `sample` with `usageNanoCores` when an earlier sample of `key` allows one. */
  withRate(key: string, sample: CpuSample): CpuSample {
    const last = this.#last.get(key);
    let nanoCores = last?.nanoCores;
    if (!last) {
      this.#last.set(key, { sample, nanoCores });
    } else if (sample.time.getTime() - last.sample.time.getTime() >= this.#minWindowMs) {
      nanoCores = nanoCoresBetween(last.sample, sample);
      this.#last.set(key, { sample, nanoCores });
    }
    return nanoCores === undefined ? sample : { ...sample, usageNanoCores: nanoCores };
  }

  /** Forgets every workload not in `keys` (containers that have exited). */
  retain(keys: ReadonlySet<string>): void {
    for (const key of this.#last.keys()) if (!keys.has(key)) this.#last.delete(key);
  }
}
