// Work done once for everyone who waits for it (a pull, a blob download), by key. Each caller joins
// with its own signal and stops waiting when that signal aborts; the work has a signal of its own,
// aborted when the last caller still waiting leaves. A caller without a signal stays to the end.
// Aborted work is dropped from the table at once: a later caller starts it afresh.

interface Flight<T> {
  readonly promise: Promise<T>;
  readonly controller: AbortController;
  waiting: number;
}

export class SharedWork<T> {
  readonly #flights = new Map<string, Flight<T>>();

  /** Joins the work under `key`, starting it with `work` if none is in flight. */
  run(key: string, work: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const flight = this.#flights.get(key) ?? this.#start(key, work);
    flight.waiting++;
    if (!signal) return flight.promise;
    return new Promise<T>((resolve, reject) => {
      const leave = () => {
        reject(signal.reason);
        if (--flight.waiting > 0) return;
        this.#drop(key, flight);
        flight.controller.abort();
      };
      signal.addEventListener("abort", leave, { once: true });
      flight.promise.then(
        (value) => {
          signal.removeEventListener("abort", leave);
          resolve(value);
        },
        (error: unknown) => {
          signal.removeEventListener("abort", leave);
          reject(error);
        },
      );
    });
  }

  /** Work in flight under `key`. */
  has(key: string): boolean {
    return this.#flights.has(key);
  }

  /** Resolves once everything in flight now has settled. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#flights.values()].map((flight) => flight.promise));
  }

  #start(key: string, work: (signal: AbortSignal) => Promise<T>): Flight<T> {
    const controller = new AbortController();
    let promise: Promise<T>;
    try {
      promise = work(controller.signal);
    } catch (error) {
      promise = Promise.reject(error);
    }
    const flight: Flight<T> = { promise, controller, waiting: 0 };
    this.#flights.set(key, flight);
    flight.promise.then(
      () => this.#drop(key, flight),
      () => this.#drop(key, flight),
    );
    return flight;
  }

  #drop(key: string, flight: Flight<T>): void {
    if (this.#flights.get(key) === flight) this.#flights.delete(key);
  }
}
