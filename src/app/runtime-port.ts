// The pods' RuntimePort over the WASI runtime. Besides translating types it gives single-file
// mounts (a subPath naming a file) a home: WASI preopens are directories, so the files meant for
// one guest directory are placed in a scratch directory that is mounted there (file-mounts.ts:
// writable files are hard-linked, read-only ones too when the whole directory is read-only, and
// copied when it is not, so that no read-only host file can be written through).
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { LogRotation } from "../logs/log-writer.ts";
import type {
  ExitStatus as PodExitStatus,
  RunHandle,
  RunSpec,
  RuntimePort,
} from "../pods/ports.ts";
import { MAX_PROBE_OUTPUT_BYTES } from "../pods/prober.ts";
import type { Runtime } from "../runtime/runtime.ts";
import type { Container, ExitStatus } from "../runtime/types.ts";
import { directoryMounts } from "./file-mounts.ts";

export { directoryMounts } from "./file-mounts.ts";

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
  /** The containers started so far, by pod uid, to count restarts; a pod's go when it is over. */
  readonly #started = new Map<string, Set<string>>();

  constructor(options: RuntimePortOptions) {
    this.#options = options;
  }

  run(spec: RunSpec): RunHandle {
    const scratch = join(this.#options.scratchDir, spec.id);
    let container: Container;
    try {
      container = this.#options.runtime.run({
        id: spec.id,
        module: spec.module,
        args: spec.args,
        env: spec.env,
        mounts: directoryMounts(spec.mounts, scratch),
        workingDir: spec.workingDir,
        stdin: spec.stdin,
        logPath: spec.logPath,
        logRotation: this.#options.logRotation,
        ...(spec.entrypointExport === undefined ? {} : { entrypoint: spec.entrypointExport }),
        ...(spec.memoryLimitBytes === undefined ? {} : { memoryLimitBytes: spec.memoryLimitBytes }),
        ...(spec.cpuLimitMillis === undefined ? {} : { cpuLimitMillis: spec.cpuLimitMillis }),
        ...(spec.exclusiveCpu ? { exclusiveCpu: true } : {}),
        ...(spec.network ? { network: spec.network } : {}),
      });
    } catch (error) {
      // Not started: no link or copy is left behind.
      rmSync(scratch, { recursive: true, force: true });
      throw error;
    }
    this.#running.set(spec.id, { labels: spec.labels, container });
    this.#countStart(spec.labels.uid ?? "", spec.labels.container ?? "");
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

  /** The pod is over (its lifecycle reached Terminated): none of its containers starts again. */
  forgetPod(uid: string): void {
    this.#started.delete(uid);
  }

  #countStart(uid: string, container: string): void {
    let started = this.#started.get(uid);
    if (!started) {
      started = new Set();
      this.#started.set(uid, started);
    }
    if (started.has(container)) this.#options.onRestart?.();
    started.add(container);
  }

  /** Containers the port started that have not exited, with their pod labels. */
  running(): RunningContainer[] {
    return [...this.#running.values()];
  }
}
