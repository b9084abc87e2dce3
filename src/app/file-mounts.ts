// Single-file mounts. WASI preopens are directories, so a mount whose source is one file (a
// hostPath of type File, a subPath naming a file, a configMap/secret item mounted by subPath) is
// placed in a scratch host directory, one per guest directory that receives files, and that
// directory is mounted there. The runtime enforces read-only per mount, not per file, so:
// - a guest directory whose file mounts are all read-only is mounted read-only, and its files are
//   hard links (the guest sees the host file's updates, as through a read-only bind mount);
// - in a guest directory with a writable file mount (mounted writable), the writable files are hard
//   links (writes reach the host file, as through a bind mount) and every read-only file is a
//   private copy, never a link: a copy cannot write back to the host (finding F7). The copy is a
//   snapshot taken when the container starts — configMap/secret subPath mounts never update in
//   the kubelet either — and is left without write permission.
// A host symlink is never followed (the name itself is linked or re-created; the sandbox resolves
// it inside the guest directory), and a device, FIFO or socket is never copied: a read-only one in
// a writable guest directory is refused with the names of the mounts that share the directory.
import {
  chmodSync,
  closeSync,
  constants,
  copyFileSync,
  fstatSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readlinkSync,
  rmSync,
  type Stats,
  symlinkSync,
} from "node:fs";
import { join, posix } from "node:path";
import type { RunMount } from "../pods/ports.ts";
import type { Mount } from "../runtime/types.ts";
import { appError } from "./errors.ts";

/** How one file mount lands in its scratch directory. */
export interface FilePlacement {
  /** The host file (a symlink is not followed). */
  source: string;
  /** Its name in the scratch directory: the last component of the guest path. */
  name: string;
  guestPath: string;
  readOnly: boolean;
  /**
   * `link`: a hard link to the host file (writes reach the host; only for a writable mount or in a
   * read-only scratch directory); `copy`: a private snapshot without write permission.
   */
  method: "link" | "copy";
}

/** One host directory built for a guest directory that receives files. */
export interface ScratchDirectory {
  hostPath: string;
  guestPath: string;
  /** Mounted read-only: every file mount in it is read-only. */
  readOnly: boolean;
  files: FilePlacement[];
}

export interface MountPlan {
  /** What the runtime mounts: the directory mounts as given, then one per scratch directory. */
  mounts: Mount[];
  scratch: ScratchDirectory[];
}

/** Decides, without touching the disk, which scratch directories to build and how each file gets there. */
export function planMounts(mounts: readonly RunMount[], scratchRoot: string): MountPlan {
  const out: Mount[] = mounts
    .filter((m) => m.kind !== "file")
    .map((m) => ({ hostPath: m.hostPath, guestPath: m.guestPath, readOnly: m.readOnly }));
  const byDir = new Map<string, RunMount[]>();
  for (const file of mounts) {
    if (file.kind !== "file") continue;
    const dir = posix.dirname(file.guestPath);
    const group = byDir.get(dir) ?? [];
    if (group.some((f) => f.guestPath === file.guestPath)) {
      throw appError(
        "WASMLET_ERR_FILE_MOUNT",
        `cannot mount ${file.hostPath} at ${file.guestPath}: another file is mounted there`,
      );
    }
    group.push(file);
    byDir.set(dir, group);
  }
  const scratch: ScratchDirectory[] = [];
  for (const [guestDir, group] of byDir) {
    if (out.some((m) => m.guestPath === guestDir)) {
      throw appError(
        "WASMLET_ERR_FILE_MOUNT",
        `cannot mount ${group.map((f) => f.guestPath).join(", ")}: ${guestDir} is itself a volume mount, and WASI mounts directories only`,
      );
    }
    const readOnly = group.every((f) => f.readOnly);
    const hostPath = join(scratchRoot, String(scratch.length));
    scratch.push({
      hostPath,
      guestPath: guestDir,
      readOnly,
      files: group.map((f) => ({
        source: f.hostPath,
        name: posix.basename(f.guestPath),
        guestPath: f.guestPath,
        readOnly: f.readOnly,
        // Never a link to a read-only file in a directory the guest can write.
        method: f.readOnly && !readOnly ? "copy" : "link",
      })),
    });
  }
  for (const dir of scratch) {
    out.push({ hostPath: dir.hostPath, guestPath: dir.guestPath, readOnly: dir.readOnly });
  }
  return { mounts: out, scratch };
}

/** Builds the plan's scratch directories (each emptied first). */
export function layOut(plan: MountPlan): void {
  for (const dir of plan.scratch) {
    rmSync(dir.hostPath, { recursive: true, force: true });
    mkdirSync(dir.hostPath, { recursive: true, mode: 0o755 });
    for (const file of dir.files) place(dir, file);
  }
}

/** Directory mounts as they are, plus one scratch directory per guest directory that receives files. */
export function directoryMounts(mounts: readonly RunMount[], scratchRoot: string): Mount[] {
  const plan = planMounts(mounts, scratchRoot);
  layOut(plan);
  return plan.mounts;
}

/** Link errors after which a copy is made instead (another file system, protected_hardlinks, link count). */
const UNLINKABLE = new Set(["EXDEV", "EPERM", "EMLINK"]);

function place(dir: ScratchDirectory, file: FilePlacement): void {
  const target = join(dir.hostPath, file.name);
  let linkError = "";
  if (file.method === "link") {
    try {
      linkSync(file.source, target);
      return;
    } catch (error) {
      linkError = codeOf(error);
      if (!UNLINKABLE.has(linkError)) throw error;
    }
    // Cannot be linked (e.g. another file system): for a writable file, the copy keeps the guest
    // running but its writes stay in the copy (wasmlet cannot bind-mount).
  }
  copy(dir, file, target, linkError);
}

/** A copy that cannot reach the source: a regular file's bytes, or a symlink re-created as it is. */
function copy(dir: ScratchDirectory, file: FilePlacement, target: string, linkError: string): void {
  const refuse = (what: string) => {
    const writable = dir.files.filter((f) => !f.readOnly).map((f) => f.guestPath);
    const why =
      file.method === "copy"
        ? `read-only files are copied, never linked, into ${dir.guestPath}, which is writable for ${writable.join(", ")}; mount those in another directory, or all of them read-only`
        : `linking it failed (${linkError})`;
    return appError(
      "WASMLET_ERR_FILE_MOUNT",
      `cannot mount ${file.source} at ${file.guestPath}: it is ${what}, which cannot be copied, and ${why}`,
    );
  };
  const before = lstatSync(file.source);
  if (before.isSymbolicLink()) {
    symlinkSync(readlinkSync(file.source), target);
    return;
  }
  if (!before.isFile()) throw refuse(kindOf(before));
  let fd: number;
  try {
    fd = openSync(
      file.source,
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY,
    );
  } catch (error) {
    if (codeOf(error) === "ELOOP") throw refuse("a symbolic link now");
    throw error;
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) throw refuse(kindOf(info));
    // The open descriptor is copied (reflinked where the file system can), never the name again.
    copyFileSync(
      `/proc/self/fd/${fd}`,
      target,
      constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE,
    );
    chmodSync(target, file.readOnly ? (info.mode & 0o444) | 0o400 : info.mode & 0o777);
  } finally {
    closeSync(fd);
  }
}

function kindOf(info: Stats): string {
  if (info.isDirectory()) return "a directory";
  if (info.isCharacterDevice()) return "a character device";
  if (info.isBlockDevice()) return "a block device";
  if (info.isFIFO()) return "a FIFO";
  if (info.isSocket()) return "a socket";
  return "not a regular file";
}

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? "";
}
