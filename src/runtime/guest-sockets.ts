// The sockets a guest holds, living in its worker's event loop: the listeners wasmlet opens for the
// container's ports (handed to the guest as pre-opened descriptors), the connections accepted from
// them, and the ones the guest opens itself.
//
// Nothing here blocks or throws at the guest: every operation answers now (a byte count, 0 at the
// end of the stream, or -errno) or "not yet" (undefined), and the caller suspends the guest until
// `wake` rings its doorbell (on data, end, error, drain or a new connection).
//
// Buffering is bounded both ways: a connection stops reading from the kernel once
// RECEIVE_BUFFER_BYTES wait for the guest (TCP's window then holds the peer back), and a guest's
// write waits while SEND_BUFFER_BYTES are queued for a peer that does not read.
import { createServer, type Server, Socket } from "node:net";
import type { DescriptorBudget } from "./descriptor-budget.ts";
import { Errno, HOST_ERRNO, Sdflags } from "./wasi-abi.ts";

export const RECEIVE_BUFFER_BYTES = 256 * 1024;
export const SEND_BUFFER_BYTES = 256 * 1024;
/** One write takes at most this much of the guest's memory (a pipe's short write). */
const MAX_WRITE_BYTES = 1024 * 1024;

export interface ListenAddress {
  /** The containerPort's name, or its number when unnamed (LISTEN_FDNAMES). */
  name: string;
  host: string;
  port: number;
}

/** Connections of one container, together: accepted and opened, pending ones included. */
export class ConnectionLimit {
  readonly max: number;
  #live = 0;
  #refused = 0;
  readonly #onRefused: (refused: number) => void;

  constructor(max: number, onRefused: (refused: number) => void) {
    this.max = max;
    this.#onRefused = onRefused;
  }

  take(): boolean {
    if (this.#live >= this.max) {
      this.#onRefused(++this.#refused);
      return false;
    }
    this.#live++;
    return true;
  }

  give(): void {
    this.#live--;
  }
}

function socketErrno(error: unknown): number {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return (code && HOST_ERRNO[code]) || Errno.ECONNRESET;
}

/** What a connection is owed when it closes: its descriptor and its place under the limit. */
export interface Release {
  budget: DescriptorBudget;
  limit: ConnectionLimit;
}

export class GuestConnection {
  readonly #socket: Socket;
  readonly #wake: () => void;
  readonly #release: Release;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #paused = false;
  /** The peer sent FIN. */
  #ended = false;
  #readShut = false;
  #writeShut = false;
  #errno = 0;
  /** SO_ERROR reported the error already (it reads it once, as getsockopt does). */
  #errorTaken = false;
  #closed = false;

  /** Opens a connection to host:port; it is `connecting` until it succeeds or fails. */
  static connect(host: string, port: number, wake: () => void, release: Release): GuestConnection {
    const socket = new Socket();
    const connection = new GuestConnection(socket, wake, release);
    socket.connect({ host, port });
    return connection;
  }

  /** Takes over `socket` (its descriptor and limit already taken, released on close). */
  constructor(socket: Socket, wake: () => void, release: Release) {
    this.#socket = socket;
    this.#wake = wake;
    this.#release = release;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      if (this.#readShut) return;
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#buffered >= RECEIVE_BUFFER_BYTES && !this.#paused) {
        this.#paused = true;
        socket.pause();
      }
      wake();
    });
    socket.on("end", () => {
      this.#ended = true;
      wake();
    });
    socket.on("error", (error) => {
      this.#errno ||= socketErrno(error);
      wake();
    });
    socket.on("drain", wake);
    socket.on("connect", wake);
    socket.on("close", wake);
    socket.resume();
  }

  /** Still connecting (an outbound connection). */
  get connecting(): boolean {
    return this.#socket.connecting && this.#errno === 0;
  }

  /** The error that ended the connection (0: none). */
  get error(): number {
    return this.#errno;
  }

  /** SO_ERROR: the pending error once, then 0. */
  takeError(): number {
    if (this.#errno === 0 || this.#errorTaken) return 0;
    this.#errorTaken = true;
    return this.#errno;
  }

  get available(): number {
    return this.#buffered;
  }

  /** No more data will arrive (what is buffered can still be read). */
  get atEnd(): boolean {
    return this.#ended || this.#readShut || this.#errno !== 0 || this.#socket.destroyed;
  }

  /** A read would answer now. */
  get readable(): boolean {
    return this.#buffered > 0 || this.atEnd;
  }

  /** A write would answer now. */
  get writable(): boolean {
    if (this.#errno !== 0 || this.#writeShut) return true;
    return !this.#socket.connecting && this.#socket.writableLength < SEND_BUFFER_BYTES;
  }

  /** The peer is gone both ways, or the connection failed. */
  get hungUp(): boolean {
    return this.#errno !== 0 || (this.#ended && this.#socket.destroyed);
  }

  localAddress(): { address: string; port: number } | undefined {
    const { localAddress, localPort } = this.#socket;
    return localAddress && localPort ? { address: localAddress, port: localPort } : undefined;
  }

  remoteAddress(): { address: string; port: number } | undefined {
    const { remoteAddress, remotePort } = this.#socket;
    return remoteAddress && remotePort ? { address: remoteAddress, port: remotePort } : undefined;
  }

  /** Bytes copied into `buffers`, 0 at end of stream, -errno, or undefined: nothing yet. */
  read(buffers: Uint8Array[], peek = false): number | undefined {
    if (this.#buffered === 0) {
      if (this.#readShut || this.#ended) return 0;
      if (this.#errno !== 0) return -this.#errno;
      if (this.#socket.connecting) return undefined;
      if (this.#socket.destroyed) return 0;
      return undefined;
    }
    let total = 0;
    let chunkIndex = 0;
    let offset = 0;
    for (const buffer of buffers) {
      let filled = 0;
      while (filled < buffer.length && chunkIndex < this.#chunks.length) {
        const chunk = this.#chunks[chunkIndex]!;
        const n = Math.min(buffer.length - filled, chunk.length - offset);
        buffer.set(chunk.subarray(offset, offset + n), filled);
        filled += n;
        offset += n;
        if (offset === chunk.length) {
          chunkIndex++;
          offset = 0;
        }
      }
      total += filled;
      if (chunkIndex === this.#chunks.length) break;
    }
    if (!peek) {
      this.#chunks.splice(0, chunkIndex);
      if (offset > 0) this.#chunks[0] = this.#chunks[0]!.subarray(offset);
      this.#buffered -= total;
      if (this.#paused && this.#buffered < RECEIVE_BUFFER_BYTES / 2) {
        this.#paused = false;
        this.#socket.resume();
      }
    }
    return total;
  }

  /** Bytes queued from `buffers`, -errno, or undefined: the send buffer is full. */
  write(buffers: Uint8Array[]): number | undefined {
    if (this.#errno !== 0) return -this.#errno;
    if (this.#writeShut || this.#socket.destroyed) return -Errno.EPIPE;
    if (this.#socket.connecting) return undefined;
    const room = SEND_BUFFER_BYTES - this.#socket.writableLength;
    if (room <= 0) return undefined;
    let total = 0;
    const parts: Buffer[] = [];
    for (const buffer of buffers) {
      const n = Math.min(buffer.length, MAX_WRITE_BYTES - total);
      if (n <= 0) break;
      // A copy: the guest's memory changes under a queued write.
      parts.push(Buffer.from(buffer.subarray(0, n)));
      total += n;
    }
    if (total > 0) this.#socket.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
    return total;
  }

  shutdown(how: number): number {
    if (how === 0 || how & ~(Sdflags.RD | Sdflags.WR)) return Errno.EINVAL;
    if (this.#socket.connecting || this.#socket.destroyed) return Errno.ENOTCONN;
    if (how & Sdflags.RD) {
      this.#readShut = true;
      this.#chunks = [];
      this.#buffered = 0;
    }
    if (how & Sdflags.WR && !this.#writeShut) {
      this.#writeShut = true;
      this.#socket.end();
    }
    this.#wake();
    return Errno.SUCCESS;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#chunks = [];
    this.#buffered = 0;
    // Queued data still goes out (as close(2) does); a peer that never reads gets a reset.
    if (this.#writeShut || this.#socket.writableLength === 0) this.#socket.destroySoon();
    else this.#socket.end(() => this.#socket.destroy());
    // A peer that never takes the rest gets a reset after 5 s; a closed socket is forgotten at once.
    const reset = setTimeout(() => this.#socket.destroy(), 5000).unref();
    this.#socket.once("close", () => clearTimeout(reset));
    this.#release.budget.give();
    this.#release.limit.give();
  }
}

/** A socket the guest opened (sock_open) and has not connected yet: it holds nothing. */
export class UnconnectedSocket {
  readonly family: 4 | 6;
  constructor(family: 4 | 6) {
    this.family = family;
  }
  close(): void {}
}

export class GuestListener {
  readonly address: ListenAddress;
  readonly #server: Server;
  readonly #pending: Socket[] = [];
  readonly #wake: () => void;
  readonly #release: Release;
  #closed = false;

  private constructor(address: ListenAddress, server: Server, wake: () => void, release: Release) {
    this.address = address;
    this.#server = server;
    this.#wake = wake;
    this.#release = release;
    server.on("connection", (socket) => {
      socket.on("error", () => {});
      if (this.#closed || !release.limit.take()) {
        socket.resetAndDestroy();
        return;
      }
      if (!release.budget.take()) {
        release.limit.give();
        socket.resetAndDestroy();
        return;
      }
      this.#pending.push(socket);
      socket.once("close", () => {
        const at = this.#pending.indexOf(socket);
        if (at >= 0) {
          this.#pending.splice(at, 1);
          release.budget.give();
          release.limit.give();
        }
      });
      wake();
    });
    server.on("error", () => {});
  }

  /** Listens on the address; rejects with the host's error (e.g. EADDRINUSE). */
  static open(address: ListenAddress, wake: () => void, release: Release): Promise<GuestListener> {
    return new Promise((resolve, reject) => {
      const server = createServer({ pauseOnConnect: true, noDelay: true });
      server.once("error", reject);
      // The listener's own descriptor counts like a pre-opened directory: always granted.
      release.budget.take(true);
      server.listen({ host: address.host, port: address.port, backlog: 511 }, () => {
        server.off("error", reject);
        resolve(new GuestListener(address, server, wake, release));
      });
      server.once("error", () => release.budget.give());
    });
  }

  get readable(): boolean {
    return this.#pending.length > 0 || this.#closed;
  }

  get pending(): number {
    return this.#pending.length;
  }

  /** The next connection, or undefined when none is waiting. */
  accept(): GuestConnection | undefined {
    const socket = this.#pending.shift();
    if (!socket) return undefined;
    socket.removeAllListeners("close");
    return new GuestConnection(socket, this.#wake, this.#release);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.close();
    for (const socket of this.#pending.splice(0)) {
      socket.removeAllListeners("close");
      socket.resetAndDestroy();
      this.#release.budget.give();
      this.#release.limit.give();
    }
    this.#release.budget.give();
  }
}

/** Opens every listener, or none: on a failure the opened ones are closed again. */
export async function openListeners(
  addresses: ListenAddress[],
  wake: () => void,
  release: Release,
): Promise<GuestListener[]> {
  const opened: GuestListener[] = [];
  try {
    for (const address of addresses) opened.push(await GuestListener.open(address, wake, release));
    return opened;
  } catch (error) {
    for (const listener of opened) listener.close();
    throw error;
  }
}
