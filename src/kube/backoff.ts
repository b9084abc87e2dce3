// Exponential back-off per key, after client-go's flowcontrol.Backoff (what the kubelet uses for
// CrashLoopBackOff and ImagePullBackOff): each failure widens its key's window from `initialMs` by
// `factor` up to `maxMs`, each delay jittered below the window; a key whose last failure is older
// than `resetAfterMs` starts over. A retry loop with one line of failures uses the default key.
// Also: a sleep that a stop signal cuts short.

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Multiplier per failure (default 2). */
  factor?: number;
  /** Each delay is drawn from [window × (1 − jitter), window] (default 0.5). */
  jitter?: number;
  random?: () => number;
  /** A key not failing for longer than this starts over at `initialMs` (default: never). */
  resetAfterMs?: number;
  /** The clock, in milliseconds (default Date.now). */
  now?: () => number;
}

interface Entry {
  windowMs: number;
  delayMs: number;
  attempts: number;
  lastUpdate: number;
}

const DEFAULT_KEY = "";

export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  readonly #factor: number;
  readonly #jitter: number;
  readonly #random: () => number;
  readonly #resetAfter: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();

  constructor(options: BackoffOptions) {
    if (!(options.initialMs > 0) || options.maxMs < options.initialMs) {
      throw new RangeError(
        `back-off needs 0 < initialMs <= maxMs (got ${options.initialMs}, ${options.maxMs})`,
      );
    }
    this.#initial = options.initialMs;
    this.#max = options.maxMs;
    this.#factor = options.factor ?? 2;
    this.#jitter = options.jitter ?? 0.5;
    this.#random = options.random ?? Math.random;
    this.#resetAfter = options.resetAfterMs ?? Number.POSITIVE_INFINITY;
    this.#now = options.now ?? Date.now;
  }

  /** Failures of the default key since its last reset. */
  get attempts(): number {
    return this.#entries.get(DEFAULT_KEY)?.attempts ?? 0;
  }

  /** The key's current window, 0 when it has none. */
  get(key: string): number {
    return this.#entries.get(key)?.windowMs ?? 0;
  }

  /**
   * Records a failure (or a retry decided now) for an event at `eventTime` and widens the key's
   * window; returns how long to wait before the next attempt.
   */
  next(key = DEFAULT_KEY, eventTime = this.#now()): number {
    const entry = this.#live(key, eventTime);
    const windowMs = entry ? Math.min(entry.windowMs * this.#factor, this.#max) : this.#initial;
    const delayMs = Math.round(windowMs * (1 - this.#jitter * this.#random()));
    this.#entries.set(key, {
      windowMs,
      delayMs,
      attempts: (entry?.attempts ?? 0) + 1,
      lastUpdate: this.#now(),
    });
    return delayMs;
  }

  /** What is left of the key's wait after an event (an exit, a failed pull) at `eventTime`; 0 means now. */
  remaining(key: string, eventTime: number): number {
    const entry = this.#live(key, eventTime);
    if (!entry) return 0;
    return Math.max(0, entry.delayMs - (this.#now() - eventTime));
  }

  reset(key = DEFAULT_KEY): void {
    this.#entries.delete(key);
  }

  /** Forgets every key starting with `prefix` (a pod's uid when it goes away). */
  forget(prefix: string): void {
    for (const key of this.#entries.keys()) if (key.startsWith(prefix)) this.#entries.delete(key);
  }

  /** The key's entry unless it expired by `eventTime`. */
  #live(key: string, eventTime: number): Entry | undefined {
    const entry = this.#entries.get(key);
    return entry && eventTime - entry.lastUpdate <= this.#resetAfter ? entry : undefined;
  }
}

/** Resolves after `ms`, or early (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
