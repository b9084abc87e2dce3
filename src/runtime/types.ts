// The runtime's public contract: plain types, no Kubernetes. pods/ turns a pod's container into a
// ContainerSpec, runs it with Runtime.run() and turns the ExitStatus into a container state;
// server/ uses Container for attach, exec and top.
import type { LogRotation } from "../logs/log-writer.ts";
import type { OutboundPolicy } from "./outbound-policy.ts";

export type { OutboundPolicy } from "./outbound-policy.ts";

export type OutputStream = "stdout" | "stderr";

export interface Mount {
  /** Existing host directory. */
  hostPath: string;
  /** Absolute path at which the guest sees it (e.g. `/data`). Unique per container. */
  guestPath: string;
  /** Writes, creations, renames and deletions under it fail with EROFS. */
  readOnly: boolean;
}

export interface ContainerSpec {
  /** Unique among the runtime's live containers (pods/ uses pod uid + container name + restart). */
  id: string;
  /**
   * The compiled module, its memory maximum already at most `memoryLimitBytes` (apply
   * `withMemoryMaximum` from src/wasm/binary.ts before compiling). Raw bytes are accepted too: the
   * runtime then checks, caps and compiles them, and a bad binary ends the container as StartError.
   */
  module: WebAssembly.Module | Uint8Array;
  /** The memory limit, used to classify deaths near it as OOMKilled and to refuse growth past it. */
  memoryLimitBytes?: number;
  /** argv, argv[0] included. */
  args: string[];
  env: Record<string, string>;
  mounts: Mount[];
  /** Absolute guest path; given to the guest as $PWD (WASI preview1 has no working directory). */
  workingDir?: string;
  /** Export to call; default `_start`. A reactor's `_initialize` is called first when present. */
  entrypoint?: string;
  /** Keep a stdin channel open (writeStdin/closeStdin); otherwise stdin reads end-of-file. */
  stdin?: boolean;
  /** CRI-format log file for stdout and stderr (see src/logs/log-writer.ts for the layout). */
  logPath: string;
  logRotation?: LogRotation;
  /**
   * CPU limit in millicores: a quota per 100 ms period, as CFS enforces `limits.cpu` (the guest is
   * held once it used 20 ms of a period at 200m). Its execs have quotas of their own.
   */
  cpuLimitMillis?: number;
  /** A worker thread of its own (a Guaranteed pod with whole CPUs, like the static CPU manager). */
  exclusiveCpu?: boolean;
  /** Hard stop this long after start: reason DeadlineExceeded, exit code 137. */
  deadlineMs?: number;
  /**
   * The container's sockets: listeners for its ports, how many connections it may hold, where it
   * may connect (its execs too). Without it the guest has no network: sock_open answers ENOTSUP.
   */
  network?: ContainerNetwork;
}

export interface ListenPort {
  /** The port's name (LISTEN_FDNAMES); the number when it has none. */
  name: string;
  /** Address to bind: the pod's IP. */
  host: string;
  port: number;
}

export interface ContainerNetwork {
  /**
   * One listening TCP socket per port, opened before the guest starts and given to it as
   * pre-opened descriptors right after the directories; `LISTEN_FDS`, `LISTEN_FDS_START` and
   * `LISTEN_FDNAMES` tell it where. A port that cannot be bound ends the start (StartError).
   */
  listen: ListenPort[];
  /** Connections open at once, accepted and outbound ones included; past it new ones are reset. */
  maxConnections: number;
  /** Where the guest may connect (WasmEdge socket extension, docs/socket-abi.md). */
  outbound: OutboundPolicy;
}

/**
 * Why an instance ended. `Completed` (exit 0) and `Error` (any other end, traps included) are what
 * the kubelet reports; `OOMKilled` when the guest died at its memory limit; `DeadlineExceeded` when
 * `deadlineMs` ran out; `StartError` when it never ran (bad module, missing export or import, mount
 * missing), exit code 128 like containerd.
 */
export type ExitReason = "Completed" | "Error" | "OOMKilled" | "DeadlineExceeded" | "StartError";

export interface ExitStatus {
  /** 0-255. 143 = stopped on request, 137 = killed (grace period over, deadline, OOM), 134 = trap. */
  exitCode: number;
  reason: ExitReason;
  /** Detail for people, e.g. `wasm trap: unreachable executed in function abort`. */
  message?: string;
  /** Set when the guest ended because of a stop request (15) or was killed (9), like a signal. */
  signal?: 9 | 15;
  /** When the entrypoint was called; undefined when it never was (StartError). */
  startedAt: Date | undefined;
  finishedAt: Date;
}

/** Microseconds of CPU time, like process.cpuUsage(). */
export interface CpuUsage {
  user: number;
  system: number;
}

export type OutputListener = (stream: OutputStream, chunk: Uint8Array) => void;

/** A running (or finished) instance: the container itself or an exec in it. */
export interface Instance {
  readonly id: string;
  /** Resolves with the start time when the entrypoint is called; rejects when it never is. */
  readonly started: Promise<Date>;
  /** Always resolves, once. */
  readonly exited: Promise<ExitStatus>;
  readonly running: boolean;
  /**
   * Asks the guest to stop: it ends at its next WASI call (sleeps and blocking reads are cut
   * short) with exit code 143. Still running after `gracePeriodMs` (a guest that only computes),
   * it is killed at its next yield point: exit code 137. Calling again can shorten the grace.
   */
  stop(gracePeriodMs: number): Promise<ExitStatus>;
  /** Feeds stdin (waits while the 64 KiB channel is full). Rejects when stdin is not open. */
  writeStdin(data: Uint8Array | string): Promise<void>;
  /** The guest reads end-of-file once buffered input is consumed. Idempotent. */
  closeStdin(): void;
  /** CPU time the guest has run since it started. */
  cpuUsage(): Promise<CpuUsage>;
  /** Size of the guest's linear memory, as of its last WASI call. */
  memoryBytes(): number;
}

export interface Container extends Instance {
  readonly spec: Readonly<ContainerSpec>;
  /**
   * Live stdout/stderr (for attach) from now on; returns the unsubscribe function. Lossy: when
   * listeners fall more than 4 MiB behind, chunks are dropped (the log file has everything).
   */
  onOutput(listener: OutputListener): () => void;
  /** Runs another instance of the module with the container's env and mounts. */
  exec(options: ExecOptions): Instance;
}

export interface ExecOptions {
  /** argv, argv[0] included. */
  args: string[];
  /** Keep a stdin channel open; otherwise stdin reads end-of-file. */
  stdin?: boolean;
  /**
   * Receives output. Returning a promise applies backpressure: the guest waits while more than
   * 1 MiB of output is delivered but not yet settled.
   */
  onOutput: (stream: OutputStream, chunk: Uint8Array) => void | Promise<void>;
  /** Hard stop after this long. */
  deadlineMs?: number;
}

/** What Runtime needs from a logger (pino's signature). */
export interface RuntimeLogger {
  debug(object: object, message?: string): void;
  warn(object: object, message?: string): void;
}

export interface RuntimeOptions {
  /** Shared worker threads that host the guests (default: one per core). */
  workers?: number;
  /**
   * Host descriptors all guests may hold together (default: three quarters of the process's
   * open-file limit); past it their opens fail with ENFILE.
   */
  maxGuestDescriptors?: number;
  /** Content bytes per log record before a line is cut into P records (default 16 KiB). */
  maxLogLineBytes?: number;
  /** Grace period close() gives running instances (default 10 s). */
  closeGracePeriodMs?: number;
  logger?: RuntimeLogger;
}
