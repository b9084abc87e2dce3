// JavaScript Promise Integration (JSPI), typed: TypeScript's lib does not declare it yet. A host
// function wrapped in `suspending` may return a promise; the guest that called it is then
// suspended (only its own stack) until the promise settles, and the thread runs other work. A
// plain value returns at once without suspending. `promising` turns an export into a function
// that returns a promise of its result.
interface Jspi {
  Suspending: new (fn: (...args: never[]) => unknown) => object;
  promising<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => Promise<R>;
}

const api = WebAssembly as unknown as Partial<Jspi>;

export const jspiAvailable =
  typeof api.Suspending === "function" && typeof api.promising === "function";

export function suspending(fn: (...args: never[]) => unknown): object {
  return new api.Suspending!(fn);
}

export function promising<A extends unknown[], R>(
  fn: (...args: A) => R,
): (...args: A) => Promise<R> {
  return api.promising!(fn);
}
