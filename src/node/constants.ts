// What every wasmlet Node carries, and the reasons its conditions and events give. These strings
// are part of wasmlet's interface (selectors, tolerations, scripts read them): never change one.
import { VERSION } from "../version.ts";

/** The Kubernetes minor version whose kubelet API wasmlet speaks. */
export const KUBERNETES_VERSION = "1.37.0";

/** `VERSION` in `kubectl get nodes`: the kubelet API level, then which wasmlet. */
export const KUBELET_VERSION = `v${KUBERNETES_VERSION}-wasmlet.${VERSION}`;

/** `CONTAINER-RUNTIME` in `kubectl get nodes -o wide`. */
export const CONTAINER_RUNTIME_VERSION = `wasmlet://${VERSION}`;

export const OPERATING_SYSTEM = "wasip1";
export const ARCHITECTURE = "wasm";

export const LABEL_OS = "kubernetes.io/os";
export const LABEL_ARCH = "kubernetes.io/arch";
export const LABEL_HOSTNAME = "kubernetes.io/hostname";
export const LABEL_WASMLET = "node.kubernetes.io/wasmlet";

export const TAINT_WASM = { key: "wasmlet.io/wasm", value: "true", effect: "NoSchedule" } as const;

export const RUNTIME_CLASS_NAME = "wasm";
export const RUNTIME_CLASS_HANDLER = "wasmlet";

export const LEASE_NAMESPACE = "kube-node-lease";
/** Annotation on the Lease naming the wasmlet process that holds it (see lease.ts). */
export const HOLDER_ANNOTATION = "wasmlet.io/holder";

export const ConditionReason = {
  ready: "KubeletReady",
  notReady: "KubeletNotReady",
  sufficientMemory: "KubeletHasSufficientMemory",
  insufficientMemory: "KubeletHasInsufficientMemory",
  noDiskPressure: "KubeletHasNoDiskPressure",
  diskPressure: "KubeletHasDiskPressure",
  sufficientPID: "KubeletHasSufficientPID",
  insufficientPID: "KubeletHasInsufficientPID",
} as const;

/** Node events, named as the kubelet names them so that tools recognise them. */
export const NodeEvent = {
  starting: "Starting",
  ready: "NodeReady",
  notReady: "NodeNotReady",
  sufficientMemory: "NodeHasSufficientMemory",
  insufficientMemory: "NodeHasInsufficientMemory",
  noDiskPressure: "NodeHasNoDiskPressure",
  diskPressure: "NodeHasDiskPressure",
  sufficientPID: "NodeHasSufficientPID",
  insufficientPID: "NodeHasInsufficientPID",
  shutdown: "Shutdown",
} as const;
