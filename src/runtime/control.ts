// Both ends of an instance's shared control block (layout in protocol.ts). The host end lives in
// the runtime's thread; the guest end in the worker, used from inside WASI calls. The guest only
// ever waits on the DOORBELL slot, and the host bumps it after every change it makes, so a single
// Atomics.waitAsync wakes for stop requests, stdin data, stdin close and output drained alike.
// The guest waits asynchronously: its stack is suspended (JSPI), the worker's thread runs others.
import { runtimeError } from "./errors.ts";
import {
  CONTROL_BYTES,
  Control,
  CPU_NANOS_INDEX,
  STDIN_RING_BYTES,
  StopLevel,
} from "./protocol.ts";

export class HostControl {
  readonly control: SharedArrayBuffer;
  readonly stdinRing: SharedArrayBuffer;
  readonly #slots: Int32Array;
  readonly #cpu: BigInt64Array;
  readonly #ring: Uint8Array;
  #stdinOpen: boolean;
  #finished = false;
  /** Serialises writeStdin calls so chunks never interleave. */
  #writing: Promise<void> = Promise.resolve();

  constructor(stdin: boolean) {
    this.control = new SharedArrayBuffer(CONTROL_BYTES);
    // Most guests never get stdin: they share no ring at all (a 64 KiB ring each would be most of
    // an idle guest's cost).
    this.stdinRing = new SharedArrayBuffer(stdin ? STDIN_RING_BYTES : 0);
    this.#slots = new Int32Array(this.control, 0, Control.LENGTH);
    this.#cpu = new BigInt64Array(this.control);
    this.#ring = new Uint8Array(this.stdinRing);
    this.#stdinOpen = stdin;
    if (!stdin) Atomics.store(this.#slots, Control.STDIN_CLOSED, 1);
  }

  #ringBell(): void {
    Atomics.add(this.#slots, Control.DOORBELL, 1);
    Atomics.notify(this.#slots, Control.DOORBELL);
  }

  get stopLevel(): number {
    return Atomics.load(this.#slots, Control.STOP);
  }

  requestStop(level: typeof StopLevel.TERM | typeof StopLevel.KILL): void {
    if (Atomics.load(this.#slots, Control.STOP) >= level) return;
    Atomics.store(this.#slots, Control.STOP, level);
    this.#ringBell();
  }

  setListeners(count: number): void {
    Atomics.store(this.#slots, Control.LISTENERS, count);
  }

  /** The host delivered `bytes` of posted output. */
  outputSettled(bytes: number): void {
    Atomics.sub(this.#slots, Control.OUTPUT_PENDING, bytes);
    this.#ringBell();
  }

  memoryBytes(): number {
    return Atomics.load(this.#slots, Control.MEMORY_PAGES) * 65536;
  }

  /** CPU time the guest has run so far, in nanoseconds. */
  cpuNanos(): bigint {
    return Atomics.load(this.#cpu, CPU_NANOS_INDEX);
  }

  get stdinOpen(): boolean {
    return this.#stdinOpen && !this.#finished;
  }

  writeStdin(data: Uint8Array): Promise<void> {
    if (!this.stdinOpen) {
      return Promise.reject(runtimeError("WASMLET_ERR_NOT_RUNNING", "stdin is not open"));
    }
    const next = this.#writing.then(() => this.#write(data));
    this.#writing = next.catch(() => {});
    return next;
  }

  async #write(data: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < data.length) {
      if (!this.stdinOpen)
        throw runtimeError("WASMLET_ERR_NOT_RUNNING", "stdin closed before all input was read");
      const written = Atomics.load(this.#slots, Control.STDIN_WRITTEN);
      const read = Atomics.load(this.#slots, Control.STDIN_READ);
      const free = STDIN_RING_BYTES - ((written - read) | 0);
      if (free === 0) {
        const wait = Atomics.waitAsync(this.#slots, Control.STDIN_READ, read, 1000);
        if (wait.async) await wait.value;
        continue;
      }
      const n = Math.min(free, data.length - offset);
      const at = (written >>> 0) % STDIN_RING_BYTES;
      const first = Math.min(n, STDIN_RING_BYTES - at);
      this.#ring.set(data.subarray(offset, offset + first), at);
      if (n > first) this.#ring.set(data.subarray(offset + first, offset + n), 0);
      Atomics.store(this.#slots, Control.STDIN_WRITTEN, (written + n) | 0);
      offset += n;
      this.#ringBell();
    }
  }

  closeStdin(): void {
    if (!this.#stdinOpen) return;
    this.#stdinOpen = false;
    // Close after queued writes land, so the guest reads them before end-of-file.
    void this.#writing.then(() => {
      Atomics.store(this.#slots, Control.STDIN_CLOSED, 1);
      this.#ringBell();
    });
  }

  /** The instance ended: pending stdin writers give up. */
  finish(): void {
    this.#finished = true;
    Atomics.store(this.#slots, Control.STDIN_CLOSED, 1);
    Atomics.notify(this.#slots, Control.STDIN_READ);
  }
}

/** Thrown from a WASI call to end the guest because the host asked. */
export class StopRequested {
  readonly signal: 9 | 15;
  constructor(signal: 9 | 15) {
    this.signal = signal;
  }
}

export class GuestControl {
  readonly #slots: Int32Array;
  readonly #cpu: BigInt64Array;
  readonly #ring: Uint8Array;

  constructor(control: SharedArrayBuffer, stdinRing: SharedArrayBuffer) {
    this.#slots = new Int32Array(control, 0, Control.LENGTH);
    this.#cpu = new BigInt64Array(control);
    this.#ring = new Uint8Array(stdinRing);
  }

  /** Publishes the CPU time the guest has run so far. */
  publishCpu(nanos: bigint): void {
    Atomics.store(this.#cpu, CPU_NANOS_INDEX, nanos);
  }

  /** Throws StopRequested when the host asked the guest to end. */
  checkStop(): void {
    const level = Atomics.load(this.#slots, Control.STOP);
    if (level !== StopLevel.NONE) throw new StopRequested(level === StopLevel.KILL ? 9 : 15);
  }

  doorbell(): number {
    return Atomics.load(this.#slots, Control.DOORBELL);
  }

  /** Wakes the guest's wait: something it may be waiting for (a socket event) happened. */
  ring(): void {
    Atomics.add(this.#slots, Control.DOORBELL, 1);
    Atomics.notify(this.#slots, Control.DOORBELL);
  }

  /**
   * Asks `attempt` now and, while it has no answer (undefined), again after each ring of the
   * doorbell: the answer at once when there is one, so a guest that need not wait is never
   * suspended, else a promise of it. `wait(bell)` suspends the guest until a ring after `bell`.
   */
  answerOrWait<T>(
    attempt: () => T | undefined,
    wait: (bell: number) => Promise<void>,
  ): T | Promise<T> {
    const now = attempt();
    if (now !== undefined) return now;
    return (async () => {
      for (;;) {
        const bell = this.doorbell();
        const answer = attempt();
        if (answer !== undefined) return answer;
        await wait(bell);
      }
    })();
  }

  /** Throws StopRequested only when the host killed the guest (a stop request is not enough). */
  checkKill(): void {
    if (Atomics.load(this.#slots, Control.STOP) === StopLevel.KILL) throw new StopRequested(9);
  }

  /**
   * Resolves when the host rings (any change) or `timeoutMs` passes; rejects with StopRequested
   * (only when killed, with `untilKilled`). Pass the doorbell value read before checking the
   * condition waited for, so no wake-up is lost.
   */
  async wait(bell: number, timeoutMs: number, untilKilled = false): Promise<void> {
    const check = untilKilled ? () => this.checkKill() : () => this.checkStop();
    check();
    const waiting = Atomics.waitAsync(this.#slots, Control.DOORBELL, bell, timeoutMs);
    if (waiting.async) await waiting.value;
    check();
  }

  publishMemory(bytes: number): void {
    Atomics.store(this.#slots, Control.MEMORY_PAGES, Math.floor(bytes / 65536));
  }

  listeners(): number {
    return Atomics.load(this.#slots, Control.LISTENERS);
  }

  outputPending(): number {
    return Atomics.load(this.#slots, Control.OUTPUT_PENDING);
  }

  addOutputPending(bytes: number): void {
    Atomics.add(this.#slots, Control.OUTPUT_PENDING, bytes);
  }

  /** Bytes buffered in stdin, and whether it is closed. */
  stdinState(): { available: number; closed: boolean } {
    // The close flag first: the host sets it only after its last write, so once it is seen the
    // count read next includes every byte. Read the other way round, a write and close landing in
    // between would look like end-of-file with that last write still unread.
    const closed = Atomics.load(this.#slots, Control.STDIN_CLOSED) === 1;
    const available =
      (Atomics.load(this.#slots, Control.STDIN_WRITTEN) -
        Atomics.load(this.#slots, Control.STDIN_READ)) |
      0;
    return { available, closed: available === 0 && closed };
  }

  /** Copies buffered stdin into `buffers`; returns bytes copied (0 when none is buffered). */
  readStdin(buffers: Uint8Array[]): number {
    const read = Atomics.load(this.#slots, Control.STDIN_READ);
    let available = (Atomics.load(this.#slots, Control.STDIN_WRITTEN) - read) | 0;
    let at = (read >>> 0) % STDIN_RING_BYTES;
    let total = 0;
    for (const buffer of buffers) {
      let filled = 0;
      while (filled < buffer.length && available > 0) {
        const n = Math.min(buffer.length - filled, available, STDIN_RING_BYTES - at);
        buffer.set(this.#ring.subarray(at, at + n), filled);
        filled += n;
        available -= n;
        at = (at + n) % STDIN_RING_BYTES;
      }
      total += filled;
      if (available === 0) break;
    }
    if (total > 0) {
      Atomics.store(this.#slots, Control.STDIN_READ, (read + total) | 0);
      Atomics.notify(this.#slots, Control.STDIN_READ);
    }
    return total;
  }
}
