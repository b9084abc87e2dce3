// Outbound sockets for preview1 guests: the WasmEdge socket extension of `wasi_snapshot_preview1`,
// which the guest libraries that reach the network from preview1 use most (Rust's
// wasmedge_wasi_socket and the tokio/hyper/reqwest forks on it, Go's dispatchrun/net, wasmedge-
// quickjs); the contract, and why not WASIX, is docs/socket-abi.md. TCP only (a datagram socket is
// refused with ENOTSUP), connecting only: a guest listens through its containerPorts (pre-opened
// listeners), so bind and listen answer EACCES. Where a guest may connect is outbound-policy.ts;
// names resolve through this host's resolver (getaddrinfo, with /etc/hosts).
//
// Both generations of the extension share the import names, and one guest may mix them (V1
// `sock_accept`, V2 `sock_recv_from`): every function here tells them apart by how many arguments
// the guest's import declares, and address buffers by their length.
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { GuestMemory } from "./guest-memory.ts";
import {
  GuestConnection,
  GuestListener,
  type Release,
  UnconnectedSocket,
} from "./guest-sockets.ts";
import { type OutboundPolicy, outboundRefusal } from "./outbound-policy.ts";
import { Errno, Fdflags } from "./wasi-abi.ts";
import type { SocketEntry, WasiFs } from "./wasi-fs.ts";
import type { WasiSockets } from "./wasi-sockets.ts";

/** The extension's functions (beyond preview1's four sock_*). */
export const SOCKET_EXTENSION_FUNCTIONS = [
  "sock_open",
  "sock_bind",
  "sock_listen",
  "sock_connect",
  "sock_recv_from",
  "sock_send_to",
  "sock_getsockopt",
  "sock_setsockopt",
  "sock_getlocaladdr",
  "sock_getpeeraddr",
  "sock_getaddrinfo",
] as const;

const Family = { UNSPEC: 0, INET4: 1, INET6: 2 } as const;
const SockType = { ANY: 0, DGRAM: 1, STREAM: 2 } as const;
const SOL_SOCKET = 0;
const IPPROTO_TCP = 6;
const Opt = {
  SO_REUSEADDR: 0,
  SO_TYPE: 1,
  SO_ERROR: 2,
  SO_BROADCAST: 4,
  SO_SNDBUF: 5,
  SO_RCVBUF: 6,
  SO_KEEPALIVE: 7,
  SO_RCVTIMEO: 11,
  SO_SNDTIMEO: 12,
  SO_ACCEPTCONN: 13,
  TCP_NODELAY: 15,
} as const;
/** The resolver's errors (WasmEdge's numbers, past preview1's). */
const EAI = { AGAIN: 78, FAMILY: 81, MEMORY: 82, NODATA: 83, NONAME: 84 } as const;
/** An argument below this is a length by value; at or above it, a pointer to one. */
const LENGTH_OR_POINTER = 1024;
const ADDRINFO_SIZE = 28;
const STORAGE_BYTES = 128;
/** A name that takes longer than this to resolve is reported as EAI_AGAIN. */
const LOOKUP_TIMEOUT_MS = 4000;

export interface OutboundContext {
  policy: OutboundPolicy;
  /** The instance's connection limit and the node's descriptor budget. */
  release: Release;
  /** Rings the guest's doorbell. */
  wake(): void;
  /** Asks `attempt` until it answers, suspending the guest in between. */
  waitFor(attempt: () => number | undefined): number | Promise<number>;
}

interface Address {
  ip: string;
  family: 4 | 6;
}

function ipBytes(ip: string): Uint8Array {
  if (isIP(ip) === 4) return Uint8Array.from(ip.split(".").map(Number));
  const bytes = new Uint8Array(16);
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4[1]!.split(".").map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split("::") as [string, string | undefined];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  groups.forEach((group, i) => {
    const n = Number.parseInt(group, 16);
    bytes[i * 2] = n >> 8;
    bytes[i * 2 + 1] = n & 255;
  });
  return bytes;
}

function bytesToIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(":");
}

export class WasmEdgeSockets {
  readonly #memory: GuestMemory;
  readonly #fs: WasiFs;
  readonly #sockets: WasiSockets;
  readonly #context: OutboundContext;
  /** Socket options the guest set, by socket. */
  readonly #options = new WeakMap<object, Map<number, number>>();

  constructor(memory: GuestMemory, fs: WasiFs, sockets: WasiSockets, context: OutboundContext) {
    this.#memory = memory;
    this.#fs = fs;
    this.#sockets = sockets;
    this.#context = context;
  }

  /** The import functions, by name. */
  functions(): Record<string, (...args: number[]) => number | Promise<number>> {
    return {
      sock_open: (family, type, fdOut) => this.#open(family!, type!, fdOut!),
      sock_bind: (fd) => this.#refuseListening(fd!),
      sock_listen: (fd) => this.#refuseListening(fd!),
      // V1 has no flags: (fd, →fd).
      sock_accept: (...a) =>
        a.length === 2
          ? this.#sockets.sock_accept(a[0]!, 0, a[1]!)
          : this.#sockets.sock_accept(a[0]!, a[1]!, a[2]!),
      sock_connect: (fd, address, port) => this.#connect(fd!, address!, port!),
      sock_recv_from: (...a) => this.#recvFrom(a),
      sock_send_to: (fd, iovs, iovsLength, _address, _port, siFlags, nwrittenOut) =>
        this.#sockets.sock_send(fd!, iovs!, iovsLength!, siFlags!, nwrittenOut!),
      sock_getsockopt: (fd, level, name, value, length) =>
        this.#getOption(fd!, level!, name!, value!, length!),
      sock_setsockopt: (fd, level, name, value, length) =>
        this.#setOption(fd!, level!, name!, value!, length!),
      sock_getlocaladdr: (...a) => this.#socketAddress(a, "local"),
      sock_getpeeraddr: (...a) => this.#socketAddress(a, "peer"),
      sock_getaddrinfo: (node, nodeLength, service, serviceLength, hints, res, max, resLength) =>
        this.#getaddrinfo(
          node!,
          nodeLength!,
          service!,
          serviceLength!,
          hints!,
          res!,
          max!,
          resLength!,
        ),
    };
  }

  #entry(fd: number): SocketEntry | number {
    const entry = this.#fs.entry(fd);
    if (!entry) return Errno.EBADF;
    if (entry.kind !== "socket") return Errno.ENOTSOCK;
    return entry;
  }

  #open(family: number, type: number, fdOut: number): number {
    this.#memory.check(fdOut, 4);
    if (family !== Family.INET4 && family !== Family.INET6 && family !== Family.UNSPEC)
      return Errno.EAFNOSUPPORT;
    if (type === SockType.DGRAM) return Errno.ENOTSUP;
    if (type !== SockType.STREAM && type !== SockType.ANY) return Errno.EINVAL;
    const fd = this.#fs.insertSocket(new UnconnectedSocket(family === Family.INET6 ? 6 : 4), 0);
    if (fd < 0) return -fd;
    this.#memory.setU32(fdOut, fd);
    return Errno.SUCCESS;
  }

  #refuseListening(fd: number): number {
    const entry = this.#entry(fd);
    if (typeof entry === "number") return entry;
    // Guests listen on their containerPorts, which wasmlet opens for them.
    return Errno.EACCES;
  }

  /** A WasiAddress: raw 4 or 16 bytes (V1) or the 128-byte storage with a family (V2). */
  #readAddress(pointer: number): Address | number {
    const m = this.#memory;
    const buf = m.u32(pointer);
    const length = m.u32(pointer + 4);
    if (length === 4 || length === 16) {
      return { ip: bytesToIp(m.bytes(buf, length).slice()), family: length === 4 ? 4 : 6 };
    }
    if (length !== STORAGE_BYTES) return Errno.EINVAL;
    const family = m.u16(buf);
    if (family === Family.INET4) return { ip: bytesToIp(m.bytes(buf + 2, 4).slice()), family: 4 };
    if (family === Family.INET6) return { ip: bytesToIp(m.bytes(buf + 2, 16).slice()), family: 6 };
    return Errno.EAFNOSUPPORT;
  }

  #connect(fd: number, addressPointer: number, port: number): number | Promise<number> {
    const entry = this.#entry(fd);
    if (typeof entry === "number") return entry;
    const { socket } = entry;
    if (socket instanceof GuestListener) return Errno.EISCONN;
    if (socket instanceof GuestConnection)
      return socket.connecting ? Errno.EALREADY : Errno.EISCONN;
    const address = this.#readAddress(addressPointer);
    if (typeof address === "number") return address;
    const p = port & 0xffff;
    const { policy, release, wake } = this.#context;
    if (outboundRefusal(policy, address.ip, p) !== undefined) return Errno.EACCES;
    if (!release.limit.take()) return Errno.ENOBUFS;
    if (!release.budget.take()) {
      release.limit.give();
      return Errno.ENFILE;
    }
    const connection = GuestConnection.connect(address.ip, p, wake, release);
    entry.socket = connection;
    if (entry.fdflags & Fdflags.NONBLOCK) return Errno.EINPROGRESS;
    return this.#context.waitFor(() => {
      if (connection.connecting) return undefined;
      const error = connection.takeError();
      return error === 0 ? 0 : -error;
    });
  }

  #recvFrom(a: number[]): number | Promise<number> {
    // V2 (8 arguments) also returns the sender's port; V1 (7) does not.
    const [fd, iovs, iovsLength, address, riFlags] = a as [number, number, number, number, number];
    const v2 = a.length >= 8;
    const [portOut, nreadOut, roFlagsOut] = v2
      ? (a.slice(5, 8) as [number, number, number])
      : [undefined, a[5]!, a[6]!];
    const peer = this.#peer(fd);
    if (typeof peer !== "number") {
      const written = this.#writeAddress(address, peer);
      if (written !== Errno.SUCCESS) return written;
      if (portOut !== undefined) this.#memory.setU32(portOut, peer.port);
    }
    return this.#sockets.sock_recv(fd, iovs, iovsLength, riFlags, nreadOut, roFlagsOut);
  }

  #peer(fd: number): (Address & { port: number }) | number {
    const entry = this.#entry(fd);
    if (typeof entry === "number") return entry;
    if (!(entry.socket instanceof GuestConnection)) return Errno.ENOTCONN;
    const remote = entry.socket.remoteAddress();
    if (!remote) return Errno.ENOTCONN;
    return { ip: remote.address, family: isIP(remote.address) === 6 ? 6 : 4, port: remote.port };
  }

  /** Writes an address into a WasiAddress the guest gave: V2 storage when 128 bytes, else raw. */
  #writeAddress(pointer: number, address: Address): number {
    const m = this.#memory;
    const buf = m.u32(pointer);
    const length = m.u32(pointer + 4);
    const bytes = ipBytes(address.ip);
    if (length === STORAGE_BYTES) {
      m.zero(buf, STORAGE_BYTES);
      m.setU16(buf, address.family === 6 ? Family.INET6 : Family.INET4);
      m.bytes(buf + 2, bytes.length).set(bytes);
      return Errno.SUCCESS;
    }
    if (length < bytes.length) return Errno.EINVAL;
    m.zero(buf, length);
    m.bytes(buf, bytes.length).set(bytes);
    return Errno.SUCCESS;
  }

  /** V2: (fd, address, →port); V1: (fd, address, →type 4|6, →port). */
  #socketAddress(a: number[], which: "local" | "peer"): number {
    const [fd, address] = a as [number, number];
    const entry = this.#entry(fd);
    if (typeof entry === "number") return entry;
    const { socket } = entry;
    let found: { address: string; port: number } | undefined;
    if (socket instanceof GuestConnection)
      found = which === "local" ? socket.localAddress() : socket.remoteAddress();
    else if (socket instanceof GuestListener && which === "local")
      found = { address: socket.address.host, port: socket.address.port };
    if (!found) return which === "peer" ? Errno.ENOTCONN : Errno.EINVAL;
    const family: 4 | 6 = isIP(found.address) === 6 ? 6 : 4;
    const v1 = a.length >= 4;
    if (!v1 && this.#memory.u32(address + 4) !== STORAGE_BYTES) return Errno.EINVAL;
    const written = this.#writeAddress(address, { ip: found.address, family });
    if (written !== Errno.SUCCESS) return written;
    if (v1) {
      this.#memory.setU32(a[2]!, family);
      this.#memory.setU32(a[3]!, found.port);
    } else {
      this.#memory.setU32(a[2]!, found.port);
    }
    return Errno.SUCCESS;
  }

  /** The option value's capacity: a length by value, or a pointer to one (see docs/socket-abi.md). */
  #length(argument: number): { capacity: number; pointer?: number } {
    if (argument >>> 0 < LENGTH_OR_POINTER) return { capacity: argument >>> 0 };
    return { capacity: this.#memory.u32(argument), pointer: argument };
  }

  #getOption(fd: number, level: number, name: number, value: number, lengthArg: number): number {
    const entry = this.#entry(fd);
    if (typeof entry === "number") return entry;
    const { socket } = entry;
    const { capacity, pointer } = this.#length(lengthArg);
    const m = this.#memory;
    const stored = this.#options.get(socket);
    let result: number;
    if (level === SOL_SOCKET) {
      switch (name) {
        case Opt.SO_ERROR:
          result = socket instanceof GuestConnection ? socket.takeError() : 0;
          break;
        case Opt.SO_TYPE:
          result = SockType.STREAM;
          break;
        case Opt.SO_ACCEPTCONN:
          result = socket instanceof GuestListener ? 1 : 0;
          break;
        case Opt.SO_REUSEADDR:
        case Opt.SO_KEEPALIVE:
        case Opt.SO_BROADCAST:
          result = stored?.get(name) ?? 0;
          break;
        case Opt.SO_SNDBUF:
        case Opt.SO_RCVBUF:
          result = stored?.get(name) ?? 65536;
          break;
        case Opt.SO_RCVTIMEO:
        case Opt.SO_SNDTIMEO:
          if (capacity < 16) return Errno.EINVAL;
          m.zero(value, 16);
          if (pointer !== undefined) m.setU32(pointer, 16);
          return Errno.SUCCESS;
        default:
          return Errno.ENOPROTOOPT;
      }
    } else if (level === IPPROTO_TCP && name === Opt.TCP_NODELAY) {
      result = stored?.get(name) ?? 1;
    } else {
      return level === IPPROTO_TCP ? Errno.ENOPROTOOPT : Errno.EINVAL;
    }
    if (capacity < 4) return Errno.EINVAL;
    m.setU32(value, result);
    if (pointer !== undefined) m.setU32(pointer, 4);
    return Errno.SUCCESS;
  }

  #setOption(fd: number, level: number, name: number, value: number, lengthArg: number): number {
    const entry = this.#entry(fd);
    if (typeof entry === "number") return entry;
    const { capacity } = this.#length(lengthArg);
    const settable =
      (level === SOL_SOCKET &&
        [
          Opt.SO_REUSEADDR,
          Opt.SO_KEEPALIVE,
          Opt.SO_BROADCAST,
          Opt.SO_SNDBUF,
          Opt.SO_RCVBUF,
        ].includes(name as 0)) ||
      (level === IPPROTO_TCP && name === Opt.TCP_NODELAY);
    if (!settable)
      return level === SOL_SOCKET || level === IPPROTO_TCP ? Errno.ENOPROTOOPT : Errno.EINVAL;
    if (capacity < 4) return Errno.EINVAL;
    const n = this.#memory.u32(value);
    let stored = this.#options.get(entry.socket);
    if (!stored) {
      stored = new Map();
      this.#options.set(entry.socket, stored);
    }
    stored.set(name, n);
    return Errno.SUCCESS;
  }

  #getaddrinfo(
    nodePointer: number,
    nodeLength: number,
    servicePointer: number,
    serviceLength: number,
    hints: number,
    resPointer: number,
    maxResults: number,
    resLengthOut: number,
  ): number | Promise<number> {
    const m = this.#memory;
    const text = (pointer: number, length: number) =>
      length === 0 ? "" : m.string(pointer, length).replace(/\0$/, "");
    const node = text(nodePointer, nodeLength);
    const service = text(servicePointer, serviceLength);
    m.check(resLengthOut, 4);
    if (node === "" && service === "") return EAI.NONAME;
    if (maxResults === 0) return EAI.MEMORY;
    let family = 0;
    let socktype: number = SockType.STREAM;
    if (hints !== 0) {
      const hinted = m.u8(hints + 2);
      if (hinted > Family.INET6) return EAI.FAMILY;
      family = hinted === Family.INET4 ? 4 : hinted === Family.INET6 ? 6 : 0;
      socktype = m.u8(hints + 3) || SockType.STREAM;
    }
    const port = /^\d+$/.test(service)
      ? Number(service)
      : service === "https"
        ? 443
        : service === "http"
          ? 80
          : 0;
    let outcome: Address[] | number | undefined;
    const timer = setTimeout(() => {
      outcome ??= EAI.AGAIN;
      this.#context.wake();
    }, LOOKUP_TIMEOUT_MS);
    lookup(node || "localhost", { all: true, family })
      .then(
        (found) => {
          outcome ??= found
            .map((a) => ({ ip: a.address, family: (a.family === 6 ? 6 : 4) as 4 | 6 }))
            .sort((x, y) => x.family - y.family);
        },
        (error: NodeJS.ErrnoException) => {
          outcome ??=
            error.code === "ENODATA"
              ? EAI.NODATA
              : error.code === "ENOTFOUND"
                ? EAI.NONAME
                : EAI.AGAIN;
        },
      )
      .finally(() => {
        clearTimeout(timer);
        this.#context.wake();
      });
    return this.#context.waitFor(() => {
      if (outcome === undefined) return undefined;
      if (typeof outcome === "number") return -outcome;
      return -this.#fillAddrinfo(outcome, resPointer, maxResults, resLengthOut, port, socktype);
    });
  }

  /** Fills the guest's preallocated addrinfo list; returns an errno. */
  #fillAddrinfo(
    found: Address[],
    resPointer: number,
    maxResults: number,
    resLengthOut: number,
    port: number,
    socktype: number,
  ): number {
    const m = this.#memory;
    if (found.length === 0) return EAI.NODATA;
    let at = m.u32(resPointer);
    let count = 0;
    for (const address of found) {
      if (count >= maxResults || at === 0) break;
      m.check(at, ADDRINFO_SIZE);
      m.setU16(at, 0);
      m.setU8(at + 2, address.family === 6 ? Family.INET6 : Family.INET4);
      m.setU8(at + 3, socktype);
      m.setU8(at + 4, socktype === SockType.DGRAM ? 2 : 1);
      m.setU32(at + 8, 12);
      m.setU32(at + 20, 0);
      const sockaddr = m.u32(at + 12);
      const data = m.u32(sockaddr + 8);
      const bytes = ipBytes(address.ip);
      const length = address.family === 6 ? 26 : 14;
      m.setU8(sockaddr, address.family === 6 ? Family.INET6 : Family.INET4);
      m.setU32(sockaddr + 4, length);
      m.zero(data, length);
      m.setU8(data, port >> 8);
      m.setU8(data + 1, port & 255);
      m.bytes(data + (address.family === 6 ? 6 : 2), bytes.length).set(bytes);
      count++;
      at = m.u32(at + 24);
    }
    m.setU32(resLengthOut, count);
    return Errno.SUCCESS;
  }
}
