// hostPath volumes: allowed only when the node's configuration says so, with the kubelet's type
// checks (DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice, BlockDevice).
import { lstatSync, realpathSync } from "node:fs";
import { lstat, mkdir, open, stat } from "node:fs/promises";
import { basename, dirname, join, relative, resolve } from "node:path";
import { walkBeneath, within } from "./beneath.ts";
import { volumeError } from "./errors.ts";

/** `true`: any host path; `false`: none; a list: only paths under one of these directories. */
export type HostPathPolicy = boolean | readonly string[];

/**
 * Whether the policy allows `path`. A list is checked against real paths (symlinks resolved, on
 * both sides), so a symlink planted under an allowed directory cannot lead a mount out of it.
 */
export function hostPathAllowed(policy: HostPathPolicy, path: string): boolean {
  if (typeof policy === "boolean") return policy;
  return allowedUnder(policy, path).root !== undefined;
}

/**
 * Checks a pod's hostPath against the policy and its type (creating it for the *OrCreate types)
 * and returns the host path to mount: for a list policy, the real path the check was made on.
 */
export async function prepareHostPath(
  policy: HostPathPolicy,
  path: string,
  type: string | undefined,
): Promise<string> {
  if (policy === true) {
    await checkHostPathType(path, type);
    return path;
  }
  if (policy === false) throw notAllowed(path, "");
  const { root, real } = allowedUnder(policy, path);
  if (real === undefined)
    throw notAllowed(path, ": it goes through a dangling symlink or a symlink loop");
  if (root === undefined)
    throw notAllowed(
      path,
      real === resolve(path) ? "" : `: it resolves to ${real}, outside every allowed directory`,
    );
  if (type === "DirectoryOrCreate" || type === "FileOrCreate") {
    // Made by descriptors from the allowed directory down, refusing any symlink on the way (the
    // path is real, so a symlink there was planted since it was resolved): nothing is made elsewhere.
    await mkdir(root, { recursive: true, mode: 0o755 });
    try {
      walkBeneath(root, relative(root, real), {
        symlinks: "refuse",
        create: type === "FileOrCreate" ? "file" : "directory",
      });
    } catch (error) {
      throw volumeError(
        "WASMLET_ERR_VOLUME_SETUP",
        `hostPath ${path} could not be created: ${(error as Error).message}`,
      );
    }
  }
  await checkHostPathType(real, type);
  return real;
}

/** The real path of `path` and the (real) allowed directory it lies under, if any. */
function allowedUnder(
  prefixes: readonly string[],
  path: string,
): { root?: string; real: string | undefined } {
  const real = realPathOf(path);
  if (real === undefined) return { real };
  for (const prefix of prefixes) {
    // Prefixes are the administrator's own paths and are trusted, ancestors included: a
    // symlink among them (say /data -> /mnt/disk1/data) is followed.
    const root = realPathOf(prefix);
    if (root !== undefined && within(root, real)) return { root, real };
  }
  return { real };
}

/**
 * `path` with every symlink resolved; for a path that does not exist yet, the real path of its
 * deepest existing ancestor plus the missing rest. Undefined when an existing entry cannot be
 * resolved (a dangling symlink, whose target could be created later, or a loop).
 */
function realPathOf(path: string): string | undefined {
  const missing: string[] = [];
  let head = resolve(path);
  for (;;) {
    try {
      return join(realpathSync.native(head), ...missing);
    } catch {
      if (exists(head)) return undefined;
    }
    const parent = dirname(head);
    if (parent === head) return undefined;
    missing.unshift(basename(head));
    head = parent;
  }
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code !== "ENOENT" && code !== "ENOTDIR";
  }
}

function notAllowed(path: string, why: string) {
  return volumeError(
    "WASMLET_ERR_VOLUME_SETUP",
    `hostPath ${path} is not allowed by this node's configuration${why}`,
  );
}

/** Checks (and for the *OrCreate types, creates) a hostPath as the kubelet's hostPath plugin does. */
export async function checkHostPathType(path: string, type: string | undefined): Promise<void> {
  const fail = (what: string) => {
    throw volumeError(
      "WASMLET_ERR_VOLUME_SETUP",
      `hostPath type check failed: ${path} is not a ${what}`,
    );
  };
  const info = await stat(path).catch(() => undefined);
  switch (type ?? "") {
    case "":
      return;
    case "DirectoryOrCreate":
      if (!info) {
        await mkdir(path, { recursive: true, mode: 0o755 });
        return;
      }
      if (!info.isDirectory()) fail("directory");
      return;
    case "Directory":
      if (!info)
        throw volumeError(
          "WASMLET_ERR_VOLUME_SETUP",
          `hostPath type check failed: ${path} is not a directory`,
        );
      if (!info.isDirectory()) fail("directory");
      return;
    case "FileOrCreate":
      if (!info) {
        await mkdir(dirname(path), { recursive: true, mode: 0o755 });
        await (await open(path, "a", 0o644)).close();
        return;
      }
      if (!info.isFile()) fail("file");
      return;
    case "File":
      if (!info?.isFile()) fail("file");
      return;
    case "Socket":
      if (!info?.isSocket()) fail("socket file");
      return;
    case "CharDevice":
      if (!info?.isCharacterDevice()) fail("character device");
      return;
    case "BlockDevice":
      if (!info?.isBlockDevice()) fail("block device");
      return;
    default:
      throw volumeError(
        "WASMLET_ERR_VOLUME_SETUP",
        `hostPath type check failed: unknown type ${type}`,
      );
  }
}

export async function isDirectory(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined))?.isDirectory() ?? false;
}
