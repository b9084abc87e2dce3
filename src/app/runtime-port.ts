// The pods' RuntimePort over the WASI runtime. Besides translating types it gives single-file
// mounts (a subPath naming a file) a home: WASI preopens are directories, so the files meant for
// one guest directory are hard-linked (copied across filesystems) into a scratch directory that is
// mounted there.
import { copyFileSync, linkSync, mkdirSync, rmSync } from "node:fs";
import { join, posix } from "node:path";
import type { LogRotation } from "../logs/log-writer.ts";
import type {
  ExitStatus as PodExitStatus,
  RunHandle,
  RunMount,
  RunSpec,
  RuntimePort,
} from "../pods/ports.ts";
import { MAX_PROBE_OUTPUT_BYTES } from "../pods/prober.ts";
import type { Runtime } from "../runtime/runtime.ts";
import type { Container, ExitStatus, Mount } from "../runtime/types.ts";
import { appError } from "./errors.ts";

export interface RuntimePortOptions {
  runtime: Runtime;
  logRotation: LogRotation;
  /** Where scratch directories for single-file mounts are made (one per instance). */
  scratchDir: string;
  /** A container of a pod started again (for metrics). */
  onRestart?: () => void;
  onExit?: (status: ExitStatus) => void;
}

function toPodExit(status: ExitStatus): PodExitStatus {
  const out: PodExitStatus = {
    exitCode: status.exitCode,
    startedAt: status.startedAt ?? status.finishedAt,
    finishedAt: status.finishedAt,
  };
  if (status.reason !== "Completed" && status.reason !== "Error") out.reason = status.reason;
  if (status.message) out.message = status.message;
  return out;
}

/** A container the port started, with the pod it belongs to. */
export interface RunningContainer {
  labels: Readonly<Record<string, string>>;
  container: Container;
}

export class WasiRuntimePort implements RuntimePort {
  readonly #options: RuntimePortOptions;
  readonly #running = new Map<string, RunningContainer>();
  /** `uid/container` of every container started, to count restarts. */
  readonly #started = new Set<string>();

  constructor(options: RuntimePortOptions) {
    this.#options = options;
  }

  run(spec: RunSpec): RunHandle {
    const scratch = join(this.#options.scratchDir, spec.id);
    const mounts = directoryMounts(spec.mounts, scratch);
    const container = this.#options.runtime.run({
      id: spec.id,
      module: spec.module,
      args: spec.args,
      env: spec.env,
      mounts,
      workingDir: spec.workingDir,
      stdin: spec.stdin,
      logPath: spec.logPath,
      logRotation: this.#options.logRotation,
      ...(spec.entrypointExport === undefined ? {} : { entrypoint: spec.entrypointExport }),
      ...(spec.memoryLimitBytes === undefined ? {} : { memoryLimitBytes: spec.memoryLimitBytes }),
      ...(spec.cpuRequestMillis === undefined ? {} : { cpuRequestMillis: spec.cpuRequestMillis }),
    });
    this.#running.set(spec.id, { labels: spec.labels, container });
    const key = `${spec.labels.uid}/${spec.labels.container}`;
    if (this.#started.has(key)) this.#options.onRestart?.();
    this.#started.add(key);
    const exited = container.exited.then((status) => {
      this.#running.delete(spec.id);
      this.#options.onExit?.(status);
      rmSync(scratch, { recursive: true, force: true });
      return toPodExit(status);
    });
    return {
      id: spec.id,
      started: container.started,
      exited,
      stop: async (graceMs) => {
        await container.stop(graceMs);
      },
      exec: async (args, timeoutMs) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        const instance = container.exec({
          args,
          ...(timeoutMs === undefined ? {} : { deadlineMs: timeoutMs }),
          onOutput: (_stream, chunk) => {
            if (kept >= MAX_PROBE_OUTPUT_BYTES) return;
            chunks.push(Buffer.from(chunk.subarray(0, MAX_PROBE_OUTPUT_BYTES - kept)));
            kept += chunk.length;
          },
        });
        const status = await instance.exited;
        return {
          exitCode: status.exitCode,
          output: Buffer.concat(chunks).toString("utf8"),
          timedOut: status.reason === "DeadlineExceeded",
        };
      },
    };
  }

  /** Containers the port started that have not exited, with their pod labels. */
  running(): RunningContainer[] {
    return [...this.#running.values()];
  }
}

/** Directory mounts as they are, plus one scratch directory per guest directory that receives files. */
export function directoryMounts(mounts: readonly RunMount[], scratch: string): Mount[] {
  const out: Mount[] = mounts
    .filter((m) => m.kind !== "file")
    .map((m) => ({ hostPath: m.hostPath, guestPath: m.guestPath, readOnly: m.readOnly }));
  const files = mounts.filter((m) => m.kind === "file");
  const byDir = new Map<string, RunMount[]>();
  for (const file of files) {
    const dir = posix.dirname(file.guestPath);
    byDir.set(dir, [...(byDir.get(dir) ?? []), file]);
  }
  let index = 0;
  for (const [guestDir, group] of byDir) {
    if (out.some((m) => m.guestPath === guestDir)) {
      throw appError(
        "WASMLET_ERR_FILE_MOUNT",
        `cannot mount ${group.map((f) => f.guestPath).join(", ")}: ${guestDir} is itself a volume mount, and WASI mounts directories only`,
      );
    }
    const dir = join(scratch, String(index++));
    mkdirSync(dir, { recursive: true });
    for (const file of group) {
      const target = join(dir, posix.basename(file.guestPath));
      try {
        linkSync(file.hostPath, target);
      } catch {
        copyFileSync(file.hostPath, target);
      }
    }
    out.push({ hostPath: dir, guestPath: guestDir, readOnly: group.every((f) => f.readOnly) });
  }
  return out;
}
