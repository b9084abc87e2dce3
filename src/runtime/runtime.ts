// The long-lived runtime: a few shared worker threads and the containers running on them.
//
//   const runtime = new Runtime({ logger });
//   await runtime.start();
//   const container = runtime.run({ id, module, args, env, mounts, logPath });
//   const status = await container.exited;
//   await runtime.close();
import { availableParallelism } from "node:os";
import { DEFAULT_MAX_LINE_BYTES } from "../logs/cri-format.ts";
import { ContainerHandle } from "./container.ts";
import { DescriptorBudget } from "./descriptor-budget.ts";
import { runtimeError } from "./errors.ts";
import type { InstanceContext } from "./instance.ts";
import { jspiAvailable } from "./jspi.ts";
import { checkContainerSpec } from "./spec.ts";
import type { Container, ContainerSpec, RuntimeOptions } from "./types.ts";
import { WorkerPool } from "./worker-pool.ts";

export interface RuntimeStats {
  /** Live containers. */
  running: number;
  /** Live instances (containers and execs) on the workers. */
  guests: number;
  /** Worker threads, and those hosting at least one guest. */
  workers: number;
  busyWorkers: number;
}

function checkCount(
  value: number | undefined,
  field: string,
  fallback: number,
  minimum: number,
): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < minimum) {
    throw runtimeError(
      "WASMLET_ERR_INVALID_SPEC",
      `runtime option ${field} must be an integer ≥ ${minimum}, got ${value}`,
    );
  }
  return value;
}

export class Runtime {
  readonly #pool: WorkerPool;
  readonly #containers = new Map<string, ContainerHandle>();
  readonly #context: InstanceContext;
  readonly #maxLineBytes: number;
  readonly #closeGraceMs: number;
  #state: "new" | "starting" | "started" | "closing" | "closed" = "new";
  #ready: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #destroying: Promise<void> | undefined;

  constructor(options: RuntimeOptions = {}) {
    if (!jspiAvailable) {
      throw runtimeError(
        "WASMLET_ERR_JSPI_UNAVAILABLE",
        `Node ${process.versions.node} lacks WebAssembly JSPI (WebAssembly.Suspending), which wasmlet's guests need`,
      );
    }
    this.#pool = new WorkerPool({
      workers: checkCount(options.workers, "workers", availableParallelism(), 1),
      descriptors:
        options.maxGuestDescriptors === undefined
          ? DescriptorBudget.forProcess()
          : new DescriptorBudget(
              checkCount(options.maxGuestDescriptors, "maxGuestDescriptors", 0, 1),
            ),
      logger: options.logger,
    });
    this.#maxLineBytes = checkCount(
      options.maxLogLineBytes,
      "maxLogLineBytes",
      DEFAULT_MAX_LINE_BYTES,
      1,
    );
    this.#closeGraceMs = checkCount(options.closeGracePeriodMs, "closeGracePeriodMs", 10_000, 0);
    this.#context = {
      pool: this.#pool,
      logger: options.logger,
      onExit: (instance) => {
        if (this.#containers.get(instance.id) === instance) this.#containers.delete(instance.id);
      },
    };
  }

  /** Resolves once start() has started the workers. */
  get ready(): Promise<void> {
    return this.#ready ?? this.start();
  }

  /** Spawns the shared workers. Idempotent. */
  start(): Promise<void> {
    if (this.#state !== "new") {
      return (
        this.#ready ??
        Promise.reject(runtimeError("WASMLET_ERR_RUNTIME_CLOSED", "the runtime is closed"))
      );
    }
    this.#state = "starting";
    this.#ready = this.#pool.start().then(() => {
      if (this.#state === "starting") this.#state = "started";
    });
    return this.#ready;
  }

  /** Starts a container; its start errors end up in `exited` (StartError), not here. */
  run(spec: ContainerSpec): Container {
    if (this.#state === "new")
      throw runtimeError("WASMLET_ERR_RUNTIME_NOT_STARTED", "call start() before run()");
    if (this.#state === "closing" || this.#state === "closed") {
      throw runtimeError("WASMLET_ERR_RUNTIME_CLOSED", "the runtime is closed");
    }
    const checked = checkContainerSpec(spec);
    if (this.#containers.has(checked.id)) {
      throw runtimeError(
        "WASMLET_ERR_DUPLICATE_CONTAINER",
        `container ${checked.id} is already running`,
      );
    }
    const container = new ContainerHandle(checked, this.#maxLineBytes, this.#context);
    this.#containers.set(checked.id, container);
    return container;
  }

  /** A live container by id. */
  container(id: string): Container | undefined {
    return this.#containers.get(id);
  }

  /** Live containers (started or starting). */
  containers(): Container[] {
    return [...this.#containers.values()];
  }

  stats(): RuntimeStats {
    const pool = this.#pool.stats();
    return {
      running: this.#containers.size,
      guests: pool.guests,
      workers: pool.workers,
      busyWorkers: pool.busy,
    };
  }

  /** Stops every container (closeGracePeriodMs each), then the workers. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#state = "closing";
      await Promise.all([...this.#containers.values()].map((c) => c.stop(this.#closeGraceMs)));
      await this.#pool.close();
      this.#state = "closed";
    })();
    return this.#closing;
  }

  /** Kills every container and terminates every worker now. Idempotent. */
  destroy(): Promise<void> {
    this.#destroying ??= (async () => {
      this.#state = "closing";
      const exited = [...this.#containers.values()].map((c) => {
        c.kill({ kind: "destroyed" });
        return c.exited;
      });
      await this.#pool.destroy();
      await Promise.all(exited);
      this.#state = "closed";
    })();
    return this.#destroying;
  }
}
