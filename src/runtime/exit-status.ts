// From what happened to an instance to the ExitStatus the kubelet would report: exit codes like a
// Linux process (143 after SIGTERM, 137 after SIGKILL or OOM, 134 for a trap as for abort(), 128
// when it never started, like containerd), reasons Completed / Error / OOMKilled /
// DeadlineExceeded / StartError.
import { WASM_PAGE_BYTES } from "../wasm/binary.ts";
import type { Outcome } from "./protocol.ts";
import type { ExitStatus } from "./types.ts";

/** Why the host ended an instance itself (terminated its thread or set the kill flag). */
export type KillCause =
  | { kind: "grace"; gracePeriodMs: number }
  | { kind: "deadline"; deadlineMs: number }
  | { kind: "destroyed" }
  | { kind: "container-exited" };

export interface ExitFacts {
  /** What the worker reported; undefined when the thread was terminated or crashed. */
  outcome: Outcome | undefined;
  /** Set when the host killed the instance. */
  killed: KillCause | undefined;
  /** The worker thread died on its own (not terminated by the host). */
  crash: { message: string; code?: string } | undefined;
  memoryBytes: number;
  memoryLimitBytes: number | undefined;
  startedAt: Date | undefined;
  finishedAt: Date;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** A guest that died abnormally this close to its limit is taken to have died of it. */
export function nearMemoryLimit(memoryBytes: number, limit: number | undefined): boolean {
  if (limit === undefined) return false;
  const margin = Math.min(Math.max(4 * MiB, limit / 8), limit / 4);
  return memoryBytes >= limit - margin;
}

/**
 * The guest's linear memory is at its limit: one more 64 KiB page would be past it, so a further
 * memory.grow is refused (the module's maximum is the limit rounded down to whole pages).
 */
export function atMemoryLimit(memoryBytes: number, limit: number | undefined): boolean {
  return limit !== undefined && memoryBytes > 0 && memoryBytes + WASM_PAGE_BYTES > limit;
}

function describeKill(cause: KillCause): string {
  switch (cause.kind) {
    case "grace":
      return cause.gracePeriodMs === 0
        ? "killed on request without a grace period"
        : `killed: still running ${cause.gracePeriodMs} ms after the stop request`;
    case "deadline":
      return `killed: ran past its deadline of ${cause.deadlineMs} ms`;
    case "destroyed":
      return "killed: the runtime was destroyed";
    case "container-exited":
      return "killed: its container exited";
  }
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

/** A limit as people write it: "64 MiB", "1 GiB", "1536 MiB", else to a tenth of a MiB. */
function size(bytes: number): string {
  for (const [unit, n] of [
    ["GiB", GiB],
    ["MiB", MiB],
    ["KiB", KiB],
  ] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n} ${unit}`;
  }
  return bytes >= MiB ? mib(bytes) : `${bytes} bytes`;
}

export function exitStatus(facts: ExitFacts): ExitStatus {
  const times = { startedAt: facts.startedAt, finishedAt: facts.finishedAt };
  const { outcome, killed } = facts;
  const limit = facts.memoryLimitBytes;
  // A guest that ended badly with no room left to grow most likely ended because memory.grow
  // failed: say so, naming the limit (whether or not it counts as OOMKilled below).
  const atLimit = atMemoryLimit(facts.memoryBytes, limit);
  const ended = (what: string): string =>
    atLimit
      ? `${what} after its memory reached the limit of ${size(limit!)} (a further memory.grow is refused)`
      : what;
  const oom = (what: string): ExitStatus => ({
    exitCode: 137,
    reason: "OOMKilled",
    message: atLimit
      ? ended(what)
      : `out of memory: ${what}, with ${mib(facts.memoryBytes)} of its ${mib(limit ?? 0)} limit in use`,
    ...times,
  });
  if (outcome?.kind === "start-failed") {
    const { message, hint } = outcome.error;
    return {
      exitCode: 128,
      reason: "StartError",
      message: hint ? `${message} (${hint})` : message,
      ...times,
    };
  }
  if (outcome?.kind === "memory-limit") {
    return { exitCode: 137, reason: "OOMKilled", message: outcome.message, ...times };
  }
  if (killed && (outcome === undefined || outcome.kind === "stopped")) {
    const reason = killed.kind === "deadline" ? "DeadlineExceeded" : "Error";
    return { exitCode: 137, reason, message: describeKill(killed), signal: 9, ...times };
  }
  if (outcome === undefined) {
    const crash = facts.crash ?? { message: "unknown cause" };
    if (crash.code === "ERR_WORKER_OUT_OF_MEMORY") {
      return {
        exitCode: 137,
        reason: "OOMKilled",
        message: `the worker thread ran out of memory: ${crash.message}`,
        ...times,
      };
    }
    return {
      exitCode: 137,
      reason: "Error",
      message: `the worker thread crashed: ${crash.message}`,
      ...times,
    };
  }
  switch (outcome.kind) {
    case "stopped":
      return outcome.signal === 15
        ? { exitCode: 143, reason: "Error", message: "stopped on request", signal: 15, ...times }
        : { exitCode: 137, reason: "Error", message: "killed on request", signal: 9, ...times };
    case "exit": {
      const code = outcome.code & 0xff;
      if (code === 0) return { exitCode: 0, reason: "Completed", ...times };
      if (nearMemoryLimit(facts.memoryBytes, facts.memoryLimitBytes))
        return oom(`exited with code ${outcome.code}`);
      return {
        exitCode: code,
        reason: "Error",
        message: ended(`exited with code ${outcome.code}`),
        ...times,
      };
    }
    case "trap": {
      const where = outcome.functionName ? ` in function ${outcome.functionName}` : "";
      const message = `wasm trap: ${outcome.message}${where}`;
      if (nearMemoryLimit(facts.memoryBytes, facts.memoryLimitBytes)) return oom(message);
      return { exitCode: 134, reason: "Error", message: ended(message), ...times };
    }
  }
}
