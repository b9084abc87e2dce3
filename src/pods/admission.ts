// Admission: decides, before anything runs, whether this node can run a pod at all. A pod it
// cannot run ends `Failed` with a precise reason and "Pod was rejected: …" message (the kubelet's
// rejectPod), instead of hanging in Pending.
//
// Under node pressure the kubelet's eviction manager admits what it would not have to evict next:
// under MemoryPressure alone every pod but a BestEffort one that does not tolerate the
// memory-pressure taint, under DiskPressure or PIDPressure none; critical pods always.
//
// Probes and lifecycle hooks: exec, httpGet, tcpSocket and grpc probes run, and exec, httpGet and
// sleep hooks. A tcpSocket hook is admitted with a Warning event (HookNotSupported): Kubernetes
// keeps the field for compatibility only, and such a hook fails whenever it runs, as on any
// kubelet. A probe or hook with no action wasmlet knows (a newer API's) gets a warning too
// (ProbeNotSupported / HookNotSupported) and is treated as absent: readiness = running, startup =
// started once running, liveness never restarts.
import type { V1Container, V1Pod, V1Probe, V1Volume } from "@kubernetes/client-node";
import { type HostPathPolicy, hostPathAllowed } from "../volumes/host-path.ts";
import { volumeKind, volumeSourceName } from "../volumes/volume-manager.ts";
import { EventReason, PodReason, RUNTIME_HANDLER } from "./reasons.ts";
import { qosClass } from "./status.ts";

export interface AdmissionWarning {
  reason: string;
  message: string;
  /** `spec.containers{name}` when the warning is about a container. */
  fieldPath?: string;
}

export type AdmissionResult =
  | { admitted: true; warnings: AdmissionWarning[] }
  | { admitted: false; reason: string; message: string };

export interface AdmissionOptions {
  hostPath: HostPathPolicy;
  /** The RuntimeClass's handler, undefined when it does not exist. Throws on transient failures (admission is retried). */
  runtimeClassHandler: (name: string) => Promise<string | undefined>;
  /** The node's pressure conditions that are True now (MemoryPressure, DiskPressure, PIDPressure). */
  nodePressure?: () => readonly string[];
}

/** system-cluster-critical's priority: pods at or above it are critical to the node. */
const SYSTEM_CRITICAL_PRIORITY = 2_000_000_000;

/** The kubelet's eviction admission: the rejection under node pressure, or undefined. */
export function pressureRejection(
  pod: V1Pod,
  pressure: readonly string[],
): AdmissionResult | undefined {
  if (pressure.length === 0) return undefined;
  if ((pod.spec?.priority ?? 0) >= SYSTEM_CRITICAL_PRIORITY) return undefined;
  if (pressure.length === 1 && pressure[0] === "MemoryPressure") {
    const toleratesMemoryPressure = (pod.spec?.tolerations ?? []).some(
      (t) =>
        (!t.effect || t.effect === "NoSchedule") &&
        (t.key
          ? t.key === "node.kubernetes.io/memory-pressure" && (t.operator === "Exists" || !t.value)
          : t.operator === "Exists"),
    );
    if (qosClass(pod) !== "BestEffort" || toleratesMemoryPressure) return undefined;
  }
  return reject(PodReason.Evicted, `The node had condition: [${pressure.join(" ")}]. `);
}

const SUPPORTED_VOLUMES =
  "configMap, secret, emptyDir, downwardAPI, projected, and hostPath where the node allows it";

function reject(reason: string, message: string): AdmissionResult {
  return { admitted: false, reason, message };
}

function allContainers(pod: V1Pod): { container: V1Container; field: string }[] {
  return [
    ...(pod.spec?.initContainers ?? []).map((container) => ({
      container,
      field: `spec.initContainers{${container.name}}`,
    })),
    ...(pod.spec?.containers ?? []).map((container) => ({
      container,
      field: `spec.containers{${container.name}}`,
    })),
  ];
}

function checkVolume(volume: V1Volume, hostPath: HostPathPolicy): AdmissionResult | undefined {
  const kind = volumeKind(volume);
  if (kind === undefined) {
    return reject(
      PodReason.VolumeTypeNotSupported,
      `volume "${volume.name}" is of type ${volumeSourceName(volume)}, which wasmlet does not support (supported: ${SUPPORTED_VOLUMES})`,
    );
  }
  if (kind === "hostPath" && !hostPathAllowed(hostPath, volume.hostPath?.path ?? "")) {
    return reject(
      PodReason.HostPathNotAllowed,
      `volume "${volume.name}" mounts hostPath ${volume.hostPath?.path ?? ""}, which this node's configuration does not allow`,
    );
  }
  if (kind === "projected") {
    for (const source of volume.projected?.sources ?? []) {
      const name =
        Object.keys(source).find((key) => (source as Record<string, unknown>)[key] != null) ??
        "unknown";
      if (!["configMap", "secret", "downwardAPI", "serviceAccountToken"].includes(name)) {
        return reject(
          PodReason.VolumeTypeNotSupported,
          `projected volume "${volume.name}" has a ${name} source, which wasmlet does not support (supported: configMap, secret, downwardAPI, serviceAccountToken)`,
        );
      }
    }
  }
  return undefined;
}

export async function admit(pod: V1Pod, options: AdmissionOptions): Promise<AdmissionResult> {
  const spec = pod.spec;
  if (!spec) return reject(PodReason.UnexpectedAdmissionError, "the pod has no spec");
  if (spec.os?.name && spec.os.name !== "linux") {
    return reject(
      PodReason.OSNotSupported,
      `spec.os.name is "${spec.os.name}"; wasmlet runs WebAssembly (wasip1) guests and accepts only pods without spec.os or with "linux"`,
    );
  }
  if (spec.hostNetwork) {
    return reject(
      PodReason.HostNetworkNotSupported,
      "hostNetwork is not supported by wasmlet: pods already use the node's IP, and WebAssembly guests reach the network only through wasmlet's socket proxy",
    );
  }
  for (const field of ["hostPID", "hostIPC"] as const) {
    if (spec[field]) {
      return reject(
        PodReason.HostNamespacesNotSupported,
        `${field} is not supported by wasmlet: WebAssembly guests have no host process or IPC namespace to join`,
      );
    }
  }
  for (const { container } of allContainers(pod)) {
    if (container.securityContext?.privileged) {
      return reject(
        PodReason.PrivilegedNotSupported,
        `container "${container.name}" asks for privileged mode, which wasmlet cannot grant: a WebAssembly guest is always sandboxed`,
      );
    }
    if ((container.volumeDevices ?? []).length > 0) {
      return reject(
        PodReason.VolumeDevicesNotSupported,
        `container "${container.name}" uses volumeDevices (raw block devices), which wasmlet does not support`,
      );
    }
  }
  for (const volume of spec.volumes ?? []) {
    const result = checkVolume(volume, options.hostPath);
    if (result) return result;
  }
  const underPressure = pressureRejection(pod, options.nodePressure?.() ?? []);
  if (underPressure) return underPressure;
  if (spec.runtimeClassName) {
    const handler = await options.runtimeClassHandler(spec.runtimeClassName);
    if (handler === undefined) {
      return reject(
        PodReason.RuntimeClassNotSupported,
        `RuntimeClass "${spec.runtimeClassName}" not found`,
      );
    }
    if (handler !== RUNTIME_HANDLER) {
      return reject(
        PodReason.RuntimeClassNotSupported,
        `RuntimeClass "${spec.runtimeClassName}" has handler "${handler}"; this node runs only the "${RUNTIME_HANDLER}" handler`,
      );
    }
  }

  const warnings: AdmissionWarning[] = [];
  for (const { container, field } of allContainers(pod)) {
    const probes: [string, V1Probe | undefined, string][] = [
      ["Liveness", container.livenessProbe, "it is never restarted for failing it"],
      ["Readiness", container.readinessProbe, "the container counts as ready while it runs"],
      ["Startup", container.startupProbe, "the container counts as started once it runs"],
    ];
    for (const [kind, probe, consequence] of probes) {
      if (!probe || probe.exec || probe.httpGet || probe.tcpSocket || probe.grpc) continue;
      warnings.push({
        reason: EventReason.ProbeNotSupported,
        fieldPath: field,
        message: `${kind} probe of container "${container.name}" has no action wasmlet knows (exec, httpGet, tcpSocket or grpc) and is not run; ${consequence}`,
      });
    }
    const hooks = [
      ["postStart", container.lifecycle?.postStart, "the container is killed after every start"],
      ["preStop", container.lifecycle?.preStop, "a FailedPreStopHook event, then the stop"],
    ] as const;
    for (const [name, hook, consequence] of hooks) {
      if (!hook || hook.sleep || hook.exec || hook.httpGet) continue;
      warnings.push({
        reason: EventReason.HookNotSupported,
        fieldPath: field,
        message: hook.tcpSocket
          ? `${name} hook (tcpSocket) of container "${container.name}" fails whenever it runs, as on any kubelet: Kubernetes keeps tcpSocket in lifecycle hooks for compatibility only and does not support it (${consequence})`
          : `${name} hook of container "${container.name}" has no action wasmlet knows (exec, httpGet or sleep) and is skipped`,
      });
    }
  }
  return { admitted: true, warnings };
}
