// Walks a relative path beneath a directory (a volume, an allowed hostPath directory) by
// descriptors, so that no kernel path walk ever crosses a symlink a guest controls — what the
// kubelet's fix for CVE-2017-1002101 does with openat(2) and O_NOFOLLOW.
//
// Why descriptors and not checked names: a guest sharing the directory can swap a checked
// directory for a symlink between the check and the mkdir, so a checked name proves nothing. Here
// each component is opened O_PATH|O_NOFOLLOW through `/proc/self/fd/<dir>/<name>` (the kernel
// starts at the very directory the descriptor holds, wherever it has been renamed to, and follows
// no symlink in the last component); symlinks are read and expanded by this walk alone, within the
// root; a missing directory is made by mkdir inside the held directory (mkdir never follows a
// final symlink) and then opened the same way; the real path is read back from the final
// descriptor. Node has no openat(2); the /proc magic links give the same guarantee on Linux.
//
// What remains: callers hand the runtime a path, not a descriptor, so a guest that renames a
// component and plants a symlink between this walk and the runtime opening the path still wins
// that (short) race; the walk itself never creates or resolves anything outside the root.
import {
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readlinkSync,
  type Stats,
} from "node:fs";
import { relative, sep } from "node:path";
import { volumeError } from "./errors.ts";

/** Linux's O_PATH: a descriptor that names a file without opening it (no I/O, no FIFO blocking). */
const O_PATH = 0o10000000;
/** Linux's own limit on symlinks followed in one path resolution. */
const MAX_SYMLINKS = 40;
/** Directories held at once (each a descriptor). */
const MAX_DEPTH = 256;
const DIRECTORY_MODE = 0o755;
const FILE_MODE = 0o644;

export interface WalkOptions {
  /** Make what is missing: directories on the way, and this for the last component. */
  create?: "directory" | "file";
  /**
   * "within": expand relative symlinks as long as they stay inside the root (an absolute target or
   * a `..` above the root is refused); "refuse": any symlink on the way is an error.
   */
  symlinks: "within" | "refuse";
}

export interface Walked {
  /** The real path of what the walk reached, read back from its descriptor. */
  path: string;
  stat: Stats;
}

export function within(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !rel.startsWith(sep));
}

/**
 * Resolves `path` (relative) beneath the directory `root`, which is trusted and opened as it is.
 * Throws WASMLET_ERR_VOLUME_PATH with a message that names `path` and says why.
 */
export function walkBeneath(root: string, path: string, options: WalkOptions): Walked {
  const walk = new Walk(path, options);
  try {
    return walk.run(root);
  } finally {
    walk.close();
  }
}

class Walk {
  readonly #path: string;
  readonly #options: WalkOptions;
  /** Directories walked into, root first, each an O_PATH descriptor this walk owns. */
  readonly #held: number[] = [];
  /** The names of held directories below the root, for messages. */
  readonly #names: string[] = [];
  #final: number | undefined;
  #links = 0;
  #lastLink: string | undefined;

  constructor(path: string, options: WalkOptions) {
    this.#path = path;
    this.#options = options;
  }

  run(root: string): Walked {
    this.#held.push(this.#os(root, () => openSync(root, O_PATH | constants.O_DIRECTORY)));
    const final = this.#descend();
    const realRoot = readlinkSync(viaDescriptor(this.#held[0]!));
    const real = readlinkSync(viaDescriptor(final));
    // A held directory a guest moved out of the root since it was opened.
    if (!within(realRoot, real))
      throw this.#fail(`${this.#path} is outside the volume: it now resolves to ${real}`);
    const stat = fstatSync(final);
    // readlink names a removed directory "<path> (deleted)": nothing to hand anyone.
    if (stat.nlink === 0) throw this.#fail(`${this.#path} was removed while it was being prepared`);
    return { path: real, stat };
  }

  close(): void {
    for (const fd of [...this.#held.splice(0), ...(this.#final === undefined ? [] : [this.#final])])
      closeQuietly(fd);
  }

  #descend(): number {
    const queue = components(this.#path);
    while (queue.length > 0) {
      const name = queue.shift()!;
      if (name === "..") {
        this.#up();
        continue;
      }
      const isLast = queue.length === 0;
      const fd = this.#open(name, isLast);
      const stat = fstatSync(fd);
      if (stat.isSymbolicLink()) {
        closeSync(fd);
        queue.unshift(...this.#expand(name));
        continue;
      }
      if (isLast) {
        this.#final = fd;
        return fd;
      }
      if (!stat.isDirectory()) {
        closeSync(fd);
        throw this.#fail(`${this.#path}: ${this.#shown(name)} is not a directory`);
      }
      if (this.#held.length > MAX_DEPTH) {
        closeSync(fd);
        throw this.#fail(`${this.#path}: too deep`);
      }
      this.#held.push(fd);
      this.#names.push(name);
    }
    // The path names a directory already held: "", ".", or a link to one.
    return this.#held.at(-1)!;
  }

  /** Opens `name` in the current directory without following it, making it first if asked. */
  #open(name: string, isLast: boolean): number {
    const dir = this.#held.at(-1)!;
    const opened = this.#openNoFollow(dir, name);
    if (opened !== undefined) return opened;
    const create = isLast ? this.#options.create : this.#options.create && "directory";
    if (create === undefined) throw this.#fail(`${this.#path} does not exist in the volume`);
    this.#os(name, () => make(dir, name, create));
    const made = this.#openNoFollow(dir, name);
    if (made === undefined)
      throw this.#fail(`${this.#path}: ${this.#shown(name)} vanished while it was being created`);
    return made;
  }

  #openNoFollow(dir: number, name: string): number | undefined {
    try {
      return openSync(viaDescriptor(dir, name), O_PATH | constants.O_NOFOLLOW);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw this.#fail(`${this.#path}: cannot open ${this.#shown(name)} (${codeOf(error)})`);
    }
  }

  /** The components a symlink stands for, or why it may not be followed. */
  #expand(name: string): string[] {
    const dir = this.#held.at(-1)!;
    // Only the link's text is used: if the name was swapped since, the text is still checked here.
    const target = this.#os(name, () => readlinkSync(viaDescriptor(dir, name)));
    this.#lastLink = `${this.#shown(name)} -> ${target}`;
    if (this.#options.symlinks === "refuse")
      throw this.#fail(
        `${this.#path} goes through symlink ${this.#lastLink}, which is not allowed`,
      );
    if (target.startsWith("/"))
      throw this.#fail(
        `${this.#path} is outside the volume: symlink ${this.#lastLink} is absolute (only relative links inside the volume are followed)`,
      );
    if (++this.#links > MAX_SYMLINKS)
      throw this.#fail(`${this.#path}: too many levels of symbolic links`);
    return components(target);
  }

  /** `..` from a symlink's target: back to the directory walked through, never above the root. */
  #up(): void {
    if (this.#held.length === 1) {
      const how = this.#lastLink === undefined ? "" : `: symlink ${this.#lastLink} leads out of it`;
      throw this.#fail(`${this.#path} is outside the volume${how}`);
    }
    closeQuietly(this.#held.pop()!);
    this.#names.pop();
  }

  #shown(name: string): string {
    return [...this.#names, name].join("/");
  }

  #os<T>(what: string, call: () => T): T {
    try {
      return call();
    } catch (error) {
      throw this.#fail(`${this.#path}: cannot open ${what} (${codeOf(error)})`);
    }
  }

  #fail(message: string) {
    return volumeError("WASMLET_ERR_VOLUME_PATH", message);
  }
}

/** mkdir and O_CREAT|O_EXCL both refuse to follow a final symlink; EEXIST means someone won. */
function make(dir: number, name: string, kind: "directory" | "file"): void {
  try {
    if (kind === "directory") {
      mkdirSync(viaDescriptor(dir, name), DIRECTORY_MODE);
      return;
    }
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    closeSync(openSync(viaDescriptor(dir, name), flags, FILE_MODE));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
}

function viaDescriptor(fd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
}

function components(path: string): string[] {
  return path.split("/").filter((c) => c !== "" && c !== ".");
}

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? String(error);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {}
}
