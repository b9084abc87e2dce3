// Resolves a guest path against a directory descriptor without ever leaving it: `..` above the
// directory, absolute paths, and symlinks whose target is absolute or climbs out all fail with
// ENOTCAPABLE, the preview1 errno for "outside your capabilities". Symlinks inside are followed
// by wasmlet itself, one component at a time (up to 32 of them), so the host path handed to the
// operating system has no symlink left except possibly the last component when the caller asked
// not to follow it.
//
// Limit (documented, inherent without openat2/RESOLVE_BENEATH in Node): a *different* process
// that swaps a checked directory for a symlink between this check and the operation races it. A
// guest cannot race itself (it is single-threaded while inside a WASI call).
import { type BigIntStats, lstatSync, readlinkSync, realpathSync } from "node:fs";
import { Errno, HOST_ERRNO } from "./wasi-abi.ts";

export type Resolution =
  | {
      ok: true;
      /** Absolute host path. */
      host: string;
      /** lstat of the final component; undefined when it does not exist. */
      stat: BigIntStats | undefined;
    }
  | { ok: false; errno: number };

const MAX_SYMLINKS = 32;

export function hostErrno(error: unknown): number {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return (code && HOST_ERRNO[code]) || Errno.EIO;
}

function inside(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith("/") ? root : `${root}/`);
}

/**
 * Where `base` (a directory the guest holds, symlink-free when it was opened) is now. A directory
 * renamed or replaced since is followed only while it stays inside `root`.
 */
export function currentBase(base: string, root: string): Resolution {
  let real: string;
  try {
    real = realpathSync.native(base);
  } catch (error) {
    return { ok: false, errno: hostErrno(error) };
  }
  if (!inside(real, root)) return { ok: false, errno: Errno.ENOTCAPABLE };
  return { ok: true, host: real, stat: undefined };
}

/**
 * Resolves `path` relative to the directory `base`, which lies inside the mount `root` (both
 * absolute, symlink-free host paths). `follow` says whether a symlink as last component is followed.
 */
export function resolveBeneath(
  base: string,
  root: string,
  path: string,
  follow: boolean,
): Resolution {
  if (path.length === 0) return { ok: false, errno: Errno.ENOENT };
  if (path.includes("\0")) return { ok: false, errno: Errno.EINVAL };
  if (path.startsWith("/")) return { ok: false, errno: Errno.ENOTCAPABLE };
  const current = currentBase(base, root);
  if (!current.ok) return current;
  const start = current.host;
  // A trailing slash asks for a directory and follows a final symlink, as in POSIX.
  const mustBeDirectory = path.endsWith("/");
  const stack: string[] = [];
  const queue = path.split("/").filter((c) => c !== "" && c !== ".");
  if (queue.length === 0) {
    return statOf(start);
  }
  let links = 0;
  let finalStat: BigIntStats | undefined;
  let statIsStale = false;
  while (queue.length > 0) {
    const component = queue.shift()!;
    if (component === "..") {
      if (stack.length === 0) return { ok: false, errno: Errno.ENOTCAPABLE };
      stack.pop();
      statIsStale = true;
      continue;
    }
    const isLast = queue.length === 0;
    const host = join(start, stack, component);
    let stat: BigIntStats | undefined;
    try {
      stat = lstatSync(host, { bigint: true });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT" && isLast) {
        stack.push(component);
        finalStat = undefined;
        statIsStale = false;
        break;
      }
      return { ok: false, errno: hostErrno(error) };
    }
    if (stat.isSymbolicLink() && (!isLast || follow || mustBeDirectory)) {
      if (++links > MAX_SYMLINKS) return { ok: false, errno: Errno.ELOOP };
      let target: string;
      try {
        target = readlinkSync(host);
      } catch (error) {
        return { ok: false, errno: hostErrno(error) };
      }
      if (target.startsWith("/")) return { ok: false, errno: Errno.ENOTCAPABLE };
      // The target is relative to the directory holding the link: the current stack.
      queue.unshift(...target.split("/").filter((c) => c !== "" && c !== "."));
      statIsStale = true;
      continue;
    }
    if (!isLast && !stat.isDirectory()) return { ok: false, errno: Errno.ENOTDIR };
    stack.push(component);
    finalStat = stat;
    statIsStale = false;
  }
  if (statIsStale) {
    const resolved = statOf(join(start, stack));
    if (!resolved.ok) return resolved;
    finalStat = resolved.stat;
  }
  if (mustBeDirectory && finalStat && !finalStat.isDirectory())
    return { ok: false, errno: Errno.ENOTDIR };
  return { ok: true, host: join(start, stack), stat: finalStat };
}

function join(start: string, stack: string[], extra?: string): string {
  let out = start;
  for (const c of stack) out += `/${c}`;
  if (extra !== undefined) out += `/${extra}`;
  return out;
}

function statOf(host: string): Resolution {
  try {
    return { ok: true, host, stat: lstatSync(host, { bigint: true }) };
  } catch (error) {
    return { ok: false, errno: hostErrno(error) };
  }
}
