// Per-container log files, laid out like the kubelet's /var/log/pods:
// `<podLogsDir>/<namespace>_<name>_<uid>/<container>/<restartCount>.log`. Instance N+1 never
// writes to instance N's file, so `kubectl logs --previous` has the last terminated instance even
// across a wasmlet restart. Only the current and the previous instance's files are kept; a pod's
// directory goes when the pod is deleted from the API (or is found orphaned at a resync).
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";

export function podLogDir(
  podLogsDir: string,
  namespace: string,
  name: string,
  uid: string,
): string {
  return join(podLogsDir, `${namespace}_${name}_${uid}`);
}

export function containerLogPath(podDir: string, container: string, restartCount: number): string {
  return join(podDir, container, `${restartCount}.log`);
}

/** Instance indexes that already have a log file, ascending. */
export async function loggedInstances(podDir: string, container: string): Promise<number[]> {
  return instancesIn(await readdir(join(podDir, container)).catch(() => [] as string[]));
}

function instancesIn(entries: string[]): number[] {
  return entries
    .map((entry) => /^(\d+)\.log$/.exec(entry)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/**
 * Makes room for a new instance's log: its index is at least `wanted` and above any index that
 * already has a log (a crash between start and status must not reuse a file); every older log but
 * the newest one (the previous instance's) is removed. Synchronous on purpose: these are a few
 * metadata operations on the node's own disk, on the path of every container start, where a round
 * trip through libuv's thread pool costs milliseconds on a busy node.
 */
export function newInstanceLog(
  podDir: string,
  container: string,
  wanted: number,
): { index: number; path: string } {
  mkdirSync(join(podDir, container), { recursive: true });
  const used = instancesIn(readdirSync(join(podDir, container)));
  const highest = used.at(-1);
  const index = highest === undefined ? wanted : Math.max(wanted, highest + 1);
  for (const n of used.slice(0, -1))
    rmSync(containerLogPath(podDir, container, n), { force: true });
  return { index, path: containerLogPath(podDir, container, index) };
}

/** The log of the instance before `current`, if one was kept. */
export async function previousLogPath(
  podDir: string,
  container: string,
  current: number,
): Promise<string | undefined> {
  const older = (await loggedInstances(podDir, container)).filter((n) => n < current);
  const last = older.at(-1);
  return last === undefined ? undefined : containerLogPath(podDir, container, last);
}

/** Removes a deleted pod's logs. */
export async function removePodLogs(
  podLogsDir: string,
  namespace: string,
  name: string,
  uid: string,
): Promise<void> {
  await rm(podLogDir(podLogsDir, namespace, name, uid), { recursive: true, force: true });
}

/**
 * Removes the log directories of pods whose uid is not in `known` (deleted while wasmlet was
 * down); returns their names. Names and namespaces cannot hold `_`, so the uid is the last part.
 */
export async function removeOrphanLogs(
  podLogsDir: string,
  known: ReadonlySet<string>,
): Promise<string[]> {
  const removed: string[] = [];
  for (const entry of await readdir(podLogsDir).catch(() => [] as string[])) {
    const parts = entry.split("_");
    if (parts.length !== 3 || known.has(parts[2]!)) continue;
    await rm(join(podLogsDir, entry), { recursive: true, force: true });
    removed.push(entry);
  }
  return removed;
}
