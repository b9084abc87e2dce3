// A list-then-watch cache that does not give up. The client library's ListWatch relists on 410 but
// stops for good on any other error; this one resumes the watch from the last resourceVersion
// after a network error or an inactivity timeout, relists when the version is too old (410), backs
// off with jitter while the API server is away, and stops only when told. Every restart is logged,
// so a stall is never silent: the watch's inactivity timeout (the library's, 30 s without a byte,
// bookmarks included) turns a dead connection into a restart. A handler that throws is logged and
// the watch goes on: the library would swallow it (an event lost without a word), and during a
// relist it would fail the whole list.
import { type KubeConfig, Watch } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { describeError } from "../errors.ts";
import { apiError, statusCode } from "./api-error.ts";
import { Backoff, sleep } from "./backoff.ts";
import { kubeError } from "./errors.ts";
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

/** A watch's ERROR event (a metav1.Status) as an error: 410 makes the watch relist. */
function watchStatusError(status: { code?: number; message?: string }, path: string): Error {
  const code = status.code === 410 ? "WASMLET_ERR_KUBE_GONE" : "WASMLET_ERR_KUBE_API";
  const error = kubeError(code, `watching ${path}: ${status.message ?? "watch error"}`);
  return Object.assign(error, { statusCode: status.code });
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
        this.#notify("DELETED", key, () => handler.deleted?.(old));
      }
    }
    for (const [key, item] of fresh) {
      const old = this.#cache.get(key);
      this.#cache.set(key, item);
      if (!old) this.#notify("ADDED", key, () => handler.added?.(item));
      else if (old.metadata?.resourceVersion !== item.metadata?.resourceVersion)
        this.#notify("MODIFIED", key, () => handler.modified?.(item, old));
    }
    this.#resourceVersion = result.metadata?.resourceVersion;
    this.#backoff.reset();
    const synced = [...this.#cache.values()];
    this.#notify("SYNCED", undefined, () => handler.synced?.(synced));
    this.hasSynced = true;
    this.#synced();
  }

  /** Runs a handler; what it throws (or an async handler rejects with) is logged, not lost. */
  #notify(event: string, object: string | undefined, call: () => unknown): void {
    const failed = (error: unknown) =>
      this.#log.error(
        { event, object, err: error },
        "watch handler threw; the event went unhandled",
      );
    try {
      const result = call();
      if (result instanceof Promise) result.catch(failed);
    } catch (error) {
      failed(error);
    }
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
          finish(watchStatusError(status, path));
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
          this.#notify(type, key, () => handler.deleted?.(object));
        } else if (type === "ADDED" || type === "MODIFIED") {
          this.#cache.set(key, object);
          if (previous) this.#notify("MODIFIED", key, () => handler.modified?.(object, previous));
          else this.#notify("ADDED", key, () => handler.added?.(object));
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
