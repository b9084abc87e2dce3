// preview1's socket functions (sock_accept, sock_recv, sock_send, sock_shutdown) and the socket
// half of poll_oneoff, over the guest's socket descriptors (guest-sockets.ts). fd_read, fd_write
// and fd_close on a socket are WasiFs's, which hands them to the same GuestConnection.
// A call on a blocking descriptor that cannot answer yet suspends only its guest; on a
// non-blocking one it answers EAGAIN, and the guest polls (Go's network poller does that).
import type { GuestMemory } from "./guest-memory.ts";
import { GuestConnection, GuestListener } from "./guest-sockets.ts";
import { Errno, EVENTRWFLAGS_HANGUP, Fdflags, Riflags } from "./wasi-abi.ts";
import type { SocketEntry, WasiFs } from "./wasi-fs.ts";

/** What poll_oneoff reports for one socket subscription; undefined: not ready. */
export interface SocketReadiness {
  nbytes: number;
  flags: number;
}

export class WasiSockets {
  readonly #memory: GuestMemory;
  readonly #fs: WasiFs;

  constructor(memory: GuestMemory, fs: WasiFs) {
    this.#memory = memory;
    this.#fs = fs;
  }

  #socket(fd: number): SocketEntry | number {
    const entry = this.#fs.entry(fd);
    if (!entry) return Errno.EBADF;
    if (entry.kind !== "socket") return Errno.ENOTSOCK;
    return entry;
  }

  #connection(fd: number): { entry: SocketEntry; socket: GuestConnection } | number {
    const entry = this.#socket(fd);
    if (typeof entry === "number") return entry;
    if (!(entry.socket instanceof GuestConnection)) return Errno.ENOTCONN;
    return { entry, socket: entry.socket };
  }

  /** Stores a count (or the descriptor) when it is known; -errno becomes the errno. */
  #settle(result: number | Promise<number>, pointer: number): number | Promise<number> {
    const store = (n: number) => {
      if (n < 0) return -n;
      this.#memory.setU32(pointer, n);
      return Errno.SUCCESS;
    };
    return typeof result === "number" ? store(result) : result.then(store);
  }

  sock_accept(fd: number, flags: number, fdOut: number): number | Promise<number> {
    const entry = this.#socket(fd);
    if (typeof entry === "number") return entry;
    const listener = entry.socket;
    if (!(listener instanceof GuestListener)) return Errno.EINVAL;
    if (flags & ~Fdflags.NONBLOCK) return Errno.EINVAL;
    this.#memory.check(fdOut, 4);
    return this.#settle(
      this.#fs.transfer(entry, () => {
        const connection = listener.accept();
        return connection && this.#fs.insertSocket(connection, flags & Fdflags.NONBLOCK);
      }),
      fdOut,
    );
  }

  sock_recv(
    fd: number,
    iovs: number,
    iovsLength: number,
    riFlags: number,
    nreadOut: number,
    roFlagsOut: number,
  ): number | Promise<number> {
    const found = this.#connection(fd);
    if (typeof found === "number") return found;
    const { entry, socket } = found;
    if (riFlags & ~(Riflags.RECV_PEEK | Riflags.RECV_WAITALL)) return Errno.EINVAL;
    const m = this.#memory;
    m.check(nreadOut, 4);
    m.check(roFlagsOut, 2);
    const buffers = m.iovecs(iovs, iovsLength);
    const wanted = buffers.reduce((total, b) => total + b.length, 0);
    const peek = (riFlags & Riflags.RECV_PEEK) !== 0;
    const waitAll = (riFlags & Riflags.RECV_WAITALL) !== 0;
    m.setU16(roFlagsOut, 0);
    return this.#settle(
      this.#fs.transfer(entry, () => {
        // MSG_WAITALL: hold out for the whole request unless the stream ends first.
        if (waitAll && socket.available < wanted && !socket.atEnd) return undefined;
        return socket.read(buffers, peek);
      }),
      nreadOut,
    );
  }

  sock_send(
    fd: number,
    iovs: number,
    iovsLength: number,
    _siFlags: number,
    nwrittenOut: number,
  ): number | Promise<number> {
    const found = this.#connection(fd);
    if (typeof found === "number") return found;
    const { entry, socket } = found;
    this.#memory.check(nwrittenOut, 4);
    const buffers = this.#memory.iovecs(iovs, iovsLength);
    return this.#settle(
      this.#fs.transfer(entry, () => socket.write(buffers)),
      nwrittenOut,
    );
  }

  sock_shutdown(fd: number, how: number): number {
    const found = this.#connection(fd);
    if (typeof found === "number") return found;
    return found.socket.shutdown(how);
  }

  /** poll_oneoff on a socket: ready or not, and what to report. */
  readiness(entry: SocketEntry, reading: boolean): SocketReadiness | number | undefined {
    const { socket } = entry;
    if (socket instanceof GuestListener) {
      if (!reading) return Errno.EINVAL;
      return socket.readable ? { nbytes: socket.pending, flags: 0 } : undefined;
    }
    // Not connected: nothing will come, and a write fails at once (as poll(2) says POLLHUP).
    if (!(socket instanceof GuestConnection)) return { nbytes: 0, flags: EVENTRWFLAGS_HANGUP };
    const flags = socket.hungUp ? EVENTRWFLAGS_HANGUP : 0;
    if (reading) return socket.readable ? { nbytes: socket.available, flags } : undefined;
    return socket.writable ? { nbytes: 0, flags } : undefined;
  }
}
