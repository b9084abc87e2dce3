// The kubelet's restart back-off (client-go flowcontrol.Backoff as the kubelet uses it, without
// jitter): the first restart is immediate; while a container keeps failing within its window the
// delay doubles from `initialMs` to `maxMs`; a container that ran longer than `resetAfterMs` since
// the last restart starts over. Keys are per container instance line (pod uid + container name).

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** The kubelet uses 2 × max (10 minutes with the defaults). */
  resetAfterMs: number;
}

export const CRASH_LOOP_DEFAULTS: BackoffOptions = {
  initialMs: 10_000,
  maxMs: 300_000,
  resetAfterMs: 600_000,
};
export const IMAGE_PULL_DEFAULTS: BackoffOptions = {
  initialMs: 10_000,
  maxMs: 300_000,
  resetAfterMs: 600_000,
};

interface Entry {
  backoffMs: number;
  lastUpdate: number;
}

export class Backoff {
  readonly #options: BackoffOptions;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();

  constructor(options: BackoffOptions, now: () => number = Date.now) {
    if (!(options.initialMs > 0) || options.maxMs < options.initialMs) {
      throw new RangeError(
        `back-off needs 0 < initialMs <= maxMs (got ${options.initialMs}, ${options.maxMs})`,
      );
    }
    this.#options = options;
    this.#now = now;
  }

  #expired(eventTime: number, entry: Entry): boolean {
    return eventTime - entry.lastUpdate > this.#options.resetAfterMs;
  }

  /** The current window, 0 when there is none. */
  get(key: string): number {
    return this.#entries.get(key)?.backoffMs ?? 0;
  }

  /** How long to wait before restarting after an event (an exit, a failed pull) at `eventTime`; 0 means now. */
  remaining(key: string, eventTime: number): number {
    const entry = this.#entries.get(key);
    if (!entry || this.#expired(eventTime, entry)) return 0;
    return Math.max(0, entry.backoffMs - (this.#now() - eventTime));
  }

  /** Records a restart (or retry) decided now for an event at `eventTime`; widens the window. */
  next(key: string, eventTime: number): number {
    const entry = this.#entries.get(key);
    const backoffMs =
      !entry || this.#expired(eventTime, entry)
        ? this.#options.initialMs
        : Math.min(entry.backoffMs * 2, this.#options.maxMs);
    this.#entries.set(key, { backoffMs, lastUpdate: this.#now() });
    return backoffMs;
  }

  reset(key: string): void {
    this.#entries.delete(key);
  }

  /** Forgets every key starting with `prefix` (a pod's uid when it goes away). */
  forget(prefix: string): void {
    for (const key of this.#entries.keys()) if (key.startsWith(prefix)) this.#entries.delete(key);
  }
}
