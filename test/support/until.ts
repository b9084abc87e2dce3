// Polling until a condition holds: the one helper the unit tests share for it.

// Captured at load, before any test mocks the timers or spies on setTimeout: the polling waits in
// real time and adds nothing to a spy's calls.
const realSetTimeout = globalThis.setTimeout;

type Falsy = undefined | null | false | 0 | "";

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => realSetTimeout(resolve, ms));
}

/**
 * Polls every few milliseconds until `check` returns a truthy value and resolves with it; rejects
 * with "timed out waiting for `what`" after `timeoutMs` (`what` may be a function, asked then, to
 * tell what came instead). A check that throws fails at once (wrap it
 * in {@link tolerant} if a throw only means "not yet"); a check that returns a promise is refused,
 * since a promise is always truthy (use {@link untilAsync}).
 */
export async function until<T>(
  check: () => T | Falsy,
  what: string | (() => string),
  timeoutMs = 5000,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (typeof (value as { then?: unknown } | undefined)?.then === "function") {
      throw new Error("until() needs a synchronous check: a promise is always truthy (untilAsync)");
    }
    if (value) return value as T;
    if (performance.now() > deadline) {
      throw new Error(`timed out waiting for ${typeof what === "function" ? what() : what}`);
    }
    await pause(5);
  }
}

/** {@link until} for an asynchronous probe (a request, say), awaited on each try, every 25 ms. */
export async function untilAsync(
  probe: () => Promise<boolean>,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await probe())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause(25);
  }
}

/** `check`, with a throw counted as "not yet": for checks that read a file still being written. */
export function tolerant<T>(check: () => T): () => T | false {
  return () => {
    try {
      return check();
    } catch {
      return false;
    }
  };
}
