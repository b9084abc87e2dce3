// Every reason and event name wasmlet shows to Kubernetes users, in one place. They are the
// kubelet's own strings (kubectl, dashboards and alerts match on them), so they are stable: a unit
// test pins each value. Add, never rename.

export const EventType = {
  Normal: "Normal",
  Warning: "Warning",
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

/** `state.waiting.reason` / `state.terminated.reason` of a container status. */
export const ContainerReason = {
  ContainerCreating: "ContainerCreating",
  PodInitializing: "PodInitializing",
  ErrImagePull: "ErrImagePull",
  ImagePullBackOff: "ImagePullBackOff",
  ErrImageNeverPull: "ErrImageNeverPull",
  InvalidImageName: "InvalidImageName",
  CreateContainerConfigError: "CreateContainerConfigError",
  CreateContainerError: "CreateContainerError",
  RunContainerError: "RunContainerError",
  CrashLoopBackOff: "CrashLoopBackOff",
  Completed: "Completed",
  Error: "Error",
  OOMKilled: "OOMKilled",
  ContainerStatusUnknown: "ContainerStatusUnknown",
  StartError: "StartError",
} as const;

/** `reason` of an Event on the pod (`kubectl describe pod`). */
export const EventReason = {
  Pulling: "Pulling",
  Pulled: "Pulled",
  Failed: "Failed",
  BackOff: "BackOff",
  ErrImageNeverPull: "ErrImageNeverPull",
  InspectFailed: "InspectFailed",
  Created: "Created",
  Started: "Started",
  Killing: "Killing",
  Unhealthy: "Unhealthy",
  FailedMount: "FailedMount",
  FailedToRetrieveImagePullSecret: "FailedToRetrieveImagePullSecret",
  InvalidEnvironmentVariableNames: "InvalidEnvironmentVariableNames",
  Evicted: "Evicted",
  DeadlineExceeded: "DeadlineExceeded",
  FailedPreStopHook: "FailedPreStopHook",
  FailedPostStartHook: "FailedPostStartHook",
  /** A probe passed with a warning (an httpGet probe's redirect it does not follow). */
  ProbeWarning: "ProbeWarning",
  /** An HTTPS hook retried over plain HTTP. */
  LifecycleHTTPFallback: "LifecycleHTTPFallback",
  /** wasmlet's own: a probe or hook kind the node cannot carry out (see docs in admission.ts). */
  ProbeNotSupported: "ProbeNotSupported",
  HookNotSupported: "HookNotSupported",
} as const;

/** `status.reason` of a pod. Admission rejections use the specific reasons below. */
export const PodReason = {
  Evicted: "Evicted",
  DeadlineExceeded: "DeadlineExceeded",
  UnexpectedAdmissionError: "UnexpectedAdmissionError",
  HostNetworkNotSupported: "HostNetworkNotSupported",
  HostNamespacesNotSupported: "HostNamespacesNotSupported",
  PrivilegedNotSupported: "PrivilegedNotSupported",
  VolumeTypeNotSupported: "VolumeTypeNotSupported",
  HostPathNotAllowed: "HostPathNotAllowed",
  RuntimeClassNotSupported: "RuntimeClassNotSupported",
  OSNotSupported: "OSNotSupported",
  VolumeDevicesNotSupported: "VolumeDevicesNotSupported",
} as const;

/** Pod condition types the node owns. */
export const ConditionType = {
  PodReadyToStartContainers: "PodReadyToStartContainers",
  Initialized: "Initialized",
  ContainersReady: "ContainersReady",
  Ready: "Ready",
  DisruptionTarget: "DisruptionTarget",
} as const;

export const ConditionReason = {
  ContainersNotReady: "ContainersNotReady",
  ContainersNotInitialized: "ContainersNotInitialized",
  PodCompleted: "PodCompleted",
  PodFailed: "PodFailed",
  ReadinessGatesNotReady: "ReadinessGatesNotReady",
  UnknownContainerStatuses: "UnknownContainerStatuses",
  TerminationByKubelet: "TerminationByKubelet",
} as const;

export const PodPhase = {
  Pending: "Pending",
  Running: "Running",
  Succeeded: "Succeeded",
  Failed: "Failed",
  Unknown: "Unknown",
} as const;
export type PodPhase = (typeof PodPhase)[keyof typeof PodPhase];

/** The RuntimeClass handler wasmlet answers to. */
export const RUNTIME_HANDLER = "wasmlet";
/** containerID scheme in container statuses. */
export const CONTAINER_ID_SCHEME = "wasmlet://";
