// Where a guest's stdout and stderr go, inside the worker. A container writes CRI log records to
// its log file (the worker writes them itself: no copy to the host, no unbounded buffer) and, while
// someone is attached, posts a lossy live copy. An exec posts every chunk and waits (suspended,
// without holding the thread) while the host has not settled more than STREAM_OUTPUT_LIMIT bytes
// (backpressure, no loss). One fd_write takes at most MAX_WRITE_BYTES, like a pipe's short write:
// a guest cannot hand wasmlet its whole memory in one call (64 iovecs over 32 MiB were 2 GiB).
import { CriLogWriter } from "../logs/log-writer.ts";
import type { GuestControl } from "./control.ts";
import type { OutputMode, WorkerToHost } from "./protocol.ts";
import { LISTENER_OUTPUT_LIMIT, STREAM_OUTPUT_LIMIT } from "./protocol.ts";
import type { OutputStream } from "./types.ts";

/** The most one write accepts; wasi-libc and Go write the rest in further calls. */
export const MAX_WRITE_BYTES = 1024 * 1024;

export interface GuestOutput {
  /** Returns the bytes accepted (at most MAX_WRITE_BYTES), or a promise of them. */
  write(stream: OutputStream, buffers: Uint8Array[]): number | Promise<number>;
  /** The guest is about to block: make unfinished lines visible. */
  flush(): void;
  close(): void;
}

type Post = (message: WorkerToHost, transfer?: ArrayBuffer[]) => void;
type Wait = (bell: number, timeoutMs: number) => Promise<void>;

/** The leading MAX_WRITE_BYTES of the buffers (views, no copy), and their total size. */
function bounded(buffers: Uint8Array[]): { buffers: Uint8Array[]; total: number } {
  const out: Uint8Array[] = [];
  let total = 0;
  for (const b of buffers) {
    if (total === MAX_WRITE_BYTES) break;
    const take = Math.min(b.length, MAX_WRITE_BYTES - total);
    if (take === 0) continue;
    out.push(take === b.length ? b : b.subarray(0, take));
    total += take;
  }
  return { buffers: out, total };
}

function concat(buffers: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const b of buffers) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

/** `wait` suspends the guest until the host rings its doorbell (see WasiHost). */
export function createGuestOutput(
  mode: OutputMode,
  instanceId: string,
  control: GuestControl,
  post: Post,
  wait: Wait,
): GuestOutput {
  return mode.kind === "log"
    ? new LogOutput(mode, instanceId, control, post)
    : new StreamOutput(instanceId, control, post, wait);
}

class LogOutput implements GuestOutput {
  readonly #writer: CriLogWriter;
  readonly #instanceId: string;
  readonly #control: GuestControl;
  readonly #post: Post;
  #failures = 0;
  dropped = 0;

  constructor(
    mode: Extract<OutputMode, { kind: "log" }>,
    instanceId: string,
    control: GuestControl,
    post: Post,
  ) {
    this.#writer = new CriLogWriter({
      path: mode.logPath,
      rotation: mode.rotation,
      maxLineBytes: mode.maxLineBytes,
    });
    this.#instanceId = instanceId;
    this.#control = control;
    this.#post = post;
  }

  write(stream: OutputStream, iovecs: Uint8Array[]): number {
    const { buffers, total } = bounded(iovecs);
    if (total === 0) return 0;
    for (const b of buffers) this.#guard(() => this.#writer.write(stream, b));
    if (this.#control.listeners() > 0) {
      if (this.#control.outputPending() + total <= LISTENER_OUTPUT_LIMIT) {
        const data = concat(buffers, total);
        this.#control.addOutputPending(total);
        this.#post({ type: "output", instanceId: this.#instanceId, stream, data }, [
          data.buffer as ArrayBuffer,
        ]);
      } else {
        this.dropped += total;
      }
    }
    return total;
  }

  flush(): void {
    this.#guard(() => this.#writer.flushPartial());
  }

  close(): void {
    this.#guard(() => this.#writer.close());
  }

  /** A failing log file must not kill the guest: the output is dropped and the host told once. */
  #guard(action: () => void): void {
    try {
      action();
    } catch (error) {
      if (this.#failures++ === 0) {
        this.#post({
          type: "warning",
          instanceId: this.#instanceId,
          message: (error as Error).message,
        });
      }
    }
  }
}

class StreamOutput implements GuestOutput {
  readonly #instanceId: string;
  readonly #control: GuestControl;
  readonly #post: Post;
  readonly #wait: Wait;

  constructor(instanceId: string, control: GuestControl, post: Post, wait: Wait) {
    this.#instanceId = instanceId;
    this.#control = control;
    this.#post = post;
    this.#wait = wait;
  }

  write(stream: OutputStream, iovecs: Uint8Array[]): number | Promise<number> {
    const { buffers, total } = bounded(iovecs);
    if (total === 0) return 0;
    return this.#control.answerOrWait(
      () => (this.#fits(total) ? this.#send(stream, buffers, total) : undefined),
      (bell) => this.#wait(bell, 1000),
    );
  }

  #fits(total: number): boolean {
    const pending = this.#control.outputPending();
    return pending === 0 || pending + total <= STREAM_OUTPUT_LIMIT;
  }

  #send(stream: OutputStream, buffers: Uint8Array[], total: number): number {
    const data = concat(buffers, total);
    this.#control.addOutputPending(total);
    this.#post({ type: "output", instanceId: this.#instanceId, stream, data }, [
      data.buffer as ArrayBuffer,
    ]);
    return total;
  }

  flush(): void {}
  close(): void {}
}
