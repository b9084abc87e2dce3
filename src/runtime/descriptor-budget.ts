// The host descriptors all guests of the process may hold together. Each guest may open up to 1,024
// files, but 20 such guests would take every descriptor the process has (20,000 here) and leave
// wasmlet none for its API connections and log files. So guests draw from one budget shared by
// every worker thread (a SharedArrayBuffer counter): three quarters of the process's limit by
// default. Past it a guest's open fails with ENFILE ("too many open files in the system"), which
// is what the budget is: the node's, not the guest's.
import { readFileSync } from "node:fs";

const USED = 0;
const MAX = 1;
/** Used when the process's limit cannot be read. */
const FALLBACK_LIMIT = 4096;

/** The soft RLIMIT_NOFILE of this process. */
export function openFileLimit(): number {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = Number(line?.split(/\s{2,}/)[1]);
    return Number.isFinite(soft) && soft > 0 ? soft : FALLBACK_LIMIT;
  } catch {
    return FALLBACK_LIMIT;
  }
}

export class DescriptorBudget {
  readonly buffer: SharedArrayBuffer;
  readonly #slots: Int32Array;

  /** A new budget of `max` descriptors, or the budget that `buffer` (from another thread) holds. */
  constructor(source: number | SharedArrayBuffer) {
    if (typeof source === "number") {
      this.buffer = new SharedArrayBuffer(8);
      this.#slots = new Int32Array(this.buffer);
      Atomics.store(this.#slots, MAX, source);
    } else {
      this.buffer = source;
      this.#slots = new Int32Array(this.buffer);
    }
  }

  /** The default for this process: three quarters of its open-file limit. */
  static forProcess(): DescriptorBudget {
    return new DescriptorBudget(Math.floor(openFileLimit() * 0.75));
  }

  get used(): number {
    return Atomics.load(this.#slots, USED);
  }

  /** Takes one descriptor; false when the budget is spent (unless `always`, for preopens). */
  take(always = false): boolean {
    const used = Atomics.add(this.#slots, USED, 1);
    if (always || used < Atomics.load(this.#slots, MAX)) return true;
    Atomics.sub(this.#slots, USED, 1);
    return false;
  }

  give(): void {
    Atomics.sub(this.#slots, USED, 1);
  }
}
