// The host side of one running instance (a container or an exec): places it on a worker, sends
// it the run, relays output, enforces stop grace periods and deadlines, and turns the worker's
// report (or the lack of one) into an ExitStatus.

import { HostControl } from "./control.ts";
import { runtimeError } from "./errors.ts";
import { type ExitFacts, exitStatus, type KillCause } from "./exit-status.ts";
import { checkModule, compileModule } from "./module-check.ts";
import { type OutputMode, StopLevel, toWireError, type WorkerToHost } from "./protocol.ts";
import type {
  ContainerNetwork,
  CpuUsage,
  ExitStatus,
  Instance,
  Mount,
  OutputListener,
  OutputStream,
  RuntimeLogger,
} from "./types.ts";
import type { GuestWorker, WorkerPool } from "./worker-pool.ts";

/**
 * After the kill flag is set, a guest ends at its next WASI call or yield point (well under a
 * millisecond apart). One that is still there after this is stuck in the host (a hung file
 * system): its whole worker is terminated, the only way to take the thread back.
 */
const STUCK_AFTER_MS = 5000;

export interface InstanceParams {
  id: string;
  module: WebAssembly.Module | Uint8Array;
  args: string[];
  env: Record<string, string>;
  mounts: Mount[];
  entrypoint: string;
  memoryLimitBytes: number | undefined;
  /** Instances of one group (a container and its execs) share the memory limit. */
  memoryGroup: string;
  cpuLimitMillis: number | undefined;
  /** A worker of its own (exclusive CPUs). */
  dedicated: boolean;
  /** Run on this worker (an exec beside its container). */
  near?: GuestWorker;
  stdin: boolean;
  output: OutputMode;
  deadlineMs: number | undefined;
  /** Listeners and connection limit (a container; its execs have no listeners). */
  network: ContainerNetwork | undefined;
  /** Exec output, delivered in order; a returned promise holds the guest back (backpressure). */
  sink?: (stream: OutputStream, chunk: Uint8Array) => void | Promise<void>;
}

export interface InstanceContext {
  pool: WorkerPool;
  logger: RuntimeLogger | undefined;
  onExit(instance: InstanceHandle): void;
}

export class InstanceHandle implements Instance {
  readonly id: string;
  readonly started: Promise<Date>;
  readonly exited: Promise<ExitStatus>;
  protected readonly params: InstanceParams;
  protected readonly context: InstanceContext;
  readonly #control: HostControl;
  #resolveStarted!: (date: Date) => void;
  #rejectStarted!: (error: Error) => void;
  #resolveExited!: (status: ExitStatus) => void;
  #worker: GuestWorker | undefined;
  #module: WebAssembly.Module | undefined;
  #status: ExitStatus | undefined;
  #startedAt: Date | undefined;
  #finalCpu: CpuUsage | undefined;
  #finalMemory = 0;
  #killed: KillCause | undefined;
  #terminating = false;
  /** The worker sent its exit report. */
  #reported = false;
  #stopRequested = false;
  #graceDeadline = Number.POSITIVE_INFINITY;
  #graceTimer: NodeJS.Timeout | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #killTimer: NodeJS.Timeout | undefined;
  #outputChain: Promise<void> = Promise.resolve();
  protected readonly listeners = new Set<OutputListener>();

  constructor(params: InstanceParams, context: InstanceContext) {
    this.id = params.id;
    this.params = params;
    this.context = context;
    this.#control = new HostControl(params.stdin);
    this.started = new Promise<Date>((resolve, reject) => {
      this.#resolveStarted = resolve;
      this.#rejectStarted = reject;
    });
    // A caller that only awaits `exited` must not get an unhandled rejection.
    this.started.catch(() => {});
    this.exited = new Promise<ExitStatus>((resolve) => {
      this.#resolveExited = resolve;
    });
    void this.#launch();
  }

  get running(): boolean {
    return this.#startedAt !== undefined && this.#status === undefined;
  }

  /** The compiled module, once known (exec runs it again). */
  protected get module(): WebAssembly.Module | undefined {
    return this.#module;
  }

  /** The worker the instance runs on, once placed. */
  protected get worker(): GuestWorker | undefined {
    return this.#worker;
  }

  async #launch(): Promise<void> {
    const { params } = this;
    let module: WebAssembly.Module;
    try {
      module =
        params.module instanceof WebAssembly.Module
          ? params.module
          : await compileModule(params.module, params.memoryLimitBytes);
      checkModule(module, params.entrypoint);
    } catch (error) {
      this.#finish({ outcome: { kind: "start-failed", error: toWireError(error) } });
      return;
    }
    this.#module = module;
    if (this.#status) return;
    let worker: GuestWorker;
    try {
      worker = await this.context.pool.place(
        this.id,
        {
          onMessage: (message) => this.#onMessage(message),
          onExit: (error) => this.#onWorkerExit(error),
        },
        params.near ? { near: params.near } : { dedicated: params.dedicated },
      );
    } catch (error) {
      this.#finish({ outcome: { kind: "start-failed", error: toWireError(error) } });
      return;
    }
    if (this.#status) {
      worker.detach(this.id);
      return;
    }
    this.#worker = worker;
    worker.post({
      type: "run",
      instanceId: this.id,
      module,
      args: params.args,
      env: params.env,
      mounts: params.mounts,
      entrypoint: params.entrypoint,
      memoryLimitBytes: params.memoryLimitBytes,
      memoryGroup: params.memoryGroup,
      cpuLimitMillis: params.cpuLimitMillis,
      control: this.#control.control,
      stdinRing: this.#control.stdinRing,
      output: params.output,
      network: params.network,
    });
    if (this.#killed) this.#watchForStuck();
  }

  #onMessage(message: WorkerToHost): void {
    switch (message.type) {
      case "started":
        this.#startedAt = new Date(message.startedAt);
        if (this.params.deadlineMs !== undefined) {
          const deadlineMs = this.params.deadlineMs;
          this.#deadlineTimer = setTimeout(
            () => this.kill({ kind: "deadline", deadlineMs }),
            deadlineMs,
          );
        }
        this.#resolveStarted(this.#startedAt);
        break;
      case "output":
        this.#deliver(message.stream, message.data);
        break;
      case "warning":
        this.context.logger?.warn(
          { instance: this.id, detail: message.message },
          "guest instance warning",
        );
        break;
      case "exited": {
        this.#reported = true;
        this.#finalMemory = message.memoryBytes;
        this.#worker?.detach(this.id);
        const facts = { outcome: message.outcome, finishedAt: new Date(message.finishedAt) };
        // Everything the guest wrote is delivered before it is reported gone.
        void this.#outputChain.then(() => this.#finish(facts));
        break;
      }
      case "ready":
        break;
    }
  }

  #deliver(stream: OutputStream, data: Uint8Array): void {
    const sink = this.params.sink;
    if (sink) {
      this.#outputChain = this.#outputChain
        .then(() => sink(stream, data))
        .catch((error: unknown) =>
          this.context.logger?.warn({ instance: this.id, err: error }, "exec output sink failed"),
        )
        .then(() => this.#control.outputSettled(data.length));
      return;
    }
    for (const listener of this.listeners) {
      try {
        listener(stream, data);
      } catch (error) {
        this.context.logger?.warn({ instance: this.id, err: error }, "output listener failed");
      }
    }
    this.#control.outputSettled(data.length);
  }

  #onWorkerExit(error: Error | undefined): void {
    if (this.#terminating || this.#status) return;
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    this.#finish({
      outcome: undefined,
      crash: {
        message: error?.message ?? "the thread ended, and every guest on it with it",
        ...(code ? { code } : {}),
      },
    });
  }

  #finish(facts: Partial<ExitFacts> & Pick<ExitFacts, "outcome">): void {
    if (this.#status) return;
    const status = exitStatus({
      killed: this.#killed,
      crash: undefined,
      memoryBytes: this.#finalMemory || this.#control.memoryBytes(),
      memoryLimitBytes: this.params.memoryLimitBytes,
      startedAt: this.#startedAt,
      finishedAt: new Date(),
      ...facts,
    });
    this.#status = status;
    this.#finalMemory = this.#finalMemory || this.#control.memoryBytes();
    this.#finalCpu = this.#cpuNow();
    clearTimeout(this.#graceTimer);
    clearTimeout(this.#deadlineTimer);
    clearTimeout(this.#killTimer);
    this.#control.finish();
    if (!this.#startedAt) {
      this.#rejectStarted(
        runtimeError("WASMLET_ERR_START_FAILED", `${this.id} did not start: ${status.message}`),
      );
    }
    this.#resolveExited(status);
    this.context.onExit(this);
  }

  stop(gracePeriodMs: number): Promise<ExitStatus> {
    if (this.#status) return this.exited;
    const grace = Math.max(0, Number.isFinite(gracePeriodMs) ? gracePeriodMs : 0);
    if (!this.#stopRequested) {
      this.#stopRequested = true;
      this.#control.requestStop(StopLevel.TERM);
    }
    if (grace === 0) {
      this.kill({ kind: "grace", gracePeriodMs: 0 });
    } else if (Date.now() + grace < this.#graceDeadline) {
      this.#graceDeadline = Date.now() + grace;
      clearTimeout(this.#graceTimer);
      this.#graceTimer = setTimeout(
        () => this.kill({ kind: "grace", gracePeriodMs: grace }),
        grace,
      );
    }
    return this.exited;
  }

  /** Ends the instance now: at its next WASI call or yield point. */
  kill(cause: KillCause): void {
    if (this.#status) return;
    this.#killed ??= cause;
    this.#control.requestStop(StopLevel.KILL);
    // Without a worker yet, #launch starts the watch once it has one.
    if (this.#worker) this.#watchForStuck();
  }

  #watchForStuck(): void {
    if (this.#killTimer) return;
    this.#killTimer = setTimeout(() => void this.#terminateWorker(), STUCK_AFTER_MS);
  }

  async #terminateWorker(): Promise<void> {
    const worker = this.#worker;
    if (this.#status || this.#reported || !worker) return;
    this.context.logger?.warn(
      { instance: this.id },
      "guest did not stop within 5 s of being killed; terminating its worker thread and the guests on it",
    );
    this.#terminating = true;
    await worker.terminate();
    this.#finish({ outcome: undefined });
  }

  writeStdin(data: Uint8Array | string): Promise<void> {
    if (this.#status)
      return Promise.reject(runtimeError("WASMLET_ERR_NOT_RUNNING", `${this.id} has exited`));
    return this.#control.writeStdin(typeof data === "string" ? Buffer.from(data) : data);
  }

  closeStdin(): void {
    this.#control.closeStdin();
  }

  /** The guest's own CPU time: its thread's CPU time while the guest held it. */
  async cpuUsage(): Promise<CpuUsage> {
    return this.#finalCpu ?? this.#cpuNow();
  }

  #cpuNow(): CpuUsage {
    return { user: Number(this.#control.cpuNanos() / 1000n), system: 0 };
  }

  memoryBytes(): number {
    return this.#status ? this.#finalMemory : this.#control.memoryBytes();
  }

  protected setListenerCount(): void {
    this.#control.setListeners(this.listeners.size);
  }
}
