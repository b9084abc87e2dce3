// Per-container log files, laid out like the kubelet's /var/log/pods:
// `<podLogsDir>/<namespace>_<name>_<uid>/<container>/<restartCount>.log`. Instance N+1 never
// writes to instance N's file, so `kubectl logs --previous` has the last terminated instance even
// across a wasmlet restart. Only the current and the previous instance's files are kept.
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
  const entries = await readdir(join(podDir, container)).catch(() => [] as string[]);
  return entries
    .map((entry) => /^(\d+)\.log$/.exec(entry)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/** The index for a new instance: at least `wanted`, and above any index that already has a log. */
export async function freeInstanceIndex(
  podDir: string,
  container: string,
  wanted: number,
): Promise<number> {
  const used = await loggedInstances(podDir, container);
  const highest = used.at(-1);
  return highest === undefined ? wanted : Math.max(wanted, highest + 1);
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

/** Removes every log of the container except instance `current` and the one before it. */
export async function pruneLogs(podDir: string, container: string, current: number): Promise<void> {
  const older = (await loggedInstances(podDir, container)).filter((n) => n < current);
  for (const n of older.slice(0, -1))
    await rm(containerLogPath(podDir, container, n), { force: true });
}
