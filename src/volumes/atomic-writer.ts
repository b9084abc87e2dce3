// The kubelet's AtomicWriter: a volume directory whose visible entries are symlinks into `..data`,
// itself a symlink to a timestamped directory. An update writes a new timestamped directory and
// swaps `..data` with one rename, so a reader sees either the old or the new set of files, never a
// mix. This is how ConfigMap/Secret/downwardAPI/projected updates reach running containers.
import { randomBytes } from "node:crypto";
import {
  chmod,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import { volumeError } from "./errors.ts";

export interface FileProjection {
  data: Uint8Array;
  /** File mode bits, e.g. 0o644. */
  mode: number;
}

/** Relative path → content. */
export type Payload = Map<string, FileProjection>;

export const DATA_DIR = "..data";
const DATA_DIR_TMP = "..data_tmp";

/** Rejects absolute paths, `..` elements and paths starting with `..` (AtomicWriter's validatePath). */
export function validatePayloadPath(path: string): void {
  if (path === "") throw volumeError("WASMLET_ERR_VOLUME_PATH", "invalid path: must not be empty");
  if (path.startsWith("/"))
    throw volumeError("WASMLET_ERR_VOLUME_PATH", `invalid path: must be relative path: ${path}`);
  if (path.length > 4096)
    throw volumeError(
      "WASMLET_ERR_VOLUME_PATH",
      `invalid path: must be less than or equal to 4096 characters`,
    );
  const segments = path.split("/");
  for (const segment of segments) {
    if (segment.length > 255)
      throw volumeError(
        "WASMLET_ERR_VOLUME_PATH",
        `invalid path: segments must be less than or equal to 255 characters`,
      );
  }
  if (segments.includes(".."))
    throw volumeError("WASMLET_ERR_VOLUME_PATH", `invalid path: must not contain '..': ${path}`);
  if (path.startsWith(".."))
    throw volumeError("WASMLET_ERR_VOLUME_PATH", `invalid path: must not start with '..': ${path}`);
}

function timestampedName(now: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const stamp = `..${now.getUTCFullYear()}_${p(now.getUTCMonth() + 1)}_${p(now.getUTCDate())}_${p(now.getUTCHours())}_${p(now.getUTCMinutes())}_${p(now.getUTCSeconds())}`;
  return `${stamp}.${randomBytes(5).toString("hex")}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

async function listFiles(root: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(root, prefix), { withFileTypes: true })) {
    const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await listFiles(root, rel)));
    else out.push(rel);
  }
  return out;
}

async function sameAsCurrent(dataDir: string, payload: Payload): Promise<boolean> {
  let files: string[];
  try {
    files = await listFiles(dataDir);
  } catch {
    return false;
  }
  if (files.length !== payload.size) return false;
  for (const file of files) {
    const wanted = payload.get(file);
    if (!wanted) return false;
    const path = join(dataDir, file);
    const [content, info] = await Promise.all([readFile(path), stat(path)]);
    if ((info.mode & 0o7777) !== wanted.mode) return false;
    if (!Buffer.from(wanted.data).equals(content)) return false;
  }
  return true;
}

function topLevel(path: string): string {
  return path.split("/")[0] ?? path;
}

/**
 * Makes `targetDir` hold exactly `payload`. Returns true when something changed. Safe to call
 * again after a crash at any step: the `..data` swap is the only point where readers switch.
 */
export async function writeAtomic(
  targetDir: string,
  payload: Payload,
  now = new Date(),
): Promise<boolean> {
  for (const path of payload.keys()) validatePayloadPath(path);
  await mkdir(targetDir, { recursive: true, mode: 0o755 });
  const dataLink = join(targetDir, DATA_DIR);
  let oldTsName: string | undefined;
  try {
    oldTsName = await readlink(dataLink);
  } catch {
    oldTsName = undefined;
  }
  if (oldTsName !== undefined && (await sameAsCurrent(join(targetDir, oldTsName), payload))) {
    // Contents unchanged; still make sure every visible link exists (a crash may have left some out).
    await linkVisible(targetDir, payload);
    return false;
  }

  const tsName = timestampedName(now);
  const tsDir = join(targetDir, tsName);
  await mkdir(tsDir, { mode: 0o755 });
  for (const [path, file] of payload) {
    const full = join(tsDir, path);
    await mkdir(dirname(full), { recursive: true, mode: 0o755 });
    await writeFile(full, file.data, { mode: file.mode });
    // writeFile's mode is filtered by the umask; set it exactly.
    await chmod(full, file.mode);
  }

  const tmpLink = join(targetDir, DATA_DIR_TMP);
  await rm(tmpLink, { force: true });
  await symlink(tsName, tmpLink);
  await rename(tmpLink, dataLink);

  await linkVisible(targetDir, payload);

  // Remove visible entries that the new payload no longer has.
  const wanted = new Set([...payload.keys()].map(topLevel));
  for (const entry of await readdir(targetDir)) {
    if (entry.startsWith("..")) continue;
    if (!wanted.has(entry)) await rm(join(targetDir, entry), { recursive: true, force: true });
  }
  // Remove every timestamped directory except the live one.
  for (const entry of await readdir(targetDir)) {
    if (entry.startsWith("..") && entry !== DATA_DIR && entry !== tsName) {
      await rm(join(targetDir, entry), { recursive: true, force: true });
    }
  }
  return true;
}

async function linkVisible(targetDir: string, payload: Payload): Promise<void> {
  for (const name of new Set([...payload.keys()].map(topLevel))) {
    const visible = join(targetDir, name);
    if (!(await exists(visible))) await symlink(posix.join(DATA_DIR, name), visible);
  }
}
