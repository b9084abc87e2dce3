// wasmlet's preview1 import object: every function of `wasi_snapshot_preview1` is wasmlet's own
// (node:wasi is not used: it follows symlinks out of mounts, signals the whole process on
// proc_raise, crashes it on sock_accept of fd 0-2, and blocks its thread while a guest sleeps).
// - descriptors and paths: wasi-fs.ts (containment, read-only mounts, cleanup);
// - stdin/stdout/stderr: the control.ts channel and guest-output.ts (log records or stream);
// - waits (poll_oneoff, a stdin read, output backpressure, sched_yield) suspend only the calling
//   guest (JSPI) and hand the worker's thread to the others; a stop request ends them at once;
// - sockets: wasi-sockets.ts over the listeners and connections of guest-sockets.ts;
// - proc_exit unwinds the guest, proc_raise is ENOSYS.
// Every call first checks for a stop request and publishes the memory size, and maps whatever it
// throws to an errno: no guest input reaches wasmlet as an exception.
import { randomFillSync } from "node:crypto";
import { type GuestControl, StopRequested } from "./control.ts";
import type { DescriptorBudget } from "./descriptor-budget.ts";
import type { GuestClock } from "./guest-clock.ts";
import { encodeUtf8, GuestEncodingError, GuestFault, GuestMemory } from "./guest-memory.ts";
import type { GuestNetwork } from "./guest-network.ts";
import type { GuestOutput } from "./guest-output.ts";
import { suspending } from "./jspi.ts";
import type { Outcome } from "./protocol.ts";
import { hostErrno } from "./sandbox-path.ts";
import {
  Clock,
  Errno,
  EVENT_SIZE,
  EVENTRWFLAGS_HANGUP,
  Eventtype,
  SUBCLOCKFLAGS_ABSTIME,
  SUBSCRIPTION_SIZE,
  WASI_FUNCTIONS,
} from "./wasi-abi.ts";
import { type PreopenMount, WasiFs } from "./wasi-fs.ts";
import { WasiSockets } from "./wasi-sockets.ts";
import { SOCKET_EXTENSION_FUNCTIONS, WasmEdgeSockets } from "./wasmedge-sockets.ts";

/** Thrown through the guest's frames to end it with this outcome. */
export class GuestExit {
  readonly outcome: Outcome;
  constructor(outcome: Outcome) {
    this.outcome = outcome;
  }
}

export interface WasiHostOptions {
  args: string[];
  env: Record<string, string>;
  mounts: PreopenMount[];
  /**
   * Its listeners (pre-opened descriptors after the directories), connection limit and outbound
   * policy; undefined: no network (the socket extension answers ENOTSUP).
   */
  network: GuestNetwork | undefined;
  control: GuestControl;
  clock: GuestClock;
  output: GuestOutput;
  /** The node-wide budget of host descriptors the guest's files draw from. */
  descriptors: DescriptorBudget;
  memoryLimitBytes: number | undefined;
  /**
   * Linear memory of every instance that shares the limit (a container and its execs), this one
   * included: together they must stay within `memoryLimitBytes`, as processes in one cgroup do.
   */
  memoryGroupBytes(): number;
  onWarning(message: string): void;
}

/** A WASI function's result: an errno, or a promise of one when the guest must wait. */
type Result = number | Promise<number>;
type ImportFunction = (...args: never[]) => Result | undefined;

/** Functions that may wait: wrapped so that only the calling guest is suspended. */
const MAY_WAIT = new Set([
  "poll_oneoff",
  "fd_read",
  "fd_write",
  "sched_yield",
  "sock_accept",
  "sock_recv",
  "sock_send",
  "sock_connect",
  "sock_recv_from",
  "sock_send_to",
  "sock_getaddrinfo",
]);
/** WasiFs and WasiSockets implement these functions under their preview1 names. */
const FS_FUNCTION = /^(fd_|path_)/;
const SOCKET_FUNCTION = /^sock_/;

function realtimeNs(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
}

/** NUL-terminated UTF-8 strings, as args_get/environ_get hand them out. */
function cStrings(items: string[]): Uint8Array[] {
  return items.map((item) => {
    const bytes = encodeUtf8(item);
    const out = new Uint8Array(bytes.length + 1);
    out.set(bytes);
    return out;
  });
}

export class WasiHost {
  readonly #options: WasiHostOptions;
  readonly #control: GuestControl;
  readonly #clock: GuestClock;
  readonly #args: Uint8Array[];
  readonly #env: Uint8Array[];
  #memory: GuestMemory | undefined;
  #fs: WasiFs | undefined;
  #sockets: WasiSockets | undefined;
  /** The socket extension's functions, by name (bound once the memory is known). */
  #extension: Record<string, (...args: number[]) => Result> | undefined;
  #warned = false;
  /** Memory size at the last check. */
  #checkedBytes = 0;

  constructor(options: WasiHostOptions) {
    this.#options = options;
    this.#control = options.control;
    this.#clock = options.clock;
    this.#args = cStrings(options.args);
    this.#env = cStrings(Object.entries(options.env).map(([k, v]) => `${k}=${v}`));
  }

  /** The `wasi_snapshot_preview1` import object. */
  imports(): Record<string, ImportFunction | object> {
    const own = this.#ownFunctions();
    const out: Record<string, ImportFunction | object> = {};
    const names = new Set([...Object.keys(WASI_FUNCTIONS), ...SOCKET_EXTENSION_FUNCTIONS]);
    for (const name of names) {
      const impl = own[name] ?? this.#fsFunction(name);
      if (name === "proc_exit") out[name] = impl;
      else if (MAY_WAIT.has(name)) out[name] = suspending(this.#guard(impl));
      else out[name] = this.#guard(impl);
    }
    return out;
  }

  /** Binds the instance's memory; call before the entrypoint. */
  bind(memory: WebAssembly.Memory): void {
    this.#memory = new GuestMemory(memory);
    const stdio = {
      readStdin: (buffers: Uint8Array[], nonblocking: boolean) =>
        this.#readStdin(buffers, nonblocking),
      writeOutput: (stream: "stdout" | "stderr", buffers: Uint8Array[]) =>
        this.#options.output.write(stream, buffers),
      waitFor: (attempt: () => number | undefined) =>
        this.#control.answerOrWait(attempt, (bell) => this.#wait(bell, Number.POSITIVE_INFINITY)),
    };
    this.#fs = new WasiFs(
      this.#memory,
      stdio,
      this.#options.mounts,
      this.#options.descriptors,
      this.#options.network?.listeners ?? [],
    );
    this.#sockets = new WasiSockets(this.#memory, this.#fs);
    const network = this.#options.network;
    if (network) {
      this.#extension = new WasmEdgeSockets(this.#memory, this.#fs, this.#sockets, {
        policy: network.outbound,
        release: network.release,
        wake: () => this.#control.ring(),
        waitFor: stdio.waitFor,
      }).functions();
    }
    this.#control.publishMemory(this.#memory.byteLength);
  }

  memoryBytes(): number {
    return this.#memory?.byteLength ?? 0;
  }

  /** Closes the guest's host descriptors and sockets. */
  close(): void {
    this.#fs?.closeAll();
    for (const listener of this.#options.network?.listeners ?? []) listener.close();
  }

  /** WasiFs's or WasiSockets's method of that name, found once, called on what bind() creates. */
  #fsFunction(name: string): (...args: never[]) => Result {
    type Methods = Record<string, (...a: never[]) => Result>;
    // The extension's functions, and sock_accept, which it widens to V1's two arguments.
    if (
      (SOCKET_EXTENSION_FUNCTIONS as readonly string[]).includes(name) ||
      name === "sock_accept"
    ) {
      const extensionOnly = name !== "sock_accept";
      return (...args: never[]) => {
        const fn = this.#extension?.[name];
        if (fn) return fn(...(args as number[]));
        if (extensionOnly) return Errno.ENOTSUP;
        return this.#sockets!.sock_accept(...(args as unknown as [number, number, number]));
      };
    }
    if (SOCKET_FUNCTION.test(name)) {
      const method = (WasiSockets.prototype as unknown as Methods)[name];
      if (typeof method === "function") return (...args) => method.apply(this.#sockets, args);
    }
    const method = FS_FUNCTION.test(name)
      ? (WasiFs.prototype as unknown as Methods)[name]
      : undefined;
    if (typeof method !== "function") throw new Error(`wasmlet has no implementation of ${name}`);
    return (...args: never[]) => method.apply(this.#fs, args);
  }

  #guard(impl: (...args: never[]) => Result | undefined): ImportFunction {
    return (...args: never[]) => {
      this.#control.checkStop();
      if (!this.#memory || !this.#fs) return Errno.ENOSYS;
      this.checkMemory();
      try {
        const result = impl(...args);
        if (typeof result === "number" || result === undefined) return result;
        return result.catch((error: unknown) => this.#errno(error));
      } catch (error) {
        return this.#errno(error);
      }
    };
  }

  #errno(error: unknown): number {
    if (error instanceof StopRequested || error instanceof GuestExit) throw error;
    if (error instanceof GuestFault) return Errno.EFAULT;
    if (error instanceof GuestEncodingError) return Errno.EILSEQ;
    if (typeof (error as NodeJS.ErrnoException)?.code === "string") return hostErrno(error);
    if (error instanceof RangeError) return Errno.EFAULT;
    if (!this.#warned) {
      this.#warned = true;
      this.#options.onWarning(
        `WASI call failed inside wasmlet: ${(error as Error)?.stack ?? error}`,
      );
    }
    return Errno.EIO;
  }

  /**
   * Publishes the memory size and ends the guest when it, or it with the other instances sharing
   * its limit, is above the limit. Called at every WASI call and yield point.
   */
  checkMemory(): void {
    if (!this.#memory) return;
    const bytes = this.#memory.byteLength;
    this.#control.publishMemory(bytes);
    const limit = this.#options.memoryLimitBytes;
    if (limit === undefined) return;
    if (bytes > limit) {
      throw new GuestExit({
        kind: "memory-limit",
        message: `linear memory grew to ${bytes} bytes, above the limit of ${limit}`,
      });
    }
    // The instance whose growth crossed the shared limit is the one that ends.
    const grew = bytes > this.#checkedBytes;
    this.#checkedBytes = bytes;
    if (!grew) return;
    const together = this.#options.memoryGroupBytes();
    if (together > limit) {
      throw new GuestExit({
        kind: "memory-limit",
        message: `the container and its execs hold ${together} bytes of linear memory together, above the limit of ${limit}`,
      });
    }
  }

  /**
   * Suspends the guest until the host rings its doorbell or `timeoutMs` passes. Unfinished output
   * lines are made visible first, and the guest's CPU clock stops while it waits.
   */
  async #wait(bell: number, timeoutMs: number): Promise<void> {
    this.#options.output.flush();
    await this.#clock.wait(bell, timeoutMs);
    this.checkMemory();
  }

  #readStdin(buffers: Uint8Array[], nonblocking: boolean): number | Promise<number> {
    const control = this.#control;
    return control.answerOrWait(
      () => {
        const n = control.readStdin(buffers);
        if (n > 0) return n;
        if (control.stdinState().closed || buffers.every((b) => b.length === 0)) return 0;
        return nonblocking ? -Errno.EAGAIN : undefined;
      },
      (bell) => this.#wait(bell, Number.POSITIVE_INFINITY),
    );
  }

  #ownFunctions(): Record<string, (...args: never[]) => Result | undefined> {
    return {
      args_get: (argv: number, buffer: number) => this.#strings(this.#args, argv, buffer),
      args_sizes_get: (count: number, size: number) => this.#sizes(this.#args, count, size),
      environ_get: (environ: number, buffer: number) => this.#strings(this.#env, environ, buffer),
      environ_sizes_get: (count: number, size: number) => this.#sizes(this.#env, count, size),
      clock_res_get: (id: number, out: number) => {
        if (id >>> 0 > Clock.THREAD_CPUTIME) return Errno.EINVAL;
        this.#memory!.setU64(out, 1000n);
        return Errno.SUCCESS;
      },
      clock_time_get: (id: number, _precision: bigint, out: number) => {
        const time = this.#now(id >>> 0);
        if (time === undefined) return Errno.EINVAL;
        this.#memory!.setU64(out, time);
        return Errno.SUCCESS;
      },
      random_get: (pointer: number, length: number) => {
        randomFillSync(this.#memory!.bytes(pointer, length));
        return Errno.SUCCESS;
      },
      sched_yield: async () => {
        this.#clock.pause();
        await new Promise((resolve) => setImmediate(resolve));
        this.#control.checkStop();
        await this.#clock.resume();
        return Errno.SUCCESS;
      },
      poll_oneoff: (input: number, output: number, count: number, neventsOut: number) =>
        this.#pollOneoff(input, output, count, neventsOut),
      proc_exit: (code: number) => {
        throw new GuestExit({ kind: "exit", code: code >>> 0 });
      },
      proc_raise: () => Errno.ENOSYS,
    };
  }

  /** The time of a preview1 clock in ns; the CPU-time clocks count this guest's own CPU time. */
  #now(clock: number): bigint | undefined {
    switch (clock) {
      case Clock.REALTIME:
        return realtimeNs();
      case Clock.MONOTONIC:
        return process.hrtime.bigint();
      case Clock.PROCESS_CPUTIME:
      case Clock.THREAD_CPUTIME:
        return BigInt(Math.round(this.#clock.cpuMs * 1e6));
      default:
        return undefined;
    }
  }

  #sizes(items: Uint8Array[], countPointer: number, sizePointer: number): number {
    this.#memory!.setU32(countPointer, items.length);
    this.#memory!.setU32(
      sizePointer,
      items.reduce((total, item) => total + item.length, 0),
    );
    return Errno.SUCCESS;
  }

  #strings(items: Uint8Array[], pointers: number, buffer: number): number {
    const m = this.#memory!;
    m.check(pointers, items.length * 4);
    let at = buffer >>> 0;
    items.forEach((item, i) => {
      m.bytes(at, item.length).set(item);
      m.setU32(pointers + i * 4, at);
      at += item.length;
    });
    return Errno.SUCCESS;
  }

  /**
   * Waits for the first of: a clock deadline, stdin readable or closed, a socket ready, a stop
   * request. Files and stdout/stderr are always ready. When something is ready at once the guest is not suspended.
   */
  #pollOneoff(input: number, output: number, count: number, neventsOut: number): Result {
    const m = this.#memory!;
    const n = count >>> 0;
    if (n === 0) return Errno.EINVAL;
    m.check(input, n * SUBSCRIPTION_SIZE);
    m.check(output, n * EVENT_SIZE);
    m.check(neventsOut, 4);
    const start = process.hrtime.bigint();
    const subs: Subscription[] = [];
    for (let i = 0; i < n; i++) {
      const at = input + i * SUBSCRIPTION_SIZE;
      const type = m.u8(at + 8);
      const sub: Subscription = {
        userdata: m.u64(at),
        type,
        fd: -1,
        deadline: 0n,
        error: Errno.SUCCESS,
      };
      if (type === Eventtype.CLOCK) {
        const clock = m.u32(at + 16);
        const timeout = m.u64(at + 24);
        const absolute = (m.u16(at + 40) & SUBCLOCKFLAGS_ABSTIME) !== 0;
        if (clock === Clock.REALTIME) {
          sub.deadline = absolute ? start + (timeout - realtimeNs()) : start + timeout;
        } else if (clock === Clock.MONOTONIC) {
          sub.deadline = absolute ? timeout : start + timeout;
        } else if (clock === Clock.PROCESS_CPUTIME || clock === Clock.THREAD_CPUTIME) {
          sub.deadline = start + timeout;
        } else {
          sub.error = Errno.EINVAL;
        }
      } else if (type === Eventtype.FD_READ || type === Eventtype.FD_WRITE) {
        sub.fd = m.u32(at + 16);
      } else {
        return Errno.EINVAL;
      }
      subs.push(sub);
    }
    /** The earliest clock deadline to wait for (undefined: none). */
    let next: bigint | undefined;
    return this.#control.answerOrWait(
      () => {
        const ready = this.#pollReady(subs, output, neventsOut);
        if (typeof ready === "number") return ready;
        next = ready;
        return undefined;
      },
      (bell) => {
        const timeout =
          next === undefined
            ? Number.POSITIVE_INFINITY
            : Number(next - process.hrtime.bigint()) / 1e6;
        return this.#wait(bell, Math.max(0, timeout));
      },
    );
  }

  /**
   * Writes the events of the subscriptions that are ready and returns SUCCESS, or, when none is,
   * returns the earliest clock deadline to wait for (undefined: none).
   */
  #pollReady(
    subs: Subscription[],
    output: number,
    neventsOut: number,
  ): number | bigint | undefined {
    const m = this.#memory!;
    const now = process.hrtime.bigint();
    let ready = 0;
    let next: bigint | undefined;
    for (const sub of subs) {
      let nbytes = 0n;
      let flags = 0;
      let fire = sub.error !== Errno.SUCCESS;
      if (!fire && sub.type === Eventtype.CLOCK) {
        if (sub.deadline <= now) fire = true;
        else if (next === undefined || sub.deadline < next) next = sub.deadline;
      } else if (!fire) {
        const entry = this.#fs!.entry(sub.fd);
        const reading = sub.type === Eventtype.FD_READ;
        if (!entry) {
          sub.error = Errno.EBADF;
        } else if (entry.kind === "stdin") {
          if (!reading) sub.error = Errno.EBADF;
          else {
            const state = this.#control.stdinState();
            if (state.available > 0) nbytes = BigInt(state.available);
            if (state.closed) flags = EVENTRWFLAGS_HANGUP;
            fire = state.available > 0 || state.closed;
          }
        } else if (entry.kind === "stdout" || entry.kind === "stderr") {
          if (reading) sub.error = Errno.EBADF;
          else fire = true;
        } else if (entry.kind === "socket") {
          const ready = this.#sockets!.readiness(entry, reading);
          if (typeof ready === "number") sub.error = ready;
          else if (ready) {
            nbytes = BigInt(ready.nbytes);
            flags = ready.flags;
            fire = true;
          }
        } else {
          fire = true;
        }
        if (sub.error !== Errno.SUCCESS) fire = true;
      }
      if (!fire) continue;
      const at = output + ready * EVENT_SIZE;
      m.zero(at, EVENT_SIZE);
      m.setU64(at, sub.userdata);
      m.setU16(at + 8, sub.error);
      m.setU8(at + 10, sub.type);
      if (sub.type !== Eventtype.CLOCK) {
        m.setU64(at + 16, nbytes);
        m.setU16(at + 24, flags);
      }
      ready++;
    }
    if (ready === 0) return next;
    m.setU32(neventsOut, ready);
    return Errno.SUCCESS;
  }
}

interface Subscription {
  userdata: bigint;
  type: number;
  fd: number;
  /** Monotonic deadline (ns) for clocks. */
  deadline: bigint;
  error: number;
}
