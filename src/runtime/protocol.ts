// The one protocol between the runtime (host thread) and its workers. Messages are a tagged union
// both sides type-check against; errors cross as plain { code, message, hint }.
//
// A worker hosts many guests; a guest computing between yield points holds the thread and reads no
// messages, so everything the host must tell a running guest goes through a SharedArrayBuffer
// instead: the control block below (stop requests, stdin, output backpressure, published memory
// size and CPU time). Messages carry what starts and ends an instance, and its output.
import type { LogRotation } from "../logs/log-writer.ts";
import type { ContainerNetwork, Mount, OutputStream } from "./types.ts";

export interface WireError {
  code: string;
  message: string;
  hint?: string;
}

/** How an instance's stdout/stderr leave the worker. */
export type OutputMode =
  /** A container: CRI log file written by the worker, plus a lossy live copy when attached. */
  | { kind: "log"; logPath: string; rotation?: LogRotation; maxLineBytes: number }
  /** An exec: every chunk posted to the host, with backpressure. */
  | { kind: "stream" };

export interface RunMessage {
  type: "run";
  instanceId: string;
  module: WebAssembly.Module;
  args: string[];
  env: Record<string, string>;
  mounts: Mount[];
  entrypoint: string;
  memoryLimitBytes: number | undefined;
  /** Instances of one group (a container and its execs) share the memory limit. */
  memoryGroup: string;
  /** CPU quota in millicores (100 ms periods, like CFS); undefined: unlimited. */
  cpuLimitMillis: number | undefined;
  /** Int32Array view: see Control. */
  control: SharedArrayBuffer;
  /** Stdin ring buffer bytes (STDIN_RING_BYTES). */
  stdinRing: SharedArrayBuffer;
  output: OutputMode;
  network: ContainerNetwork | undefined;
}

export type HostToWorker = RunMessage | { type: "shutdown" };

export type Outcome =
  /** proc_exit(code), or the entrypoint returned (code 0). */
  | { kind: "exit"; code: number }
  /** Ended at a WASI call because the host asked (15 = stop, 9 = kill). */
  | { kind: "stopped"; signal: 9 | 15 }
  | { kind: "trap"; message: string; functionName?: string }
  /** Linear memory found above the limit (at start or at a WASI call). */
  | { kind: "memory-limit"; message: string }
  | { kind: "start-failed"; error: WireError };

export type WorkerToHost =
  | { type: "ready" }
  | { type: "started"; instanceId: string; startedAt: number }
  | { type: "output"; instanceId: string; stream: OutputStream; data: Uint8Array }
  | { type: "warning"; instanceId: string; message: string }
  | {
      type: "exited";
      instanceId: string;
      outcome: Outcome;
      finishedAt: number;
      memoryBytes: number;
    };

/** Int32 slots of the control block. */
export const Control = {
  /** Bumped and notified by the host on every event; the guest waits on this one slot. */
  DOORBELL: 0,
  /** StopLevel. */
  STOP: 1,
  /** Number of live output listeners of a container (0: the worker posts no live copy). */
  LISTENERS: 2,
  /** Output bytes posted by the worker and not yet settled by the host. */
  OUTPUT_PENDING: 3,
  /** Linear memory size in 64 KiB pages, published at every WASI call. */
  MEMORY_PAGES: 4,
  /** 1 once the host closed stdin (or never opened it). */
  STDIN_CLOSED: 5,
  /** Total bytes written into / read from the stdin ring (wrapping int32 counters). */
  STDIN_WRITTEN: 6,
  STDIN_READ: 7,
  LENGTH: 8,
} as const;

/** The control block: the Int32 slots, then the guest's CPU time (ns) as one BigInt64. */
export const CONTROL_BYTES = Control.LENGTH * 4 + 8;
export const CPU_NANOS_INDEX = Control.LENGTH / 2;

export const StopLevel = { NONE: 0, TERM: 1, KILL: 2 } as const;

export const STDIN_RING_BYTES = 64 * 1024;
/** Exec output in flight before the guest waits. */
export const STREAM_OUTPUT_LIMIT = 1024 * 1024;
/** Live container output in flight before chunks are dropped. */
export const LISTENER_OUTPUT_LIMIT = 4 * 1024 * 1024;

export function toWireError(error: unknown): WireError {
  if (
    typeof error === "object" &&
    error !== null &&
    typeof (error as WireError).code === "string"
  ) {
    const { code, message, hint } = error as WireError;
    return hint === undefined ? { code, message } : { code, message, hint };
  }
  return {
    code: "WASMLET_ERR_WORKER",
    message: error instanceof Error ? error.message : String(error),
  };
}
