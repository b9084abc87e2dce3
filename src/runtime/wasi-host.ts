// wasmlet's preview1 import object. node:wasi provides only what is harmless in it (args, environ,
// clocks, random, sched_yield); wasmlet owns the rest:
// - every descriptor and file-system function (wasi-fs.ts: containment, read-only mounts, cleanup);
// - stdin/stdout/stderr (control.ts channel, guest-output.ts log records or stream);
// - poll_oneoff, whose sleeps wait on the control block so a stop request cuts them short;
// - proc_exit (unwinds the guest), proc_raise (ENOSYS: node:wasi would signal wasmlet's own
//   process), sock_* (ENOTSUP: node:wasi crashes the whole process on sock_accept of fd 0-2).
// Every call first checks for a stop request and publishes the memory size, and maps whatever a
// call throws to an errno: no guest input reaches wasmlet as an exception.
import { WASI } from "node:wasi";
import { type GuestControl, StopRequested } from "./control.ts";
import { GuestEncodingError, GuestFault, GuestMemory } from "./guest-memory.ts";
import type { GuestOutput } from "./guest-output.ts";
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
  control: GuestControl;
  output: GuestOutput;
  memoryLimitBytes: number | undefined;
  onWarning(message: string): void;
}

/** Functions taken from node:wasi as they are. */
const FROM_NODE = [
  "args_get",
  "args_sizes_get",
  "environ_get",
  "environ_sizes_get",
  "clock_res_get",
  "clock_time_get",
  "random_get",
  "sched_yield",
] as const;

type ImportFunction = (...args: never[]) => number | undefined;

function realtimeNs(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
}

export class WasiHost {
  readonly #options: WasiHostOptions;
  readonly #wasi: WASI;
  readonly #control: GuestControl;
  #memory: GuestMemory | undefined;
  #fs: WasiFs | undefined;
  #warned = false;

  constructor(options: WasiHostOptions) {
    this.#options = options;
    this.#control = options.control;
    this.#wasi = new WASI({
      version: "preview1",
      args: options.args,
      env: options.env,
      returnOnExit: true,
    });
  }

  /** The `wasi_snapshot_preview1` import object. */
  imports(): Record<string, ImportFunction> {
    const node = this.#wasi.wasiImport as Record<string, (...args: unknown[]) => number>;
    const own = this.#ownFunctions();
    const out: Record<string, ImportFunction> = {};
    for (const name of Object.keys(WASI_FUNCTIONS)) {
      const impl =
        own[name] ?? ((FROM_NODE as readonly string[]).includes(name) ? node[name] : undefined);
      if (!impl) throw new Error(`wasmlet has no implementation of ${name}`);
      out[name] = name === "proc_exit" ? (impl as ImportFunction) : this.#guard(impl);
    }
    return out;
  }

  /** Binds the instance's memory; call before the entrypoint. */
  bind(instance: WebAssembly.Instance, memory: WebAssembly.Memory): void {
    this.#wasi.finalizeBindings(instance, { memory });
    this.#memory = new GuestMemory(memory);
    const stdio = {
      readStdin: (buffers: Uint8Array[], nonblocking: boolean) =>
        this.#readStdin(buffers, nonblocking),
      writeOutput: (stream: "stdout" | "stderr", buffers: Uint8Array[]) =>
        this.#options.output.write(stream, buffers),
    };
    this.#fs = new WasiFs(this.#memory, stdio, this.#options.mounts);
    this.#control.publishMemory(this.#memory.byteLength);
  }

  memoryBytes(): number {
    return this.#memory?.byteLength ?? 0;
  }

  /** Closes the guest's host descriptors. */
  close(): void {
    this.#fs?.closeAll();
  }

  #guard(impl: (...args: never[]) => number): ImportFunction {
    return (...args: never[]) => {
      this.#control.checkStop();
      if (!this.#memory || !this.#fs) return Errno.ENOSYS;
      this.#publishMemory();
      try {
        return impl(...args);
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

  #publishMemory(): void {
    const bytes = this.#memory!.byteLength;
    this.#control.publishMemory(bytes);
    const limit = this.#options.memoryLimitBytes;
    if (limit !== undefined && bytes > limit) {
      throw new GuestExit({
        kind: "memory-limit",
        message: `linear memory grew to ${bytes} bytes, above the limit of ${limit}`,
      });
    }
  }

  #readStdin(buffers: Uint8Array[], nonblocking: boolean): number {
    const control = this.#control;
    for (;;) {
      const bell = control.doorbell();
      const n = control.readStdin(buffers);
      if (n > 0) return n;
      const state = control.stdinState();
      if (state.closed) return 0;
      if (buffers.every((b) => b.length === 0)) return 0;
      if (nonblocking) return -Errno.EAGAIN;
      this.#options.output.flush();
      control.wait(bell, Number.POSITIVE_INFINITY);
    }
  }

  #ownFunctions(): Record<string, (...args: never[]) => number> {
    const fs = () => this.#fs!;
    const notSupported = () => Errno.ENOTSUP;
    return {
      fd_advise: (fd: number, offset: bigint, length: bigint, advice: number) =>
        fs().fd_advise(fd, offset, length, advice),
      fd_allocate: (fd: number, offset: bigint, length: bigint) =>
        fs().fd_allocate(fd, offset, length),
      fd_close: (fd: number) => fs().fd_close(fd),
      fd_datasync: (fd: number) => fs().fd_datasync(fd),
      fd_fdstat_get: (fd: number, out: number) => fs().fd_fdstat_get(fd, out),
      fd_fdstat_set_flags: (fd: number, flags: number) => fs().fd_fdstat_set_flags(fd, flags),
      fd_fdstat_set_rights: (fd: number, base: bigint, inheriting: bigint) =>
        fs().fd_fdstat_set_rights(fd, base, inheriting),
      fd_filestat_get: (fd: number, out: number) => fs().fd_filestat_get(fd, out),
      fd_filestat_set_size: (fd: number, size: bigint) => fs().fd_filestat_set_size(fd, size),
      fd_filestat_set_times: (fd: number, atim: bigint, mtim: bigint, flags: number) =>
        fs().fd_filestat_set_times(fd, atim, mtim, flags),
      fd_pread: (fd: number, iovs: number, count: number, offset: bigint, out: number) =>
        fs().fd_pread(fd, iovs, count, offset, out),
      fd_prestat_get: (fd: number, out: number) => fs().fd_prestat_get(fd, out),
      fd_prestat_dir_name: (fd: number, path: number, length: number) =>
        fs().fd_prestat_dir_name(fd, path, length),
      fd_pwrite: (fd: number, iovs: number, count: number, offset: bigint, out: number) =>
        fs().fd_pwrite(fd, iovs, count, offset, out),
      fd_read: (fd: number, iovs: number, count: number, out: number) =>
        fs().fd_read(fd, iovs, count, out),
      fd_readdir: (fd: number, buffer: number, length: number, cookie: bigint, out: number) =>
        fs().fd_readdir(fd, buffer, length, cookie, out),
      fd_renumber: (from: number, to: number) => fs().fd_renumber(from, to),
      fd_seek: (fd: number, offset: bigint, whence: number, out: number) =>
        fs().fd_seek(fd, offset, whence, out),
      fd_sync: (fd: number) => fs().fd_sync(fd),
      fd_tell: (fd: number, out: number) => fs().fd_tell(fd, out),
      fd_write: (fd: number, iovs: number, count: number, out: number) =>
        fs().fd_write(fd, iovs, count, out),
      path_create_directory: (fd: number, path: number, length: number) =>
        fs().path_create_directory(fd, path, length),
      path_filestat_get: (fd: number, flags: number, path: number, length: number, out: number) =>
        fs().path_filestat_get(fd, flags, path, length, out),
      path_filestat_set_times: (
        fd: number,
        flags: number,
        path: number,
        length: number,
        atim: bigint,
        mtim: bigint,
        fstflags: number,
      ) => fs().path_filestat_set_times(fd, flags, path, length, atim, mtim, fstflags),
      path_link: (
        oldFd: number,
        oldFlags: number,
        oldPath: number,
        oldLength: number,
        newFd: number,
        newPath: number,
        newLength: number,
      ) => fs().path_link(oldFd, oldFlags, oldPath, oldLength, newFd, newPath, newLength),
      path_open: (
        fd: number,
        dirflags: number,
        path: number,
        length: number,
        oflags: number,
        base: bigint,
        inheriting: bigint,
        fdflags: number,
        out: number,
      ) => fs().path_open(fd, dirflags, path, length, oflags, base, inheriting, fdflags, out),
      path_readlink: (
        fd: number,
        path: number,
        length: number,
        buffer: number,
        bufferLength: number,
        out: number,
      ) => fs().path_readlink(fd, path, length, buffer, bufferLength, out),
      path_remove_directory: (fd: number, path: number, length: number) =>
        fs().path_remove_directory(fd, path, length),
      path_rename: (
        fd: number,
        oldPath: number,
        oldLength: number,
        newFd: number,
        newPath: number,
        newLength: number,
      ) => fs().path_rename(fd, oldPath, oldLength, newFd, newPath, newLength),
      path_symlink: (
        oldPath: number,
        oldLength: number,
        fd: number,
        newPath: number,
        newLength: number,
      ) => fs().path_symlink(oldPath, oldLength, fd, newPath, newLength),
      path_unlink_file: (fd: number, path: number, length: number) =>
        fs().path_unlink_file(fd, path, length),
      poll_oneoff: (input: number, output: number, count: number, neventsOut: number) =>
        this.#pollOneoff(input, output, count, neventsOut),
      proc_exit: (code: number) => {
        throw new GuestExit({ kind: "exit", code: code >>> 0 });
      },
      proc_raise: () => Errno.ENOSYS,
      sock_accept: notSupported,
      sock_recv: notSupported,
      sock_send: notSupported,
      sock_shutdown: notSupported,
    };
  }

  /**
   * Waits for the first of: a clock deadline, stdin readable or closed, a stop request. Files and
   * stdout/stderr are always ready. Sleeps on the control block, never in the host.
   */
  #pollOneoff(input: number, output: number, count: number, neventsOut: number): number {
    const m = this.#memory!;
    const n = count >>> 0;
    if (n === 0) return Errno.EINVAL;
    m.check(input, n * SUBSCRIPTION_SIZE);
    m.check(output, n * EVENT_SIZE);
    m.check(neventsOut, 4);
    interface Sub {
      userdata: bigint;
      type: number;
      fd: number;
      /** Monotonic deadline (ns) for clocks. */
      deadline: bigint;
      error: number;
    }
    const start = process.hrtime.bigint();
    const subs: Sub[] = [];
    for (let i = 0; i < n; i++) {
      const at = input + i * SUBSCRIPTION_SIZE;
      const type = m.u8(at + 8);
      const sub: Sub = { userdata: m.u64(at), type, fd: -1, deadline: 0n, error: Errno.SUCCESS };
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
    for (;;) {
      const bell = this.#control.doorbell();
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
      if (ready > 0) {
        m.setU32(neventsOut, ready);
        return Errno.SUCCESS;
      }
      this.#options.output.flush();
      const timeout = next === undefined ? Number.POSITIVE_INFINITY : Number(next - now) / 1e6;
      this.#control.wait(bell, timeout);
      this.#publishMemory();
    }
  }
}
