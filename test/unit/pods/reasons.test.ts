// Pins every user-visible reason: these strings are matched by kubectl, dashboards and alerts.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CONTAINER_ID_SCHEME,
  ConditionReason,
  ConditionType,
  ContainerReason,
  EventReason,
  PodReason,
  RUNTIME_HANDLER,
} from "../../../src/pods/reasons.ts";

test("container reasons are the kubelet's", () => {
  assert.deepEqual(ContainerReason, {
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
  });
});

test("event reasons are the kubelet's (plus two of wasmlet's own)", () => {
  assert.deepEqual(EventReason, {
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
    ProbeWarning: "ProbeWarning",
    LifecycleHTTPFallback: "LifecycleHTTPFallback",
    ProbeNotSupported: "ProbeNotSupported",
    HookNotSupported: "HookNotSupported",
  });
});

test("pod reasons, conditions and constants", () => {
  assert.deepEqual(PodReason, {
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
  });
  assert.deepEqual(Object.values(ConditionType), [
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
    "DisruptionTarget",
  ]);
  assert.deepEqual(ConditionReason, {
    ContainersNotReady: "ContainersNotReady",
    ContainersNotInitialized: "ContainersNotInitialized",
    PodCompleted: "PodCompleted",
    PodFailed: "PodFailed",
    ReadinessGatesNotReady: "ReadinessGatesNotReady",
    UnknownContainerStatuses: "UnknownContainerStatuses",
    TerminationByKubelet: "TerminationByKubelet",
  });
  assert.equal(RUNTIME_HANDLER, "wasmlet");
  assert.equal(CONTAINER_ID_SCHEME, "wasmlet://");
});
