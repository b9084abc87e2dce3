// Events that `kubectl describe` shows. Recording never throws and never blocks the caller: a
// failed write is logged and dropped. The same event repeated within ten minutes is counted on the
// existing object (series) instead of creating a new one, as client-go's recorder does. What it
// remembers of series is bounded: entries leave when their window has passed, when their object is
// forgotten (a pod gone from the node), and beyond `maxSeries` (the least recently seen first).
import { type EventsV1Event, V1MicroTime, type V1ObjectReference } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { describeError } from "../errors.ts";
import { apiError, isNotFound } from "./api-error.ts";
import type { KubeClient } from "./client.ts";
import { patchOptions } from "./patch.ts";

export type EventType = "Normal" | "Warning";

export interface EventTarget {
  kind: string;
  name: string;
  namespace?: string;
  uid?: string;
  apiVersion?: string;
  fieldPath?: string;
}

export interface EventRecorderOptions {
  kube: KubeClient;
  /** Who reports: `reportingController` is `wasmlet`, `reportingInstance` the node name. */
  nodeName: string;
  logger: Logger;
  /** Window in which a repeat of the same event is counted instead of recreated. */
  seriesWindowMs?: number;
  /** The clock of event times and the series window (default: the wall clock). */
  now?: () => Date;
  /** At most this many series are remembered (default 4096, client-go's cache size). */
  maxSeries?: number;
}

export const REPORTING_CONTROLLER = "wasmlet";

interface SeriesEntry {
  uid: string | undefined;
  namespace: string;
  name: string;
  count: number;
  last: number;
}

export class EventRecorder {
  readonly #options: EventRecorderOptions;
  readonly #log: Logger;
  /** Series by event key, least recently seen first. */
  readonly #series = new Map<string, SeriesEntry>();
  /** The keys in #series of each object uid, to forget an object's series at once. */
  readonly #keysByUid = new Map<string, Set<string>>();
  readonly #maxSeries: number;
  readonly #pending = new Set<Promise<void>>();
  readonly #window: number;
  readonly #now: () => Date;
  #closed = false;
  #sequence = 0;

  constructor(options: EventRecorderOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: "events" });
    this.#window = options.seriesWindowMs ?? 10 * 60_000;
    this.#now = options.now ?? (() => new Date());
    this.#maxSeries = Math.max(1, options.maxSeries ?? 4096);
  }

  /** How many series are remembered now. */
  get seriesCount(): number {
    return this.#series.size;
  }

  /**
   * The object with `uid` is gone (a pod deleted from the node): no event about it repeats, so its
   * series are dropped, once the events already recorded for it are written.
   */
  async forget(uid: string): Promise<void> {
    await this.flush();
    for (const key of this.#keysByUid.get(uid) ?? []) this.#series.delete(key);
    this.#keysByUid.delete(uid);
  }

  normal(target: EventTarget, reason: string, note: string, action = reason): void {
    this.record("Normal", target, reason, note, action);
  }

  warning(target: EventTarget, reason: string, note: string, action = reason): void {
    this.record("Warning", target, reason, note, action);
  }

  record(
    type: EventType,
    target: EventTarget,
    reason: string,
    note: string,
    action = reason,
  ): void {
    if (this.#closed) return;
    // Written on a later turn of the event loop: what the caller does next (start a container,
    // patch a status) comes first, and the event follows it by a millisecond.
    const work = new Promise((resolve) => setTimeout(resolve, 0))
      .then(() => this.#write(type, target, reason, note.slice(0, 1024), action.slice(0, 128)))
      .catch((error) => {
        this.#log.warn(
          { reason, target: `${target.kind}/${target.name}`, err: describeError(error) },
          "could not record event",
        );
      });
    this.#pending.add(work);
    void work.finally(() => this.#pending.delete(work));
  }

  /** Waits for events already recorded to be written. */
  async flush(): Promise<void> {
    await Promise.all([...this.#pending]);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }

  async #write(
    type: EventType,
    target: EventTarget,
    reason: string,
    note: string,
    action: string,
  ): Promise<void> {
    const namespace = target.namespace || "default";
    const key = JSON.stringify([
      type,
      target.kind,
      namespace,
      target.name,
      target.uid,
      reason,
      note,
    ]);
    const now = this.#now().getTime();
    const existing = this.#series.get(key);
    if (existing && now - existing.last < this.#window) {
      existing.count++;
      existing.last = now;
      this.#series.delete(key); // to the end: the most recently seen
      this.#series.set(key, existing);
      try {
        await this.#options.kube.events.patchNamespacedEvent(
          {
            namespace: existing.namespace,
            name: existing.name,
            body: { series: { count: existing.count, lastObservedTime: new V1MicroTime(now) } },
          },
          patchOptions("merge"),
        );
        return;
      } catch (error) {
        if (!isNotFound(error))
          throw apiError(error, `updating event ${existing.namespace}/${existing.name}`);
        this.#drop(key);
      }
    }
    const regarding: V1ObjectReference = {
      kind: target.kind,
      name: target.name,
      namespace: target.namespace,
      uid: target.uid,
      apiVersion: target.apiVersion ?? "v1",
      fieldPath: target.fieldPath,
    };
    const event: EventsV1Event = {
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      metadata: {
        name: `${target.name}.${(BigInt(now) * 1_000_000n + BigInt(this.#sequence++ % 1_000_000)).toString(16)}`,
        namespace,
      },
      eventTime: new V1MicroTime(now),
      type,
      reason,
      note,
      action,
      regarding,
      reportingController: REPORTING_CONTROLLER,
      reportingInstance: this.#options.nodeName,
    };
    try {
      const created = await this.#options.kube.events.createNamespacedEvent({
        namespace,
        body: event,
      });
      this.#remember(key, {
        uid: target.uid,
        namespace,
        name: created.metadata?.name ?? event.metadata!.name!,
        count: 1,
        last: now,
      });
    } catch (error) {
      throw apiError(
        error,
        `recording event ${reason} on ${target.kind} ${namespace}/${target.name}`,
      );
    }
  }

  #remember(key: string, entry: SeriesEntry): void {
    this.#drop(key);
    this.#series.set(key, entry);
    if (entry.uid !== undefined) {
      let keys = this.#keysByUid.get(entry.uid);
      if (!keys) {
        keys = new Set();
        this.#keysByUid.set(entry.uid, keys);
      }
      keys.add(key);
    }
    // Oldest first: drop those whose window has passed, and any beyond the bound.
    for (const [oldest, first] of this.#series) {
      if (this.#series.size <= this.#maxSeries && entry.last - first.last < this.#window) break;
      this.#drop(oldest);
    }
  }

  #drop(key: string): void {
    const entry = this.#series.get(key);
    if (!entry) return;
    this.#series.delete(key);
    if (entry.uid === undefined) return;
    const keys = this.#keysByUid.get(entry.uid);
    keys?.delete(key);
    if (keys?.size === 0) this.#keysByUid.delete(entry.uid);
  }
}
