// The threads guests run on. A few shared workers (default: one per core) host every guest, each
// suspended by JSPI whenever it waits; a new instance goes to the worker with the fewest guests,
// an exec to its container's worker (they share its compiled code and its memory budget). A
// container that asks for exclusive CPUs gets a dedicated worker, retired with its last instance,
// as the kubelet's static CPU manager gives a Guaranteed pod CPUs of its own.
// A worker that dies takes its guests with it: each is told, and a shared worker is replaced.
import { Worker } from "node:worker_threads";
import type { DescriptorBudget } from "./descriptor-budget.ts";
import { runtimeError } from "./errors.ts";
import type { HostToWorker, WorkerToHost } from "./protocol.ts";
import type { RuntimeLogger } from "./types.ts";
import { workerEntry } from "./worker-entry.ts";

export interface WorkerPoolOptions {
  /** Shared workers. */
  workers: number;
  /** The host descriptors all guests may hold together. */
  descriptors: DescriptorBudget;
  logger: RuntimeLogger | undefined;
}

/** What every worker gets at its start. */
export interface WorkerData {
  /** DescriptorBudget's shared counter. */
  descriptors: SharedArrayBuffer;
}

/** What an instance on a worker hears from it. */
export interface GuestSlot {
  onMessage(message: WorkerToHost): void;
  /** The thread ended (terminated, or crashed with `error`) while the guest was on it. */
  onExit(error: Error | undefined): void;
}

export interface Placement {
  /** Put the instance on this worker (an exec beside its container). */
  near?: GuestWorker;
  /** A worker of its own. */
  dedicated?: boolean;
}

/** One worker thread and the guests on it. */
export class GuestWorker {
  readonly dedicated: boolean;
  readonly ready: Promise<void>;
  readonly #worker: Worker;
  readonly #guests = new Map<string, GuestSlot>();
  readonly #onEmpty: (worker: GuestWorker) => void;
  #gone = false;

  constructor(
    dedicated: boolean,
    workerData: WorkerData,
    logger: RuntimeLogger | undefined,
    onGone: (worker: GuestWorker, booted: boolean) => void,
    onEmpty: (worker: GuestWorker) => void,
  ) {
    this.dedicated = dedicated;
    this.#onEmpty = onEmpty;
    this.#worker = new Worker(workerEntry(), {
      name: dedicated ? "wasmlet-guest-dedicated" : "wasmlet-guests",
      stdout: true,
      stderr: true,
      // Workers need no copy of wasmlet's environment, and their JS heap holds only wasmlet's
      // wrapper per guest (guest memory is outside it).
      env: {},
      resourceLimits: { maxYoungGenerationSizeMb: 8, maxOldGenerationSizeMb: 512 },
      workerData,
    });
    const forward = (stream: string) => (chunk: Buffer) =>
      logger?.debug({ stream, text: chunk.toString().trimEnd() }, "worker output outside a guest");
    this.#worker.stdout.on("data", forward("stdout"));
    this.#worker.stderr.on("data", forward("stderr"));
    let booted = false;
    let failure: Error | undefined;
    this.ready = new Promise<void>((resolve, reject) => {
      this.#worker.on("message", (message: WorkerToHost) => {
        if (message.type === "ready") {
          booted = true;
          resolve();
          return;
        }
        this.#guests.get(message.instanceId)?.onMessage(message);
      });
      this.#worker.on("error", (error) => {
        // A worker can throw any value; @types/node 26 types the event's argument as unknown.
        failure = error instanceof Error ? error : new Error(String(error));
        logger?.warn({ err: error }, "worker thread error");
      });
      this.#worker.on("exit", (code) => {
        this.#gone = true;
        if (!booted) {
          const detail = failure?.message ?? `exit code ${code}`;
          reject(
            runtimeError("WASMLET_ERR_WORKER", `a worker thread failed to start: ${detail}`, {
              cause: failure,
            }),
          );
        }
        const guests = [...this.#guests.values()];
        this.#guests.clear();
        for (const guest of guests) guest.onExit(failure);
        onGone(this, booted);
      });
    });
    // A caller that never places on this worker must not see an unhandled rejection.
    this.ready.catch(() => {});
  }

  get guests(): number {
    return this.#guests.size;
  }

  get gone(): boolean {
    return this.#gone;
  }

  attach(instanceId: string, slot: GuestSlot): void {
    this.#guests.set(instanceId, slot);
  }

  /** The instance ended; a dedicated worker with no guest left is retired. */
  detach(instanceId: string): void {
    if (this.#guests.delete(instanceId) && this.#guests.size === 0) this.#onEmpty(this);
  }

  post(message: HostToWorker): void {
    this.#worker.postMessage(message);
  }

  /** Asks the thread to leave once its guests are gone; terminates it after a second. */
  shutdown(): void {
    if (this.#gone) return;
    this.#worker.postMessage({ type: "shutdown" } satisfies HostToWorker);
    setTimeout(() => void this.#worker.terminate(), 1000).unref();
  }

  /** Ends the thread now, and with it every guest on it. */
  async terminate(): Promise<void> {
    await this.#worker.terminate();
  }
}

export class WorkerPool {
  readonly #options: WorkerPoolOptions;
  readonly #shared: GuestWorker[] = [];
  readonly #dedicated = new Set<GuestWorker>();
  readonly #workerData: WorkerData;
  #closed = false;

  constructor(options: WorkerPoolOptions) {
    this.#options = options;
    this.#workerData = { descriptors: options.descriptors.buffer };
  }

  /** Spawns the shared workers and resolves when they are ready. */
  async start(): Promise<void> {
    for (let i = 0; i < this.#options.workers; i++) this.#shared.push(this.#spawn(false));
    await Promise.all(this.#shared.map((w) => w.ready));
  }

  stats(): { workers: number; busy: number; guests: number } {
    const all = [...this.#shared, ...this.#dedicated];
    return {
      workers: all.length,
      busy: all.filter((w) => w.guests > 0).length,
      guests: all.reduce((sum, w) => sum + w.guests, 0),
    };
  }

  /**
   * Chooses the worker an instance runs on and attaches it there at once (so that a burst of
   * starts spreads out before any worker has booted), then waits for the worker to be ready.
   */
  async place(
    instanceId: string,
    slot: GuestSlot,
    placement: Placement = {},
  ): Promise<GuestWorker> {
    if (this.#closed) throw runtimeError("WASMLET_ERR_RUNTIME_CLOSED", "the worker pool is closed");
    let worker: GuestWorker;
    if (placement.near && !placement.near.gone) {
      worker = placement.near;
    } else if (placement.dedicated) {
      worker = this.#spawn(true);
      this.#dedicated.add(worker);
    } else {
      worker = this.#shared.reduce((best, w) => (w.guests < best.guests ? w : best));
    }
    worker.attach(instanceId, slot);
    try {
      await worker.ready;
    } catch (error) {
      worker.detach(instanceId);
      throw error;
    }
    return worker;
  }

  #spawn(dedicated: boolean): GuestWorker {
    return new GuestWorker(
      dedicated,
      this.#workerData,
      this.#options.logger,
      (worker, booted) => this.#gone(worker, booted),
      (worker) => {
        if (worker.dedicated) {
          this.#dedicated.delete(worker);
          worker.shutdown();
        }
      },
    );
  }

  #gone(worker: GuestWorker, booted: boolean): void {
    this.#dedicated.delete(worker);
    const at = this.#shared.indexOf(worker);
    if (at < 0) return;
    // A shared worker that ran is replaced; one that could not boot is not (no respawn loop):
    // its place() callers got the error.
    if (this.#closed || !booted) {
      if (this.#shared.length > 1 || this.#closed) this.#shared.splice(at, 1);
      return;
    }
    this.#options.logger?.warn({}, "a worker thread ended; its guests ended with it; replacing it");
    this.#shared[at] = this.#spawn(false);
  }

  /** Ends every worker; the runtime stopped their guests first. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#shared, ...this.#dedicated].map((w) => w.terminate()));
  }

  /** Terminates every worker now. */
  async destroy(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#shared, ...this.#dedicated].map((w) => w.terminate()));
  }
}
