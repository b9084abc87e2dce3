// Resolves a guest path beneath a directory the guest holds, race-free. `..` above that
// directory, absolute paths and symlinks whose target is absolute or climbs out all fail with
// ENOTCAPABLE, the preview1 errno for "outside your capabilities".
//
// Why descriptors and not checked names: another guest (a sibling container or an exec sharing an
// emptyDir) can rename a checked directory and drop a symlink in its place between a check and the
// operation, so a host path that was checked is no proof of where the operation lands. Here every
// step is taken from a directory *descriptor*: each component is opened with O_PATH|O_NOFOLLOW
// through `/proc/self/fd/<dir>/<component>` (the kernel jumps to the very directory the descriptor
// holds, whatever has been renamed since, and follows no symlink in the last component), symlinks
// are read and expanded by wasmlet itself, and the operation finally acts on one name inside the
// held parent, again without following it. No kernel path walk ever crosses a symlink the guest
// controls, so no swap can redirect one. Node has no openat(2); the /proc magic links give the
// same guarantee on Linux.
import { type BigIntStats, closeSync, constants, fstatSync, openSync, readlinkSync } from "node:fs";
import { Errno, HOST_ERRNO } from "./wasi-abi.ts";

/** Linux's O_PATH: a descriptor that names a file without opening it (no I/O, no FIFO blocking). */
export const O_PATH = 0o10000000;
/** Linux's PATH_MAX: longer guest paths fail with ENAMETOOLONG, as they would in the kernel. */
const PATH_MAX = 4096;
const MAX_SYMLINKS = 32;
/** Directories held at once while resolving one path (each a host descriptor). */
const MAX_DEPTH = 256;

export function hostErrno(error: unknown): number {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return (code && HOST_ERRNO[code]) || Errno.EIO;
}

/** The host path that reaches what descriptor `fd` holds, or `name` inside that directory. */
export function viaDescriptor(fd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
}

/** Opens a host directory as an O_PATH descriptor (the mount roots wasmlet itself prepared). */
export function openDirectory(host: string): number {
  return openSync(host, O_PATH | constants.O_DIRECTORY);
}

export function isInside(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith("/") ? root : `${root}/`);
}

/**
 * A resolved path: `name` inside the directory descriptor `dir` (or `dir` itself when `name` is
 * undefined, for `.` and paths ending in `..`). `host` is the path to hand to node:fs; use it only
 * with calls that do not follow a final symlink (or open with O_NOFOLLOW), and close the
 * resolution when done: it holds the descriptors of the directories it walked.
 */
export class Resolved {
  readonly dir: number;
  readonly name: string | undefined;
  /** lstat of the final component; undefined when it does not exist. */
  readonly stat: BigIntStats | undefined;
  readonly ok = true;
  readonly #held: number[];

  constructor(
    dir: number,
    name: string | undefined,
    stat: BigIntStats | undefined,
    held: number[],
  ) {
    this.dir = dir;
    this.name = name;
    this.stat = stat;
    this.#held = held;
  }

  get host(): string {
    return viaDescriptor(this.dir, this.name);
  }

  close(): void {
    closeAll(this.#held);
  }
}

export type Resolution = Resolved | { ok: false; errno: number };

function closeAll(fds: number[]): void {
  for (const fd of fds.splice(0)) {
    try {
      closeSync(fd);
    } catch {}
  }
}

/**
 * Resolves `path` beneath the directory descriptor `base` (which stays open; the caller owns it).
 * `follow` says whether a symlink as last component is followed.
 */
export function resolveBeneath(base: number, path: string, follow: boolean): Resolution {
  if (path.length === 0) return { ok: false, errno: Errno.ENOENT };
  if (path.includes("\0")) return { ok: false, errno: Errno.EINVAL };
  if (path.startsWith("/")) return { ok: false, errno: Errno.ENOTCAPABLE };
  if (Buffer.byteLength(path) > PATH_MAX) return { ok: false, errno: Errno.ENAMETOOLONG };
  // A trailing slash asks for a directory and follows a final symlink, as in POSIX.
  const mustBeDirectory = path.endsWith("/");
  // Directories walked into, each an O_PATH descriptor this call owns; `base` is below them all.
  const held: number[] = [];
  const top = () => held.at(-1) ?? base;
  const fail = (errno: number): Resolution => {
    closeAll(held);
    return { ok: false, errno };
  };
  const queue = components(path);
  let links = 0;
  let final: { name: string | undefined; stat: BigIntStats | undefined } | undefined;
  while (queue.length > 0) {
    const component = queue.shift()!;
    if (component === "..") {
      if (held.length === 0) return fail(Errno.ENOTCAPABLE);
      closeSync(held.pop()!);
      final = undefined;
      continue;
    }
    const isLast = queue.length === 0;
    let fd: number;
    try {
      fd = openSync(viaDescriptor(top(), component), O_PATH | constants.O_NOFOLLOW);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT" && isLast) {
        final = { name: component, stat: undefined };
        break;
      }
      return fail(hostErrno(error));
    }
    let stat: BigIntStats;
    try {
      stat = fstatSync(fd, { bigint: true });
    } catch (error) {
      closeSync(fd);
      return fail(hostErrno(error));
    }
    if (stat.isSymbolicLink() && (!isLast || follow || mustBeDirectory)) {
      closeSync(fd);
      if (++links > MAX_SYMLINKS) return fail(Errno.ELOOP);
      let target: string;
      try {
        // Only the link's text is used; if the name was swapped since, the text is still expanded
        // by this loop and checked like any other path.
        target = readlinkSync(viaDescriptor(top(), component));
      } catch (error) {
        return fail(hostErrno(error));
      }
      if (target.startsWith("/")) return fail(Errno.ENOTCAPABLE);
      // The target is relative to the directory holding the link: the current top.
      queue.unshift(...components(target));
      final = undefined;
      continue;
    }
    if (isLast) {
      closeSync(fd);
      final = { name: component, stat };
      break;
    }
    if (!stat.isDirectory()) {
      closeSync(fd);
      return fail(Errno.ENOTDIR);
    }
    if (held.length >= MAX_DEPTH) {
      closeSync(fd);
      return fail(Errno.ENAMETOOLONG);
    }
    held.push(fd);
  }
  if (!final) {
    // The path names a directory already held (".", "a/..", a link to one).
    try {
      final = { name: undefined, stat: fstatSync(top(), { bigint: true }) };
    } catch (error) {
      return fail(hostErrno(error));
    }
  }
  if (mustBeDirectory && final.stat && !final.stat.isDirectory()) return fail(Errno.ENOTDIR);
  return new Resolved(top(), final.name, final.stat, held);
}

function components(path: string): string[] {
  return path.split("/").filter((c) => c !== "" && c !== ".");
}
