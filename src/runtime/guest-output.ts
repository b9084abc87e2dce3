// Where a guest's stdout and stderr go, inside the worker. A container writes CRI log records to
// its log file (the worker writes them itself: no copy to the host, no unbounded buffer) and, while
// someone is attached, posts a lossy live copy. An exec posts every chunk and waits while the host
// has not settled more than STREAM_OUTPUT_LIMIT bytes (backpressure, no loss).
import { CriLogWriter } from "../logs/log-writer.ts";
import type { GuestControl } from "./control.ts";
import type { OutputMode, WorkerToHost } from "./protocol.ts";
import { LISTENER_OUTPUT_LIMIT, STREAM_OUTPUT_LIMIT } from "./protocol.ts";
import type { OutputStream } from "./types.ts";

export interface GuestOutput {
  /** Returns the bytes accepted. */
  write(stream: OutputStream, buffers: Uint8Array[]): number;
  /** The guest is about to block: make unfinished lines visible. */
  flush(): void;
  close(): void;
}

type Post = (message: WorkerToHost, transfer?: ArrayBuffer[]) => void;

function concat(buffers: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const b of buffers) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

export function createGuestOutput(
  mode: OutputMode,
  instanceId: string,
  control: GuestControl,
  post: Post,
): GuestOutput {
  return mode.kind === "log"
    ? new LogOutput(mode, instanceId, control, post)
    : new StreamOutput(instanceId, control, post);
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

  write(stream: OutputStream, buffers: Uint8Array[]): number {
    let total = 0;
    for (const b of buffers) total += b.length;
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

  constructor(instanceId: string, control: GuestControl, post: Post) {
    this.#instanceId = instanceId;
    this.#control = control;
    this.#post = post;
  }

  write(stream: OutputStream, buffers: Uint8Array[]): number {
    let total = 0;
    for (const b of buffers) total += b.length;
    if (total === 0) return 0;
    for (;;) {
      const bell = this.#control.doorbell();
      const pending = this.#control.outputPending();
      if (pending === 0 || pending + total <= STREAM_OUTPUT_LIMIT) break;
      this.#control.wait(bell, 1000);
    }
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
