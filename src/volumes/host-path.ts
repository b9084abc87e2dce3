// hostPath volumes: allowed only when the node's configuration says so, with the kubelet's type
// checks (DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice, BlockDevice).
import { lstat, mkdir, open, stat } from "node:fs/promises";
import { dirname, resolve, sep } from "node:path";
import { volumeError } from "./errors.ts";

/** `true`: any host path; `false`: none; a list: only paths under one of these directories. */
export type HostPathPolicy = boolean | readonly string[];

export function hostPathAllowed(policy: HostPathPolicy, path: string): boolean {
  if (policy === true) return true;
  if (policy === false) return false;
  const target = resolve(path);
  return policy.some((prefix) => {
    const root = resolve(prefix);
    return target === root || target.startsWith(root.endsWith(sep) ? root : root + sep);
  });
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
