// When one guest of a shared worker runs, for how long, and when it must give the thread back.
// Guests are cooperative only at their yield points: the import `wasmlet.yield`, which the module
// rewriter (src/wasm/yield-points.ts) calls from loop headers and function entries whenever the
// guest's fuel runs out, and every WASI call that waits. This clock
// - tunes the fuel so that a computing guest reaches the host about every CHECK_INTERVAL_MS;
// - ends the guest's time slice after SLICE_MS of computing: it yields one turn of the event loop,
//   so sleepers' timers and other guests run (round robin through the macrotask queue);
// - counts the CPU time of each guest (its running stretches) and publishes it for `kubectl top`;
// - enforces a CPU limit as a quota per PERIOD_MS period, as the kernel's CFS bandwidth control
//   does for containers: a guest that used its quota is not resumed before the next period.
// A stop request is honoured at every yield point, so stopping a computing guest is immediate.
import type { GuestControl } from "./control.ts";

export const SLICE_MS = 2;
const CHECK_INTERVAL_MS = 0.25;
export const PERIOD_MS = 100;
const INITIAL_FUEL = 10_000;
const MAX_FUEL = 2 ** 30;

export class GuestClock {
  readonly #control: GuestControl;
  /** CPU time allowed per period, in ms; undefined: no limit. */
  readonly #quotaMs: number | undefined;
  #runningSince: number | undefined;
  #sliceStart = 0;
  #lastCheck = 0;
  #fuel = INITIAL_FUEL;
  #cpuMs = 0;
  #periodStart = 0;
  #periodUsedMs = 0;

  constructor(control: GuestControl, cpuLimitMillis: number | undefined) {
    this.#control = control;
    this.#quotaMs = cpuLimitMillis === undefined ? undefined : (PERIOD_MS * cpuLimitMillis) / 1000;
  }

  /** CPU time used so far, in ms. */
  get cpuMs(): number {
    if (this.#runningSince !== undefined) this.#account(performance.now());
    return this.#cpuMs;
  }

  /** The guest has the thread from now on. */
  run(): void {
    const now = performance.now();
    this.#runningSince = now;
    this.#sliceStart = now;
    this.#lastCheck = now;
  }

  /** The guest gives the thread up (it waits, or it ended). */
  pause(): void {
    if (this.#runningSince === undefined) return;
    this.#account(performance.now());
    this.#runningSince = undefined;
  }

  /**
   * Before a guest that waited runs again: holds it until the next period while it is over its
   * CPU quota, then gives it the thread. A stop request ends the hold at once (it rejects).
   */
  async resume(): Promise<void> {
    const hold = this.#quotaHold(performance.now());
    if (hold > 0) await this.#holdFor(hold);
    this.run();
  }

  /** Suspends the guest (its clock stopped) until the host rings `bell` or `timeoutMs` passes. */
  async wait(bell: number, timeoutMs: number): Promise<void> {
    this.pause();
    await this.#control.wait(bell, timeoutMs);
    await this.resume();
  }

  /** The `wasmlet.yield` import: the next fuel, or a promise of it once others have had a turn. */
  readonly yieldPoint = (): number | Promise<number> => {
    this.#control.checkStop();
    const now = performance.now();
    this.#tuneFuel(now);
    this.#account(now);
    const hold = this.#quotaHold(now);
    if (hold > 0) return this.#yield(() => this.#holdFor(hold));
    if (now - this.#sliceStart >= SLICE_MS) return this.#yield(nextTurn);
    return this.#fuel;
  };

  async #yield(wait: () => Promise<void>): Promise<number> {
    this.pause();
    await wait();
    this.#control.checkStop();
    this.run();
    return this.#fuel;
  }

  async #holdFor(ms: number): Promise<void> {
    const deadline = performance.now() + ms;
    for (let left = ms; left > 0; left = deadline - performance.now()) {
      await this.#control.wait(this.#control.doorbell(), left);
    }
  }

  #tuneFuel(now: number): void {
    const since = Math.max(now - this.#lastCheck, 0.001);
    this.#lastCheck = now;
    const factor = Math.min(2, Math.max(0.5, CHECK_INTERVAL_MS / since));
    this.#fuel = Math.min(MAX_FUEL, Math.max(1, Math.round(this.#fuel * factor)));
  }

  #account(now: number): void {
    const ran = now - (this.#runningSince ?? now);
    this.#runningSince = now;
    this.#cpuMs += ran;
    if (this.#quotaMs !== undefined) {
      if (now - this.#periodStart >= PERIOD_MS) {
        this.#periodStart = now - (now % PERIOD_MS);
        this.#periodUsedMs = 0;
      }
      this.#periodUsedMs += ran;
    }
    this.#control.publishCpu(BigInt(Math.round(this.#cpuMs * 1e6)));
  }

  /** How long the guest must wait before it may run again (0: it may run now). */
  #quotaHold(now: number): number {
    if (this.#quotaMs === undefined || this.#periodUsedMs < this.#quotaMs) return 0;
    const periodEnd = this.#periodStart + PERIOD_MS;
    if (now >= periodEnd) return 0;
    return periodEnd - now;
  }
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
