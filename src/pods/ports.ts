// The seam between pods/ and the parts it drives. pods/ owns Kubernetes semantics; these ports take
// and return plain values. The integrator adapts images/, runtime/, logs/ and kube/ to them; unit
// tests use in-memory fakes.

import type { V1Service } from "@kubernetes/client-node";
import type { ContainerNetwork } from "../runtime/types.ts";
import type { VolumeSourcePort } from "../volumes/ports.ts";
import type { RunMount } from "../volumes/volume-manager.ts";

export type { RunMount } from "../volumes/volume-manager.ts";

// ---------------------------------------------------------------- images

export type PullPolicy = "Always" | "IfNotPresent" | "Never";

export interface ImageEnsureOptions {
  pullPolicy: PullPolicy;
  /**
   * The pod's imagePullSecrets, in order: each the decoded text of the Secret's `.dockerconfigjson`
   * (or legacy `.dockercfg`); the images module picks the credential matching the registry.
   */
  pullSecrets: string[];
  /** The container's `command[0]` when it sets one (a container image may hold several modules). */
  executable?: string;
  /** The container's memory limit: the module's memory maximum is capped to it before compiling. */
  memoryLimitBytes?: number;
  /** Aborted when the pod is deleted while pulling. */
  signal: AbortSignal;
  /** Called when a download from the registry actually begins (the "Pulling" event); not called when the image is present. */
  onPulling?: () => void;
}

/** The parts of the OCI image config that decide how a container starts. */
export interface ImageRunConfig {
  entrypoint?: string[];
  cmd?: string[];
  /** `NAME=value` strings, the image's default environment. */
  env?: string[];
  workingDir?: string;
}

export interface EnsuredImage {
  /** The normalised reference shown as `status.containerStatuses[].image`, e.g. docker.io/library/x:1. */
  image: string;
  /** `repository@sha256:…`, shown as `imageID`. */
  imageID: string;
  module: WebAssembly.Module;
  config: ImageRunConfig;
  /** The export to call instead of `_start` (runwasi's `path#function` entrypoints). */
  entrypointExport?: string;
  /** False when the image was already present (event "already present on machine"). */
  pulled: boolean;
  sizeBytes?: number;
}

/**
 * Errors from `ensure` are shown as ErrImagePull, except: code WASMLET_ERR_IMAGE_NEVER_PULL (or
 * `reason: "ErrImageNeverPull"`) → ErrImageNeverPull; code WASMLET_ERR_IMAGE_REFERENCE_INVALID (or
 * `reason: "InvalidImageName"`) → InvalidImageName. The message is shown as is.
 */
export interface ImagePort {
  ensure(image: string, options: ImageEnsureOptions): Promise<EnsuredImage>;
}

// ---------------------------------------------------------------- runtime

export interface RunSpec {
  /** Unique per instance; the status shows `wasmlet://<id>`. */
  id: string;
  module: WebAssembly.Module;
  /** argv, argv[0] included. */
  args: string[];
  env: Record<string, string>;
  mounts: RunMount[];
  workingDir: string;
  stdin: boolean;
  /** CRI-format log file for this instance (`<podLogDir>/<container>/<restartCount>.log`). */
  logPath: string;
  /** The export to call; `_start` when absent. */
  entrypointExport?: string;
  memoryLimitBytes?: number;
  /** CPU limit: a quota per 100 ms period. */
  cpuLimitMillis?: number;
  /** A thread of its own (whole CPUs of a Guaranteed pod). */
  exclusiveCpu?: boolean;
  /** Listeners for the container's TCP ports on the pod's address, and its connection limit. */
  network?: ContainerNetwork;
  /** Plain labels for metrics and logs (namespace, pod, uid, container); the runtime does not interpret them. */
  labels: Record<string, string>;
}

export interface ExitStatus {
  exitCode: number;
  /** "OOMKilled" when the memory cap was hit; otherwise omitted (Completed/Error follow exitCode). */
  reason?: string;
  message?: string;
  startedAt: Date;
  finishedAt: Date;
}

/** How a command run in a container (exec probe or hook) ended. */
export interface ExecResult {
  exitCode: number;
  /** Combined stdout and stderr, cut to MAX_PROBE_OUTPUT_BYTES (see prober.ts). */
  output: string;
  timedOut: boolean;
}

export interface RunHandle {
  readonly id: string;
  /** Resolves with the start time once the guest runs; rejects when it cannot start (RunContainerError). */
  readonly started: Promise<Date>;
  /** Resolves once the instance is gone, whatever the cause (exit, trap, OOM, stop). */
  readonly exited: Promise<ExitStatus>;
  /** Asks the guest to stop and ends it after `graceMs`; resolves when it is gone. Safe to call twice. */
  stop(graceMs: number): Promise<void>;
  /**
   * Runs `args` as another instance of the module with the container's env and mounts (exec
   * probes and hooks), ended after `timeoutMs` when given.
   */
  exec(args: string[], timeoutMs?: number): Promise<ExecResult>;
}

export interface RuntimePort {
  /** Creates and starts an instance. Throws when it cannot even be created (CreateContainerError). */
  run(spec: RunSpec): RunHandle;
}

// ---------------------------------------------------------------- logs

export interface LogPort {
  /** The last lines of an instance's log, content only (for terminationMessagePolicy FallbackToLogsOnError). */
  tail(logPath: string, limits: { maxLines: number; maxBytes: number }): Promise<string>;
}

// ---------------------------------------------------------------- Kubernetes API

export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
}

export interface PodEvent {
  pod: PodRef;
  /** `spec.containers{name}` / `spec.initContainers{name}` when the event is about one container. */
  fieldPath?: string;
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

/**
 * Errors from the API carry the HTTP status as `statusCode` (or `code`, as client-node's
 * ApiException does): 404 and 409 are recognised.
 */
export interface KubePort extends VolumeSourcePort {
  /**
   * PATCH pods/{name}/status with `application/strategic-merge-patch+json`. The patch carries
   * `metadata.uid` as a precondition (the API answers 409 when the pod was recreated).
   */
  patchPodStatus(namespace: string, name: string, patch: Record<string, unknown>): Promise<void>;
  /** DELETE the pod with `gracePeriodSeconds: 0` and `preconditions.uid`; a 404 counts as done. */
  deletePod(namespace: string, name: string, uid: string): Promise<void>;
  /** Fire and forget (the recorder aggregates and retries). */
  recordEvent(event: PodEvent): void;
  /** The RuntimeClass's handler, `undefined` when the RuntimeClass does not exist; throws on other failures. */
  getRuntimeClassHandler(name: string): Promise<string | undefined>;
  /** Every service of the cluster (from a watch), for the pods' service variables; throws until it has been read once. */
  listServices(): readonly V1Service[];
}

export function httpStatusOf(error: unknown): number | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const record = error as { statusCode?: unknown; code?: unknown };
  if (typeof record.statusCode === "number") return record.statusCode;
  if (typeof record.code === "number") return record.code;
  return undefined;
}
