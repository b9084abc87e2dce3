import type { Backoff, BackoffOptions } from "../kube/backoff.ts";
import type { PodNetwork } from "../network/pod-network.ts";
import type { VolumeManager } from "../volumes/volume-manager.ts";
import type { AdmissionOptions } from "./admission.ts";
import type { InstanceRegistry } from "./instance-registry.ts";
import type { ImagePort, KubePort, LogPort, RuntimePort } from "./ports.ts";

/** The kubelet's restart and pull back-offs: no jitter, a window that resets after a long quiet. */
export type RestartBackoffOptions = Required<
  Pick<BackoffOptions, "initialMs" | "maxMs" | "resetAfterMs">
>;

export interface Timing {
  /** CrashLoopBackOff: 10 s doubling to 300 s, reset after 10 min (kubelet defaults). */
  crashLoop: RestartBackoffOptions;
  /** ImagePullBackOff: same defaults as the kubelet. */
  imagePull: RestartBackoffOptions;
  /** Retry period for CreateContainerConfigError, FailedMount and admission lookups (kubelet: ~10 s). */
  retryMs: number;
  /** How often mounted ConfigMap/Secret/downwardAPI/projected volumes are refreshed (kubelet: ~60 s). */
  volumeRefreshMs: number;
  /** How often emptyDir usage is checked against sizeLimit (kubelet's eviction manager: 10 s). */
  emptyDirCheckMs: number;
  /** How long a failed pull shows ErrImagePull before ImagePullBackOff. */
  errImagePullShowMs: number;
  /** How long a pod's first status patch waits for the pod to leave Pending (see StatusPatcher). */
  firstStatusHoldMs: number;
  /** Milliseconds per second of a probe's periodSeconds, timeoutSeconds, … (1000; tests shrink it). */
  probeSecondMs: number;
}

export const DEFAULT_TIMING: Timing = {
  crashLoop: { initialMs: 10_000, maxMs: 300_000, resetAfterMs: 600_000 },
  imagePull: { initialMs: 10_000, maxMs: 300_000, resetAfterMs: 600_000 },
  retryMs: 10_000,
  volumeRefreshMs: 60_000,
  emptyDirCheckMs: 10_000,
  errImagePullShowMs: 10_000,
  firstStatusHoldMs: 100,
  probeSecondMs: 1000,
};

export interface NodeFacts {
  nodeName: string;
  /** The node's InternalIPs: hostIP(s) and podIP(s) of every pod. */
  nodeIPs: string[];
  /** node.status.allocatable, the default limits for resourceFieldRef. */
  allocatable: () => Readonly<Record<string, string>>;
  /** Root of per-pod log directories (like /var/log/pods). */
  podLogsDir: string;
}

export interface LifecycleDeps {
  node: NodeFacts;
  timing: Timing;
  images: ImagePort;
  runtime: RuntimePort;
  kube: KubePort;
  logs?: LogPort;
  volumes: VolumeManager;
  /** Pod addresses, port claims and the containers' listeners. */
  network: PodNetwork;
  admission: AdmissionOptions;
  crashBackoff: Backoff;
  imageBackoff: Backoff;
  instances: InstanceRegistry;
  /** The one clock of pods/: timestamps, back-offs, grace periods (the back-offs read it too). */
  now: () => Date;
}
