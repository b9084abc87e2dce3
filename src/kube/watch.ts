// A list-then-watch cache that does not give up. The client library's ListWatch relists on 410 but
// stops for good on any other error; this one resumes the watch from the last resourceVersion
// after a network error or an inactivity timeout, relists when the version is too old (410), backs
// off with jitter while the API server is away, and stops only when told. Every restart is logged,
// so a stall is never silent: the watch's inactivity timeout (the library's, 30 s without a byte,
// bookmarks included) turns a dead connection into a restart.
import { type KubeConfig, Watch } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { describeError } from "../errors.ts";
import { apiError, statusCode } from "./api-error.ts";
import { Backoff, sleep } from "./backoff.ts";
import { decode } from "./serializer.ts";

export interface WatchableObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface ListResult<T> {
  items: T[];
  metadata?: { resourceVersion?: string };
}

export interface WatchHandler<T> {
  added?(object: T): void;
  modified?(object: T, previous: T): void;
  deleted?(object: T): void;
  /** After every (re)list, when the cache matches the API server again. */
  synced?(objects: readonly T[]): void;
}

export interface ResilientWatchOptions<T> {
  kubeConfig: KubeConfig;
  /** The collection's path, e.g. `/api/v1/pods`. */
  path: string;
  /** The model type of one item, e.g. `V1Pod`, so watched objects decode like listed ones. */
  typeName: string;
  fieldSelector?: string;
  labelSelector?: string;
  /** Lists the collection with the same selectors (a typed API call). */
  list: () => Promise<ListResult<T>>;
  handler: WatchHandler<T>;
  logger: Logger;
  backoff?: { initialMs: number; maxMs: number };
}

class GoneError extends Error {
  readonly statusCode = 410;
}

function keyOf(object: WatchableObject): string {
  const m = object.metadata ?? {};
  return m.namespace ? `${m.namespace}/${m.name}` : (m.name ?? "");
}

export class ResilientWatch<T extends WatchableObject> {
  readonly #options: ResilientWatchOptions<T>;
  readonly #cache = new Map<string, T>();
  readonly #stop = new AbortController();
  readonly #backoff: Backoff;
  readonly #log: Logger;
  #resourceVersion: string | undefined;
  #loop: Promise<void> | undefined;
  #current: AbortController | undefined;
  #synced!: () => void;
  /** Resolves after the first successful list. */
  readonly synced: Promise<void>;
  /** The first list has succeeded: `list()` holds what the API server holds (give or take a watch event). */
  hasSynced = false;
  /** Restarts so far (watch ends, errors and relists), for tests and metrics. */
  restarts = 0;

  constructor(options: ResilientWatchOptions<T>) {
    this.#options = options;
    this.#backoff = new Backoff(options.backoff ?? { initialMs: 500, maxMs: 30_000 });
    this.#log = options.logger.child({ watch: options.path, fieldSelector: options.fieldSelector });
    this.synced = new Promise((resolve) => {
      this.#synced = resolve;
    });
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.#cache.get(namespace ? `${namespace}/${name}` : name);
  }

  list(): T[] {
    return [...this.#cache.values()];
  }

  /** Stops the watch; safe to call twice. */
  async close(): Promise<void> {
    this.#stop.abort();
    this.#current?.abort();
    await this.#loop;
  }

  get #stopped(): boolean {
    return this.#stop.signal.aborted;
  }

  async #run(): Promise<void> {
    let needList = true;
    while (!this.#stopped) {
      try {
        if (needList) {
          await this.#relist();
          needList = false;
        }
        await this.#watchOnce();
        this.#log.debug({ resourceVersion: this.#resourceVersion }, "watch ended; resuming");
      } catch (error) {
        if (this.#stopped) break;
        this.restarts++;
        if (statusCode(error) === 410) {
          this.#log.info("watch resourceVersion expired; relisting");
          needList = true;
          continue;
        }
        if (error instanceof DOMException && error.name === "TimeoutError") {
          this.#log.debug("watch idle past its timeout; resuming");
          continue;
        }
        const delay = this.#backoff.next();
        this.#log.warn(
          {
            attempt: this.#backoff.attempts,
            retryInMs: delay,
            err: describeError(apiError(error, `watching ${this.#options.path}`)),
          },
          "watch failed; retrying",
        );
        await sleep(delay, this.#stop.signal);
        // After repeated failures, start over from a fresh list: the version may be long gone.
        if (this.#backoff.attempts >= 3) needList = true;
      }
    }
  }

  async #relist(): Promise<void> {
    const result = await this.#options.list();
    if (this.#stopped) return;
    const handler = this.#options.handler;
    const fresh = new Map(result.items.map((item) => [keyOf(item), item]));
    for (const [key, old] of this.#cache) {
      if (!fresh.has(key)) {
        this.#cache.delete(key);
        handler.deleted?.(old);
      }
    }
    for (const [key, item] of fresh) {
      const old = this.#cache.get(key);
      this.#cache.set(key, item);
      if (!old) handler.added?.(item);
      else if (old.metadata?.resourceVersion !== item.metadata?.resourceVersion)
        handler.modified?.(item, old);
    }
    this.#resourceVersion = result.metadata?.resourceVersion;
    this.#backoff.reset();
    handler.synced?.([...this.#cache.values()]);
    this.hasSynced = true;
    this.#synced();
  }

  #watchOnce(): Promise<void> {
    const { kubeConfig, path, fieldSelector, labelSelector, typeName, handler } = this.#options;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (error?: unknown) => {
        if (settled) return;
        settled = true;
        this.#stop.signal.removeEventListener("abort", onStop);
        if (error) reject(error);
        else resolve();
      };
      // The library hands out the watch's AbortController only once the response has started;
      // a stop while connecting settles here, and the connection is aborted when it arrives.
      const onStop = () => finish();
      this.#stop.signal.addEventListener("abort", onStop, { once: true });
      const onEvent = (type: string, raw: unknown) => {
        if (settled || this.#stopped) return;
        if (type === "ERROR") {
          const status = raw as { code?: number; message?: string };
          this.#current?.abort();
          finish(
            status.code === 410
              ? new GoneError(status.message ?? "gone")
              : Object.assign(new Error(status.message ?? "watch error"), {
                  statusCode: status.code,
                }),
          );
          return;
        }
        const version = (raw as WatchableObject).metadata?.resourceVersion;
        if (version) this.#resourceVersion = version;
        if (type === "BOOKMARK") return;
        const object = decode<T>(raw, typeName);
        const key = keyOf(object);
        const previous = this.#cache.get(key);
        if (type === "DELETED") {
          this.#cache.delete(key);
          handler.deleted?.(object);
        } else if (type === "ADDED" || type === "MODIFIED") {
          this.#cache.set(key, object);
          if (previous) handler.modified?.(object, previous);
          else handler.added?.(object);
        }
        this.#backoff.reset();
      };
      new Watch(kubeConfig)
        .watch(
          path,
          {
            fieldSelector,
            labelSelector,
            resourceVersion: this.#resourceVersion,
            allowWatchBookmarks: true,
            // Like client-go: end every watch after 5 to 10 minutes, so no connection lives forever.
            timeoutSeconds: 300 + Math.floor(Math.random() * 300),
          },
          onEvent,
          (error: unknown) => finish(error ?? undefined),
        )
        .then(
          (controller) => {
            this.#current = controller;
            if (this.#stopped || settled) controller.abort();
          },
          (error: unknown) => finish(error),
        );
    });
  }
}
