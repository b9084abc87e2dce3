// wasmlet's own metrics for `/metrics` (prom-client). Components do not import this: they report
// through callbacks and app/ records here, so runtime/, images/ and pods/ stay free of it.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export class WasmletMetrics {
  readonly registry = new Registry();
  readonly podsByPhase = new Gauge({
    name: "wasmlet_pods",
    help: "Pods on this node by phase",
    labelNames: ["phase"] as const,
    registers: [this.registry],
  });
  readonly podStartSeconds = new Histogram({
    name: "wasmlet_pod_start_duration_seconds",
    help: "Time from a pod being seen on this node to all its containers running",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly imagePulls = new Counter({
    name: "wasmlet_image_pulls_total",
    help: "Image pulls by result (pulled, cached, failed)",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly imagePullBytes = new Counter({
    name: "wasmlet_image_pull_bytes_total",
    help: "Bytes downloaded from registries",
    registers: [this.registry],
  });
  readonly workers = new Gauge({
    name: "wasmlet_workers",
    help: "Shared worker threads by state (busy: hosting at least one guest)",
    labelNames: ["state"] as const,
    registers: [this.registry],
  });
  readonly containerCpu = new Gauge({
    name: "wasmlet_container_cpu_usage_seconds",
    help: "CPU time each running container has used (its guest's running time on the shared workers)",
    labelNames: ["namespace", "pod", "container"] as const,
    registers: [this.registry],
  });
  readonly containerRestarts = new Counter({
    name: "wasmlet_container_restarts_total",
    help: "Container restarts performed by this node",
    registers: [this.registry],
  });
  readonly oomKills = new Counter({
    name: "wasmlet_container_oom_kills_total",
    help: "Containers that ended OOMKilled at their memory limit",
    registers: [this.registry],
  });
  readonly apiErrors = new Counter({
    name: "wasmlet_kube_api_errors_total",
    help: "Failed calls to the Kubernetes API by client operation and HTTP status (or network)",
    labelNames: ["operation", "code"] as const,
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
