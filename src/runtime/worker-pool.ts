// Pre-spawned worker threads. Booting a worker costs tens of milliseconds; handing a job to a
// ready one costs a few. The pool keeps a target number of idle workers that follows demand (the
// number of instances started in the last two seconds, between minIdle and maxIdle), spawns at most
// two at a time in the background (more only for starts that are waiting), tops up once a second,
// and retires idle workers above the target after idleTimeoutMs.
// A worker that ran an instance cleanly comes back; one that was terminated, crashed, ran too many
// instances or kept a large memory is retired.
import { Worker } from "node:worker_threads";
import { runtimeError } from "./errors.ts";
import type { HostToWorker, WorkerToHost } from "./protocol.ts";
import type { CpuUsage, RuntimeLogger } from "./types.ts";
import { workerEntry } from "./worker-entry.ts";

export interface WorkerPoolOptions {
  minIdle: number;
  maxIdle: number;
  idleTimeoutMs: number;
  maxRunsPerWorker: number;
  logger: RuntimeLogger | undefined;
}

const SPAWN_CONCURRENCY = 2;
const DEMAND_WINDOW_MS = 2000;

interface PoolWorker {
  worker: Worker;
  tid: number | undefined;
  runs: number;
  idleSince: number;
  lease: WorkerLease | undefined;
  ready: boolean;
  gone: boolean;
}

type Waiter = { resolve: (lease: WorkerLease) => void; reject: (error: Error) => void };

/** One worker lent to one instance until release() or terminate(). */
export class WorkerLease {
  readonly #pool: WorkerPool;
  readonly #entry: PoolWorker;
  /** The worker had to be spawned for this request (no idle one was ready). */
  readonly cold: boolean;
  onMessage: (message: WorkerToHost) => void = () => {};
  /** The thread ended while leased (terminated, or crashed with `error`). */
  onExit: (error: Error | undefined) => void = () => {};
  #done = false;

  constructor(pool: WorkerPool, entry: PoolWorker, cold: boolean) {
    this.#pool = pool;
    this.#entry = entry;
    this.cold = cold;
  }

  get tid(): number | undefined {
    return this.#entry.tid;
  }

  post(message: HostToWorker): void {
    this.#entry.worker.postMessage(message);
  }

  /** CPU time of the whole thread (the caller subtracts its baseline). */
  async cpuUsage(): Promise<CpuUsage> {
    return (await this.#entry.worker.cpuUsage()) as CpuUsage;
  }

  /** Gives the worker back (reusable) or retires it. */
  release(reusable: boolean): void {
    if (this.#done) return;
    this.#done = true;
    this.#pool.release(this.#entry, reusable);
  }

  /** Ends the thread now, whatever the guest is doing. */
  async terminate(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    await this.#pool.kill(this.#entry);
  }
}

export class WorkerPool {
  readonly #options: WorkerPoolOptions;
  readonly #all = new Set<PoolWorker>();
  readonly #idle: PoolWorker[] = [];
  readonly #waiters: Waiter[] = [];
  readonly #demand: number[] = [];
  #spawning = 0;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #spawned = 0;
  #cold = 0;

  constructor(options: WorkerPoolOptions) {
    this.#options = options;
  }

  /** Spawns minIdle workers and resolves when they are ready. */
  async start(): Promise<void> {
    this.#timer = setInterval(() => this.#maintain(), 1000);
    this.#timer.unref();
    const ready: Promise<unknown>[] = [];
    for (let i = 0; i < this.#options.minIdle; i++) ready.push(this.#spawn());
    await Promise.all(ready);
  }

  stats(): {
    idle: number;
    busy: number;
    spawning: number;
    spawned: number;
    coldStarts: number;
    target: number;
  } {
    let busy = 0;
    for (const w of this.#all) if (w.lease) busy++;
    return {
      idle: this.#idle.length,
      busy,
      spawning: this.#spawning,
      spawned: this.#spawned,
      coldStarts: this.#cold,
      target: this.#target(),
    };
  }

  acquire(): Promise<WorkerLease> {
    if (this.#closed)
      return Promise.reject(
        runtimeError("WASMLET_ERR_RUNTIME_CLOSED", "the worker pool is closed"),
      );
    const now = Date.now();
    this.#demand.push(now);
    while (this.#demand.length > 0 && this.#demand[0]! < now - DEMAND_WINDOW_MS)
      this.#demand.shift();
    if (this.#demand.length > 10_000) this.#demand.shift();
    const entry = this.#idle.pop();
    if (entry) {
      const lease = new WorkerLease(this, entry, false);
      entry.lease = lease;
      this.#fill();
      return Promise.resolve(lease);
    }
    this.#cold++;
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#fill();
    });
  }

  #target(): number {
    const { minIdle, maxIdle } = this.#options;
    return Math.min(maxIdle, Math.max(minIdle, this.#demand.length));
  }

  /**
   * Spawns toward the target: at once for waiters and when idle workers fall below half the
   * target, otherwise on the next maintenance tick (busy workers usually come back, and spawning
   * a replacement for each would churn).
   */
  #fill(topUp = false): void {
    if (this.#closed) return;
    const target = this.#target();
    const floor = topUp ? target : Math.ceil(target / 2);
    const wanted = this.#waiters.length + (this.#idle.length + this.#spawning < floor ? target : 0);
    while (
      this.#idle.length + this.#spawning < wanted &&
      (this.#spawning < SPAWN_CONCURRENCY || this.#spawning < this.#waiters.length)
    ) {
      void this.#spawn();
    }
  }

  #spawn(): Promise<void> {
    this.#spawning++;
    this.#spawned++;
    const worker = new Worker(workerEntry(), {
      name: "wasmlet-guest",
      stdout: true,
      stderr: true,
      // Workers need no copy of wasmlet's environment, and their JS heap holds only wasmlet's
      // wrapper (guest memory is outside it): small heap limits save ~2 MiB RSS per worker.
      env: {},
      resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 48 },
    });
    const entry: PoolWorker = {
      worker,
      tid: undefined,
      runs: 0,
      idleSince: 0,
      lease: undefined,
      ready: false,
      gone: false,
    };
    this.#all.add(entry);
    const forward = (stream: string) => (chunk: Buffer) =>
      this.#options.logger?.debug(
        { stream, text: chunk.toString().trimEnd() },
        "worker output outside a guest",
      );
    worker.stdout.on("data", forward("stdout"));
    worker.stderr.on("data", forward("stderr"));
    return new Promise<void>((resolve) => {
      let settled = false;
      const settle = () => {
        if (!settled) {
          settled = true;
          this.#spawning--;
          resolve();
        }
      };
      worker.on("message", (message: WorkerToHost) => {
        if (message.type === "ready" && !entry.ready) {
          entry.ready = true;
          entry.tid = message.tid;
          settle();
          this.#offer(entry);
          return;
        }
        entry.lease?.onMessage(message);
      });
      let failure: Error | undefined;
      worker.on("error", (error) => {
        failure = error;
        this.#options.logger?.warn({ err: error }, "worker thread error");
        const lease = entry.lease;
        entry.lease = undefined;
        lease?.onExit(error);
      });
      worker.on("exit", (code) => {
        settle();
        entry.gone = true;
        this.#all.delete(entry);
        const at = this.#idle.indexOf(entry);
        if (at >= 0) this.#idle.splice(at, 1);
        if (!entry.ready) {
          // Do not respawn in a loop when workers cannot boot: fail one waiter instead.
          const detail = failure?.message ?? `exit code ${code}`;
          this.#waiters.shift()?.reject(
            runtimeError("WASMLET_ERR_WORKER", `a worker thread failed to start: ${detail}`, {
              cause: failure,
            }),
          );
          return;
        }
        const lease = entry.lease;
        entry.lease = undefined;
        lease?.onExit(undefined);
        if (this.#waiters.length > 0) this.#fill();
      });
    });
  }

  /** A ready or released worker: to the first waiter, to the idle list, or retired. */
  #offer(entry: PoolWorker): void {
    if (this.#closed) {
      this.#retire(entry);
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter) {
      const lease = new WorkerLease(this, entry, true);
      entry.lease = lease;
      waiter.resolve(lease);
      return;
    }
    if (this.#idle.length >= this.#options.maxIdle) {
      this.#retire(entry);
      return;
    }
    entry.idleSince = Date.now();
    this.#idle.push(entry);
  }

  release(entry: PoolWorker, reusable: boolean): void {
    entry.lease = undefined;
    entry.runs++;
    if (!reusable || entry.runs >= this.#options.maxRunsPerWorker || entry.gone)
      this.#retire(entry);
    else this.#offer(entry);
    this.#fill();
  }

  async kill(entry: PoolWorker): Promise<void> {
    entry.lease = undefined;
    this.#all.delete(entry);
    await entry.worker.terminate();
    this.#fill();
  }

  #retire(entry: PoolWorker): void {
    this.#all.delete(entry);
    const at = this.#idle.indexOf(entry);
    if (at >= 0) this.#idle.splice(at, 1);
    entry.worker.postMessage({ type: "shutdown" } satisfies HostToWorker);
    // A worker that does not leave on its own within a second is terminated.
    setTimeout(() => void entry.worker.terminate(), 1000).unref();
  }

  #maintain(): void {
    const now = Date.now();
    while (this.#demand.length > 0 && this.#demand[0]! < now - DEMAND_WINDOW_MS)
      this.#demand.shift();
    const target = this.#target();
    // Oldest idle first: the list is used as a stack, so its head waited longest.
    if (
      this.#idle.length > target &&
      now - this.#idle[0]!.idleSince > this.#options.idleTimeoutMs
    ) {
      this.#retire(this.#idle[0]!);
    }
    this.#fill(true);
  }

  /** Retires idle workers; busy ones are left to their instances. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    for (const waiter of this.#waiters.splice(0)) {
      waiter.reject(runtimeError("WASMLET_ERR_RUNTIME_CLOSED", "the worker pool closed"));
    }
    const idle = this.#idle.splice(0);
    await Promise.all(idle.map((entry) => this.#terminate(entry)));
  }

  /** Terminates every worker now. */
  async destroy(): Promise<void> {
    await this.close();
    await Promise.all([...this.#all].map((entry) => this.#terminate(entry)));
  }

  async #terminate(entry: PoolWorker): Promise<void> {
    this.#all.delete(entry);
    await entry.worker.terminate();
  }
}
