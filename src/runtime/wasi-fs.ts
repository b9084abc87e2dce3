// The guest's descriptor table and every preview1 file-system function, implemented by wasmlet
// over node:fs instead of node:wasi, for three reasons:
// - containment: paths are resolved by sandbox-path.ts from held directory descriptors (no `..`,
//   absolute or symlink escape, and no race with another guest renaming things meanwhile), which
//   node:wasi does not guarantee (its resolver lets the OS follow symlinks in directories);
// - read-only mounts: every mutation under one fails with EROFS, and files there are opened O_RDONLY;
// - cleanup: every host descriptor is the guest's entry's, closed with it and at the end; all of
//   them count against the node-wide DescriptorBudget (descriptor-budget.ts), so guests together
//   cannot take the descriptors wasmlet itself needs.
// A directory descriptor holds an O_PATH host descriptor of its directory: paths beneath it are
// resolved from that, never from a name that could have been swapped.
//
// Functions return a WASI errno. They may throw GuestFault (bad pointer → EFAULT), a Node fs error
// (mapped by its code) or GuestEncodingError (EILSEQ); wasi-host.ts turns those into errno values.
import {
  type BigIntStats,
  closeSync,
  fdatasyncSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  futimesSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  constants as O,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  renameSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from "node:fs";
import { DescriptorBudget } from "./descriptor-budget.ts";
import { encodeUtf8, type GuestMemory } from "./guest-memory.ts";
import { GuestConnection, type GuestListener, type UnconnectedSocket } from "./guest-sockets.ts";
import {
  isInside,
  O_PATH,
  openDirectory,
  type Resolution,
  type Resolved,
  resolveBeneath,
  viaDescriptor,
} from "./sandbox-path.ts";
import type { OutputStream } from "./types.ts";
import {
  ALL_RIGHTS,
  DIRENT_HEADER_SIZE,
  Errno,
  FDSTAT_SIZE,
  Fdflags,
  FILESTAT_SIZE,
  Filetype,
  Fstflags,
  LOOKUP_SYMLINK_FOLLOW,
  Oflags,
  READ_RIGHTS,
  Rights,
  Whence,
  WRITE_RIGHTS,
} from "./wasi-abi.ts";

/**
 * What the host side provides for descriptors 0-2. Results are byte counts or -errno, or a promise
 * of one when the guest must wait (its call then suspends it).
 */
export interface Stdio {
  readStdin(buffers: Uint8Array[], nonblocking: boolean): number | Promise<number>;
  writeOutput(stream: OutputStream, buffers: Uint8Array[]): number | Promise<number>;
  /** Asks `attempt` until it answers, suspending the guest between its doorbell's rings. */
  waitFor(attempt: () => number | undefined): number | Promise<number>;
}

export interface PreopenMount {
  guestPath: string;
  /** realpath of the host directory. */
  root: string;
  readOnly: boolean;
}

interface EntryBase {
  rightsBase: bigint;
  rightsInheriting: bigint;
  fdflags: number;
}
interface StdioEntry extends EntryBase {
  kind: "stdin" | "stdout" | "stderr";
}
interface DirEntry extends EntryBase {
  kind: "dir";
  /** O_PATH host descriptor of the directory. */
  fd: number;
  mount: PreopenMount;
  /** Guest path of a preopened directory. */
  preopen: string | undefined;
  listing: DirListingEntry[] | undefined;
}
interface FileEntry extends EntryBase {
  kind: "file";
  fd: number;
  mount: PreopenMount;
  filetype: number;
  position: number;
  seekable: boolean;
  readable: boolean;
  writable: boolean;
}
export interface SocketEntry extends EntryBase {
  kind: "socket";
  /** Replaced when an unconnected socket connects. */
  socket: GuestListener | GuestConnection | UnconnectedSocket;
}
export type Entry = StdioEntry | DirEntry | FileEntry | SocketEntry;

interface DirListingEntry {
  name: Uint8Array;
  ino: bigint;
  type: number;
}

const STDIN_RIGHTS =
  Rights.FD_READ | Rights.POLL_FD_READWRITE | Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_GET;
const OUTPUT_RIGHTS =
  Rights.FD_WRITE | Rights.POLL_FD_READWRITE | Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_GET;
const LISTENER_RIGHTS =
  Rights.SOCK_ACCEPT |
  Rights.POLL_FD_READWRITE |
  Rights.FD_FDSTAT_SET_FLAGS |
  Rights.FD_FILESTAT_GET;
export const CONNECTION_RIGHTS =
  Rights.FD_READ |
  Rights.FD_WRITE |
  Rights.POLL_FD_READWRITE |
  Rights.SOCK_SHUTDOWN |
  Rights.FD_FDSTAT_SET_FLAGS |
  Rights.FD_FILESTAT_GET;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export function filetypeOf(stat: {
  isDirectory(): boolean;
  isFile(): boolean;
  isSymbolicLink(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
  isSocket(): boolean;
}): number {
  if (stat.isFile()) return Filetype.REGULAR_FILE;
  if (stat.isDirectory()) return Filetype.DIRECTORY;
  if (stat.isSymbolicLink()) return Filetype.SYMBOLIC_LINK;
  if (stat.isCharacterDevice()) return Filetype.CHARACTER_DEVICE;
  if (stat.isBlockDevice()) return Filetype.BLOCK_DEVICE;
  if (stat.isSocket()) return Filetype.SOCKET_STREAM;
  return Filetype.UNKNOWN;
}

function safeNumber(value: bigint): number | undefined {
  return value < 0n || value > MAX_SAFE ? undefined : Number(value);
}

export class WasiFs {
  readonly #memory: GuestMemory;
  readonly #stdio: Stdio;
  readonly #fds = new Map<number, Entry>();
  readonly #maxFds: number;
  readonly #budget: DescriptorBudget;

  constructor(
    memory: GuestMemory,
    stdio: Stdio,
    mounts: PreopenMount[],
    budget = new DescriptorBudget(2 ** 31 - 1),
    listeners: GuestListener[] = [],
    maxFds = 1024,
  ) {
    this.#memory = memory;
    this.#stdio = stdio;
    this.#maxFds = maxFds;
    this.#budget = budget;
    this.#fds.set(0, { kind: "stdin", rightsBase: STDIN_RIGHTS, rightsInheriting: 0n, fdflags: 0 });
    this.#fds.set(1, {
      kind: "stdout",
      rightsBase: OUTPUT_RIGHTS,
      rightsInheriting: 0n,
      fdflags: Fdflags.APPEND,
    });
    this.#fds.set(2, {
      kind: "stderr",
      rightsBase: OUTPUT_RIGHTS,
      rightsInheriting: 0n,
      fdflags: Fdflags.APPEND,
    });
    let fd = 3;
    for (const mount of mounts) {
      // Preopens are the guest's start-up: counted, never refused.
      this.#budget.take(true);
      let hostFd: number;
      try {
        hostFd = openDirectory(mount.root);
      } catch (error) {
        this.#budget.give();
        this.closeAll();
        throw error;
      }
      this.#fds.set(fd++, {
        kind: "dir",
        fd: hostFd,
        mount,
        preopen: mount.guestPath,
        listing: undefined,
        rightsBase: ALL_RIGHTS,
        rightsInheriting: ALL_RIGHTS,
        fdflags: 0,
      });
    }
    // Listeners come after the directories: libc's pre-open scan stops at the first descriptor
    // that is no pre-open (EBADF), so directories after a socket would never be found.
    for (const listener of listeners) {
      this.#fds.set(fd++, {
        kind: "socket",
        socket: listener,
        rightsBase: LISTENER_RIGHTS,
        rightsInheriting: CONNECTION_RIGHTS,
        fdflags: 0,
      });
    }
  }

  entry(fd: number): Entry | undefined {
    return this.#fds.get(fd >>> 0);
  }

  /** Gives the guest a descriptor for a socket (-EMFILE when its table is full). */
  insertSocket(socket: GuestConnection | UnconnectedSocket, fdflags: number): number {
    const fd = this.#insert({
      kind: "socket",
      socket,
      rightsBase: CONNECTION_RIGHTS,
      rightsInheriting: 0n,
      fdflags,
    });
    if (fd < 0) socket.close();
    return fd;
  }

  /** Answers now when the descriptor is non-blocking (EAGAIN for "not yet"), else waits. */
  transfer(entry: Entry, attempt: () => number | undefined): number | Promise<number> {
    if (entry.fdflags & Fdflags.NONBLOCK) return attempt() ?? -Errno.EAGAIN;
    return this.#stdio.waitFor(attempt);
  }

  /** Closes every host descriptor (the instance ended). */
  closeAll(): void {
    for (const entry of this.#fds.values()) {
      try {
        this.#release(entry);
      } catch {}
    }
    this.#fds.clear();
  }

  /** Closes what an entry holds on the host. */
  #release(entry: Entry): void {
    if (entry.kind === "file" || entry.kind === "dir") this.#closeHost(entry.fd);
    else if (entry.kind === "socket") entry.socket.close();
  }

  /** Opens a host descriptor for an entry, within the node's budget (ENFILE past it). */
  #openHost(path: string, flags: number, mode?: number): number {
    if (!this.#budget.take()) {
      throw Object.assign(new Error("the node's descriptor budget for guests is spent"), {
        code: "ENFILE",
      });
    }
    try {
      return openSync(path, flags, mode);
    } catch (error) {
      this.#budget.give();
      throw error;
    }
  }

  #closeHost(fd: number): void {
    this.#budget.give();
    closeSync(fd);
  }

  #insert(entry: Entry): number {
    for (let fd = 0; fd < this.#maxFds; fd++) {
      if (!this.#fds.has(fd)) {
        this.#fds.set(fd, entry);
        return fd;
      }
    }
    return -Errno.EMFILE;
  }

  #dir(fd: number): DirEntry | number {
    const entry = this.entry(fd);
    if (!entry) return Errno.EBADF;
    if (entry.kind !== "dir") return Errno.ENOTDIR;
    return entry;
  }

  #file(fd: number): FileEntry | number {
    const entry = this.entry(fd);
    if (!entry) return Errno.EBADF;
    if (entry.kind === "dir") return Errno.EISDIR;
    if (entry.kind !== "file") return Errno.ESPIPE;
    return entry;
  }

  #resolve(dir: DirEntry, pathPointer: number, pathLength: number, follow: boolean): Resolution {
    const path = this.#memory.string(pathPointer, pathLength);
    const inside = stillInsideMount(dir);
    if (inside !== Errno.SUCCESS) return { ok: false, errno: inside };
    return resolveBeneath(dir.fd, path, follow);
  }

  /** Resolves a path and runs `operation` on it, releasing what the resolution holds after. */
  #at(
    dir: DirEntry,
    pathPointer: number,
    pathLength: number,
    follow: boolean,
    operation: (resolved: Resolved) => number,
  ): number {
    const r = this.#resolve(dir, pathPointer, pathLength, follow);
    if (!r.ok) return r.errno;
    try {
      return operation(r);
    } finally {
      r.close();
    }
  }

  #writeFilestat(pointer: number, stat: BigIntStats | undefined, filetype?: number): void {
    const m = this.#memory;
    m.check(pointer, FILESTAT_SIZE);
    m.zero(pointer, FILESTAT_SIZE);
    if (!stat) {
      m.setU8(pointer + 16, filetype ?? Filetype.UNKNOWN);
      return;
    }
    m.setU64(pointer, stat.dev);
    m.setU64(pointer + 8, stat.ino);
    m.setU8(pointer + 16, filetype ?? filetypeOf(stat));
    m.setU64(pointer + 24, stat.nlink);
    m.setU64(pointer + 32, stat.size);
    m.setU64(pointer + 40, stat.atimeNs);
    m.setU64(pointer + 48, stat.mtimeNs);
    m.setU64(pointer + 56, stat.ctimeNs);
  }

  // ---- descriptor functions ----

  fd_advise(fd: number, _offset: bigint, _length: bigint, advice: number): number {
    const file = this.#file(fd);
    if (typeof file === "number") return file;
    return advice >>> 0 <= 5 ? Errno.SUCCESS : Errno.EINVAL;
  }

  fd_allocate(fd: number, offset: bigint, length: bigint): number {
    const file = this.#file(fd);
    if (typeof file === "number") return file;
    if (file.mount.readOnly) return Errno.EROFS;
    if (!file.writable) return Errno.EBADF;
    const end = safeNumber(offset + length);
    if (end === undefined || offset < 0n || length <= 0n) return Errno.EINVAL;
    if (fstatSync(file.fd).size < end) ftruncateSync(file.fd, end);
    return Errno.SUCCESS;
  }

  fd_close(fd: number): number {
    const entry = this.entry(fd);
    if (!entry) return Errno.EBADF;
    this.#fds.delete(fd >>> 0);
    this.#release(entry);
    return Errno.SUCCESS;
  }

  fd_datasync(fd: number): number {
    return this.#sync(fd, true);
  }

  fd_sync(fd: number): number {
    return this.#sync(fd, false);
  }

  #sync(fd: number, dataOnly: boolean): number {
    const entry = this.entry(fd);
    if (!entry) return Errno.EBADF;
    if (entry.kind === "file") {
      if (dataOnly) fdatasyncSync(entry.fd);
      else fsyncSync(entry.fd);
      return Errno.SUCCESS;
    }
    return entry.kind === "dir" ? Errno.SUCCESS : Errno.EINVAL;
  }

  fd_fdstat_get(fd: number, pointer: number): number {
    const entry = this.entry(fd);
    if (!entry) return Errno.EBADF;
    const m = this.#memory;
    m.check(pointer, FDSTAT_SIZE);
    m.zero(pointer, FDSTAT_SIZE);
    const filetype =
      entry.kind === "dir"
        ? Filetype.DIRECTORY
        : entry.kind === "file"
          ? entry.filetype
          : entry.kind === "socket"
            ? Filetype.SOCKET_STREAM
            : Filetype.UNKNOWN;
    m.setU8(pointer, filetype);
    m.setU16(pointer + 2, entry.fdflags);
    m.setU64(pointer + 8, entry.rightsBase);
    m.setU64(pointer + 16, entry.rightsInheriting);
    return Errno.SUCCESS;
  }

  fd_fdstat_set_flags(fd: number, flags: number): number {
    const entry = this.entry(fd);
    if (!entry) return Errno.EBADF;
    const wanted = flags & 0xffff;
    if (wanted & ~0x1f) return Errno.EINVAL;
    // Only NONBLOCK can change after open (node:fs has no fcntl); APPEND is fixed at open.
    if ((wanted & Fdflags.APPEND) !== (entry.fdflags & Fdflags.APPEND)) return Errno.ENOTSUP;
    entry.fdflags = (entry.fdflags & ~Fdflags.NONBLOCK) | (wanted & Fdflags.NONBLOCK);
    return Errno.SUCCESS;
  }

  fd_fdstat_set_rights(fd: number, base: bigint, inheriting: bigint): number {
    const entry = this.entry(fd);
    if (!entry) return Errno.EBADF;
    const b = BigInt.asUintN(64, base);
    const i = BigInt.asUintN(64, inheriting);
    if (b & ~entry.rightsBase || i & ~entry.rightsInheriting) return Errno.ENOTCAPABLE;
    entry.rightsBase = b;
    entry.rightsInheriting = i;
    return Errno.SUCCESS;
  }

  fd_filestat_get(fd: number, pointer: number): number {
    const entry = this.entry(fd);
    if (!entry) return Errno.EBADF;
    if (entry.kind === "file" || entry.kind === "dir") {
      this.#writeFilestat(pointer, fstatSync(entry.fd, { bigint: true }));
    } else {
      const type = entry.kind === "socket" ? Filetype.SOCKET_STREAM : Filetype.UNKNOWN;
      this.#writeFilestat(pointer, undefined, type);
    }
    return Errno.SUCCESS;
  }

  fd_filestat_set_size(fd: number, size: bigint): number {
    const file = this.#file(fd);
    if (typeof file === "number") return file === Errno.ESPIPE ? Errno.EINVAL : file;
    if (file.mount.readOnly) return Errno.EROFS;
    if (!file.writable) return Errno.EINVAL;
    const n = safeNumber(size);
    if (n === undefined) return Errno.EINVAL;
    ftruncateSync(file.fd, n);
    return Errno.SUCCESS;
  }

  fd_filestat_set_times(fd: number, atim: bigint, mtim: bigint, flags: number): number {
    const entry = this.entry(fd);
    if (!entry) return Errno.EBADF;
    if (entry.kind !== "file" && entry.kind !== "dir") return Errno.EINVAL;
    if (entry.mount.readOnly) return Errno.EROFS;
    const times = this.#times(fstatSync(entry.fd, { bigint: true }), atim, mtim, flags);
    if (typeof times === "number") return times;
    // An O_PATH descriptor takes no futimes; its /proc link reaches the same directory.
    if (entry.kind === "file") futimesSync(entry.fd, times[0], times[1]);
    else utimesSync(viaDescriptor(entry.fd), times[0], times[1]);
    return Errno.SUCCESS;
  }

  /** Seconds (fractional) for futimes/utimes, or an errno for contradictory flags. */
  #times(stat: BigIntStats, atim: bigint, mtim: bigint, flags: number): [number, number] | number {
    const f = flags & 0xffff;
    if (
      (f & Fstflags.ATIM && f & Fstflags.ATIM_NOW) ||
      (f & Fstflags.MTIM && f & Fstflags.MTIM_NOW)
    ) {
      return Errno.EINVAL;
    }
    const now = Date.now() / 1000;
    const seconds = (ns: bigint) => Number(BigInt.asUintN(64, ns)) / 1e9;
    const a =
      f & Fstflags.ATIM_NOW ? now : f & Fstflags.ATIM ? seconds(atim) : seconds(stat.atimeNs);
    const m =
      f & Fstflags.MTIM_NOW ? now : f & Fstflags.MTIM ? seconds(mtim) : seconds(stat.mtimeNs);
    return [a, m];
  }

  fd_pread(
    fd: number,
    iovs: number,
    iovsLength: number,
    offset: bigint,
    nreadPointer: number,
  ): number {
    const file = this.#file(fd);
    if (typeof file === "number") return file;
    if (!file.readable || !(file.rightsBase & Rights.FD_READ)) return Errno.EBADF;
    if (!file.seekable) return Errno.ESPIPE;
    let position = safeNumber(offset);
    if (position === undefined) return Errno.EINVAL;
    this.#memory.check(nreadPointer, 4);
    let total = 0;
    for (const buffer of this.#memory.iovecs(iovs, iovsLength)) {
      if (buffer.length === 0) continue;
      const n = readSync(file.fd, buffer, 0, buffer.length, position);
      total += n;
      position += n;
      if (n < buffer.length) break;
    }
    this.#memory.setU32(nreadPointer, total);
    return Errno.SUCCESS;
  }

  fd_pwrite(
    fd: number,
    iovs: number,
    iovsLength: number,
    offset: bigint,
    nwrittenPointer: number,
  ): number {
    const file = this.#file(fd);
    if (typeof file === "number") return file;
    if (file.mount.readOnly) return Errno.EROFS;
    if (!file.writable || !(file.rightsBase & Rights.FD_WRITE)) return Errno.EBADF;
    if (!file.seekable) return Errno.ESPIPE;
    let position = safeNumber(offset);
    if (position === undefined) return Errno.EINVAL;
    this.#memory.check(nwrittenPointer, 4);
    let total = 0;
    for (const buffer of this.#memory.iovecs(iovs, iovsLength)) {
      if (buffer.length === 0) continue;
      const n = writeSync(file.fd, buffer, 0, buffer.length, position);
      total += n;
      position += n;
      if (n < buffer.length) break;
    }
    this.#memory.setU32(nwrittenPointer, total);
    return Errno.SUCCESS;
  }

  fd_prestat_get(fd: number, pointer: number): number {
    const entry = this.entry(fd);
    if (entry?.kind !== "dir" || entry.preopen === undefined) return Errno.EBADF;
    this.#memory.check(pointer, 8);
    this.#memory.zero(pointer, 8);
    this.#memory.setU32(pointer + 4, encodeUtf8(entry.preopen).length);
    return Errno.SUCCESS;
  }

  fd_prestat_dir_name(fd: number, pointer: number, length: number): number {
    const entry = this.entry(fd);
    if (entry?.kind !== "dir" || entry.preopen === undefined) return Errno.EBADF;
    const name = encodeUtf8(entry.preopen);
    if (length >>> 0 < name.length) return Errno.ENOBUFS;
    this.#memory.writeString(pointer, name.length, name);
    return Errno.SUCCESS;
  }

  fd_read(
    fd: number,
    iovs: number,
    iovsLength: number,
    nreadPointer: number,
  ): number | Promise<number> {
    const entry = this.entry(fd);
    if (!entry) return Errno.EBADF;
    this.#memory.check(nreadPointer, 4);
    const buffers = this.#memory.iovecs(iovs, iovsLength);
    if (entry.kind === "stdin") {
      if (!(entry.rightsBase & Rights.FD_READ)) return Errno.EBADF;
      const n = this.#stdio.readStdin(buffers, (entry.fdflags & Fdflags.NONBLOCK) !== 0);
      return this.#settle(n, nreadPointer);
    }
    if (entry.kind === "dir") return Errno.EISDIR;
    if (entry.kind === "socket") {
      const { socket } = entry;
      if (!(socket instanceof GuestConnection)) return Errno.ENOTCONN;
      return this.#settle(
        this.transfer(entry, () => socket.read(buffers)),
        nreadPointer,
      );
    }
    if (entry.kind !== "file" || !entry.readable || !(entry.rightsBase & Rights.FD_READ))
      return Errno.EBADF;
    let total = 0;
    for (const buffer of buffers) {
      if (buffer.length === 0) continue;
      const n = readSync(
        entry.fd,
        buffer,
        0,
        buffer.length,
        entry.seekable ? entry.position : null,
      );
      total += n;
      if (entry.seekable) entry.position += n;
      if (n < buffer.length) break;
    }
    this.#memory.setU32(nreadPointer, total);
    return Errno.SUCCESS;
  }

  fd_write(
    fd: number,
    iovs: number,
    iovsLength: number,
    nwrittenPointer: number,
  ): number | Promise<number> {
    const entry = this.entry(fd);
    if (!entry) return Errno.EBADF;
    this.#memory.check(nwrittenPointer, 4);
    const buffers = this.#memory.iovecs(iovs, iovsLength);
    if (entry.kind === "stdout" || entry.kind === "stderr") {
      if (!(entry.rightsBase & Rights.FD_WRITE)) return Errno.EBADF;
      const n = this.#stdio.writeOutput(entry.kind, buffers);
      return this.#settle(n, nwrittenPointer);
    }
    if (entry.kind === "dir") return Errno.EISDIR;
    if (entry.kind === "socket") {
      const { socket } = entry;
      if (!(socket instanceof GuestConnection)) return Errno.ENOTCONN;
      return this.#settle(
        this.transfer(entry, () => socket.write(buffers)),
        nwrittenPointer,
      );
    }
    if (entry.kind !== "file") return Errno.EBADF;
    if (entry.mount.readOnly) return Errno.EROFS;
    if (!entry.writable || !(entry.rightsBase & Rights.FD_WRITE)) return Errno.EBADF;
    const append = (entry.fdflags & Fdflags.APPEND) !== 0;
    let total = 0;
    for (const buffer of buffers) {
      if (buffer.length === 0) continue;
      const position = entry.seekable && !append ? entry.position : null;
      const n = writeSync(entry.fd, buffer, 0, buffer.length, position);
      total += n;
      if (entry.seekable && !append) entry.position += n;
      if (n < buffer.length) break;
    }
    if (append && entry.seekable) entry.position = fstatSync(entry.fd).size;
    this.#memory.setU32(nwrittenPointer, total);
    return Errno.SUCCESS;
  }

  /** Stores a byte count, now or once it is known. */
  #settle(n: number | Promise<number>, pointer: number): number | Promise<number> {
    return typeof n === "number"
      ? this.#transferred(n, pointer)
      : n.then((bytes) => this.#transferred(bytes, pointer));
  }

  /** Stores a byte count (or turns -errno into the errno). */
  #transferred(n: number, pointer: number): number {
    if (n < 0) return -n;
    this.#memory.setU32(pointer, n);
    return Errno.SUCCESS;
  }

  fd_readdir(
    fd: number,
    buffer: number,
    length: number,
    cookie: bigint,
    usedPointer: number,
  ): number {
    const dir = this.#dir(fd);
    if (typeof dir === "number") return dir;
    const m = this.#memory;
    const capacity = length >>> 0;
    m.check(buffer, capacity);
    m.check(usedPointer, 4);
    if (cookie === 0n || !dir.listing) {
      const inside = stillInsideMount(dir);
      if (inside !== Errno.SUCCESS) return inside;
      dir.listing = listDirectory(dir.fd, dir.preopen !== undefined);
    }
    let used = 0;
    const start =
      cookie < 0n || cookie > BigInt(dir.listing.length) ? dir.listing.length : Number(cookie);
    const header = new Uint8Array(DIRENT_HEADER_SIZE);
    const view = new DataView(header.buffer);
    for (let i = start; i < dir.listing.length && used < capacity; i++) {
      const item = dir.listing[i]!;
      view.setBigUint64(0, BigInt(i + 1), true);
      view.setBigUint64(8, item.ino, true);
      view.setUint32(16, item.name.length, true);
      view.setUint8(20, item.type);
      used += m.writeString(buffer + used, capacity - used, header);
      if (used < capacity) used += m.writeString(buffer + used, capacity - used, item.name);
    }
    m.setU32(usedPointer, used);
    return Errno.SUCCESS;
  }

  fd_renumber(from: number, to: number): number {
    const source = this.entry(from);
    const target = this.entry(to);
    if (!source || !target) return Errno.EBADF;
    if (from >>> 0 === to >>> 0) return Errno.SUCCESS;
    this.#release(target);
    this.#fds.set(to >>> 0, source);
    this.#fds.delete(from >>> 0);
    return Errno.SUCCESS;
  }

  fd_seek(fd: number, offset: bigint, whence: number, resultPointer: number): number {
    const file = this.#file(fd);
    if (typeof file === "number") return file === Errno.EISDIR ? Errno.EBADF : file;
    if (!file.seekable) return Errno.ESPIPE;
    this.#memory.check(resultPointer, 8);
    let base: number;
    switch (whence & 0xff) {
      case Whence.SET:
        base = 0;
        break;
      case Whence.CUR:
        base = file.position;
        break;
      case Whence.END:
        base = fstatSync(file.fd).size;
        break;
      default:
        return Errno.EINVAL;
    }
    const next = BigInt(base) + offset;
    if (next < 0n || next > MAX_SAFE) return Errno.EINVAL;
    file.position = Number(next);
    this.#memory.setU64(resultPointer, next);
    return Errno.SUCCESS;
  }

  fd_tell(fd: number, resultPointer: number): number {
    const file = this.#file(fd);
    if (typeof file === "number") return file === Errno.EISDIR ? Errno.EBADF : file;
    if (!file.seekable) return Errno.ESPIPE;
    this.#memory.setU64(resultPointer, file.position);
    return Errno.SUCCESS;
  }

  // ---- path functions ----
  // Each acts on `r.host`, one name inside a held directory, with a call that does not follow a
  // final symlink (mkdir, unlink, rmdir, rename, link, symlink, readlink, lutimes, O_NOFOLLOW).

  path_create_directory(fd: number, pathPointer: number, pathLength: number): number {
    const dir = this.#dir(fd);
    if (typeof dir === "number") return dir;
    return this.#at(dir, pathPointer, pathLength, false, (r) => {
      if (dir.mount.readOnly) return Errno.EROFS;
      if (r.stat) return Errno.EEXIST;
      mkdirSync(r.host, 0o777);
      return Errno.SUCCESS;
    });
  }

  path_filestat_get(
    fd: number,
    flags: number,
    pathPointer: number,
    pathLength: number,
    out: number,
  ): number {
    const dir = this.#dir(fd);
    if (typeof dir === "number") return dir;
    this.#memory.check(out, FILESTAT_SIZE);
    const follow = (flags & LOOKUP_SYMLINK_FOLLOW) !== 0;
    return this.#at(dir, pathPointer, pathLength, follow, (r) => {
      if (!r.stat) return Errno.ENOENT;
      this.#writeFilestat(out, r.stat);
      return Errno.SUCCESS;
    });
  }

  path_filestat_set_times(
    fd: number,
    flags: number,
    pathPointer: number,
    pathLength: number,
    atim: bigint,
    mtim: bigint,
    fstflags: number,
  ): number {
    const dir = this.#dir(fd);
    if (typeof dir === "number") return dir;
    const follow = (flags & LOOKUP_SYMLINK_FOLLOW) !== 0;
    return this.#at(dir, pathPointer, pathLength, follow, (r) => {
      if (dir.mount.readOnly) return Errno.EROFS;
      if (!r.stat) return Errno.ENOENT;
      const times = this.#times(r.stat, atim, mtim, fstflags);
      if (typeof times === "number") return times;
      // A held directory itself is reached through its /proc link, which must be followed.
      if (r.name === undefined) utimesSync(r.host, times[0], times[1]);
      else lutimesSync(r.host, times[0], times[1]);
      return Errno.SUCCESS;
    });
  }

  path_link(
    oldFd: number,
    oldFlags: number,
    oldPointer: number,
    oldLength: number,
    newFd: number,
    newPointer: number,
    newLength: number,
  ): number {
    const from = this.#dir(oldFd);
    if (typeof from === "number") return from;
    const to = this.#dir(newFd);
    if (typeof to === "number") return to;
    const follow = (oldFlags & LOOKUP_SYMLINK_FOLLOW) !== 0;
    return this.#at(from, oldPointer, oldLength, follow, (source) =>
      this.#at(to, newPointer, newLength, false, (target) => {
        if (from.mount.readOnly || to.mount.readOnly) return Errno.EROFS;
        if (from.mount !== to.mount) return Errno.EXDEV;
        if (!source.stat) return Errno.ENOENT;
        if (source.stat.isDirectory()) return Errno.EPERM;
        if (target.stat) return Errno.EEXIST;
        // link(2) does not follow a final symlink: the name itself is linked.
        linkSync(source.host, target.host);
        return Errno.SUCCESS;
      }),
    );
  }

  path_open(
    fd: number,
    dirflags: number,
    pathPointer: number,
    pathLength: number,
    oflags: number,
    rightsBase: bigint,
    rightsInheriting: bigint,
    fdflags: number,
    fdPointer: number,
  ): number {
    const dir = this.#dir(fd);
    if (typeof dir === "number") return dir;
    this.#memory.check(fdPointer, 4);
    let base = BigInt.asUintN(64, rightsBase);
    const inheriting = BigInt.asUintN(64, rightsInheriting);
    const o = oflags & 0xffff;
    const f = fdflags & 0xffff;
    const follow = (dirflags & LOOKUP_SYMLINK_FOLLOW) !== 0;
    return this.#at(dir, pathPointer, pathLength, follow, (r) => {
      if (dir.mount.readOnly) {
        // Only an open that asks to write is refused. Go's os.Open (O_RDONLY) still asks for
        // fd_filestat_set_size among its rights: such an open gets a read-only descriptor, and
        // the calls that change the file fail with EROFS later.
        if (
          (base & Rights.FD_WRITE) !== 0n ||
          o & (Oflags.CREAT | Oflags.TRUNC) ||
          f & Fdflags.APPEND
        ) {
          return Errno.EROFS;
        }
        base &= ~WRITE_RIGHTS;
      }
      const write = (base & WRITE_RIGHTS) !== 0n;
      const read = (base & READ_RIGHTS) !== 0n;
      if (r.stat?.isSymbolicLink()) return Errno.ELOOP;
      if (r.stat && o & Oflags.CREAT && o & Oflags.EXCL) return Errno.EEXIST;
      if (!r.stat && !(o & Oflags.CREAT)) return Errno.ENOENT;
      if (r.stat?.isDirectory()) {
        if (write || o & Oflags.TRUNC) return Errno.EISDIR;
        // A name is opened without following it (a swapped-in symlink fails); a held directory
        // is reached through its /proc link.
        const nofollow = r.name === undefined ? 0 : O.O_NOFOLLOW;
        return this.#finishOpen(fdPointer, {
          kind: "dir",
          fd: this.#openHost(r.host, O_PATH | O.O_DIRECTORY | nofollow),
          mount: dir.mount,
          preopen: undefined,
          listing: undefined,
          rightsBase: base,
          rightsInheriting: inheriting,
          fdflags: 0,
        });
      }
      if (o & Oflags.DIRECTORY) return r.stat ? Errno.ENOTDIR : Errno.ENOENT;
      let flags = write ? (read ? O.O_RDWR : O.O_WRONLY) : O.O_RDONLY;
      // NONBLOCK always: a regular file swapped for a FIFO after the check must not block the
      // thread in open(2) (it changes nothing for regular files).
      flags |= O.O_NOFOLLOW | O.O_NONBLOCK;
      if (o & Oflags.CREAT) flags |= O.O_CREAT;
      if (o & Oflags.EXCL) flags |= O.O_EXCL;
      if (o & Oflags.TRUNC) flags |= O.O_TRUNC;
      if (f & Fdflags.APPEND) flags |= O.O_APPEND;
      const hostFd = this.#openHost(r.host, flags, 0o666);
      let filetype: number = Filetype.REGULAR_FILE;
      try {
        filetype = filetypeOf(fstatSync(hostFd));
      } catch {}
      return this.#finishOpen(fdPointer, {
        kind: "file",
        fd: hostFd,
        mount: dir.mount,
        filetype,
        position: 0,
        seekable: filetype === Filetype.REGULAR_FILE || filetype === Filetype.BLOCK_DEVICE,
        readable: read || !write,
        writable: write,
        rightsBase: base,
        rightsInheriting: inheriting,
        fdflags: f & (Fdflags.APPEND | Fdflags.NONBLOCK),
      });
    });
  }

  /** Gives the entry a guest descriptor, or closes its host descriptor when none is left. */
  #finishOpen(fdPointer: number, entry: FileEntry | DirEntry): number {
    const fd = this.#insert(entry);
    if (fd < 0) {
      this.#closeHost(entry.fd);
      return -fd;
    }
    this.#memory.setU32(fdPointer, fd);
    return Errno.SUCCESS;
  }

  path_readlink(
    fd: number,
    pathPointer: number,
    pathLength: number,
    buffer: number,
    bufferLength: number,
    usedPointer: number,
  ): number {
    const dir = this.#dir(fd);
    if (typeof dir === "number") return dir;
    this.#memory.check(buffer, bufferLength);
    this.#memory.check(usedPointer, 4);
    return this.#at(dir, pathPointer, pathLength, false, (r) => {
      if (!r.stat) return Errno.ENOENT;
      if (!r.stat.isSymbolicLink()) return Errno.EINVAL;
      const target = readlinkSync(r.host, { encoding: "buffer" });
      const n = this.#memory.writeString(buffer, bufferLength, target);
      this.#memory.setU32(usedPointer, n);
      return Errno.SUCCESS;
    });
  }

  path_remove_directory(fd: number, pathPointer: number, pathLength: number): number {
    const dir = this.#dir(fd);
    if (typeof dir === "number") return dir;
    return this.#at(dir, pathPointer, pathLength, false, (r) => {
      if (dir.mount.readOnly) return Errno.EROFS;
      if (!r.stat) return Errno.ENOENT;
      if (!r.stat.isDirectory()) return Errno.ENOTDIR;
      // A held directory (".", the mount root, "a/..") is in use by this very call.
      if (r.name === undefined) return Errno.EBUSY;
      rmdirSync(r.host);
      return Errno.SUCCESS;
    });
  }

  path_rename(
    fd: number,
    oldPointer: number,
    oldLength: number,
    newFd: number,
    newPointer: number,
    newLength: number,
  ): number {
    const from = this.#dir(fd);
    if (typeof from === "number") return from;
    const to = this.#dir(newFd);
    if (typeof to === "number") return to;
    return this.#at(from, oldPointer, oldLength, false, (source) =>
      this.#at(to, newPointer, newLength, false, (target) => {
        if (from.mount.readOnly || to.mount.readOnly) return Errno.EROFS;
        if (from.mount !== to.mount) return Errno.EXDEV;
        if (!source.stat) return Errno.ENOENT;
        if (source.name === undefined || target.name === undefined) return Errno.EBUSY;
        renameSync(source.host, target.host);
        return Errno.SUCCESS;
      }),
    );
  }

  path_symlink(
    oldPointer: number,
    oldLength: number,
    fd: number,
    newPointer: number,
    newLength: number,
  ): number {
    const dir = this.#dir(fd);
    if (typeof dir === "number") return dir;
    const target = this.#memory.string(oldPointer, oldLength);
    return this.#at(dir, newPointer, newLength, false, (r) => {
      if (dir.mount.readOnly) return Errno.EROFS;
      if (target.length === 0 || target.includes("\0")) return Errno.EINVAL;
      // An absolute target would point at the host's file system, never at the guest's.
      if (target.startsWith("/")) return Errno.ENOTCAPABLE;
      if (r.stat) return Errno.EEXIST;
      symlinkSync(target, r.host);
      return Errno.SUCCESS;
    });
  }

  path_unlink_file(fd: number, pathPointer: number, pathLength: number): number {
    const dir = this.#dir(fd);
    if (typeof dir === "number") return dir;
    return this.#at(dir, pathPointer, pathLength, false, (r) => {
      if (dir.mount.readOnly) return Errno.EROFS;
      if (!r.stat) return Errno.ENOENT;
      if (r.stat.isDirectory()) return Errno.EISDIR;
      unlinkSync(r.host);
      return Errno.SUCCESS;
    });
  }
}

/**
 * A directory opened below a mount stays usable while it is inside that mount. Another container
 * that mounts more of the same volume could move it out (a subPath's directory renamed into the
 * volume's top); the kernel would refuse that across bind mounts, so wasmlet refuses it here.
 */
function stillInsideMount(dir: DirEntry): number {
  if (dir.preopen !== undefined) return Errno.SUCCESS;
  let where: string;
  try {
    where = readlinkSync(viaDescriptor(dir.fd));
  } catch {
    return Errno.ENOENT;
  }
  return isInside(where, dir.mount.root) ? Errno.SUCCESS : Errno.ENOTCAPABLE;
}

function listDirectory(dirFd: number, isMountRoot: boolean): DirListingEntry[] {
  const out: DirListingEntry[] = [];
  const self = fstatSync(dirFd, { bigint: true });
  out.push({ name: encodeUtf8("."), ino: self.ino, type: Filetype.DIRECTORY });
  let parentIno = self.ino;
  if (!isMountRoot) {
    try {
      parentIno = lstatSync(viaDescriptor(dirFd, ".."), { bigint: true }).ino;
    } catch {}
  }
  out.push({ name: encodeUtf8(".."), ino: parentIno, type: Filetype.DIRECTORY });
  // readdir opens the /proc link, which reaches the held directory whatever its name is now.
  for (const dirent of readdirSync(viaDescriptor(dirFd), {
    withFileTypes: true,
    encoding: "buffer",
  })) {
    let ino = 0n;
    try {
      ino = lstatSync(viaDescriptor(dirFd, dirent.name.toString()), { bigint: true }).ino;
    } catch {}
    out.push({ name: new Uint8Array(dirent.name), ino, type: filetypeOf(dirent) });
  }
  return out;
}
