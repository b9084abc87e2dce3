// When one guest of a shared worker runs, for how long, and when it must give the thread back.
// Guests are cooperative only at their yield points: the import `wasmlet.yield`, which the module
// rewriter (src/wasm/yield-points.ts) calls from loop headers and function entries whenever the
// guest's fuel runs out, and every WASI call that waits. This clock
// - tunes the fuel so that a computing guest reaches the host about every CHECK_INTERVAL_MS;
// - ends the guest's time slice after SLICE_MS of computing: it yields one turn of the event loop,
//   so sleepers' timers and other guests run (round robin through the macrotask queue);
// - counts the CPU time of each guest — the thread's CPU time (getrusage) while the guest holds
//   it, so a machine too busy to run the thread costs the guest nothing — and publishes it for
//   `kubectl top`;
// - enforces a CPU limit as a quota per PERIOD_MS, as the kernel's CFS bandwidth control does for
//   containers: a guest draws on a bucket refilled at its limit's rate (at most one period's quota
//   banked); when it is spent, the guest is held until half a period's quota is back. An overrun
//   (a long stretch between yield points) is owed, so the long-run average is the limit.
// A kill is honoured at every yield point, so killing a computing guest is immediate. A stop
// request (SIGTERM) is honoured at the guest's next WASI call, as before yield points existed: a
// guest that computes without calling the host runs on until its grace period ends and it is
// killed, as a process that ignores SIGTERM does.
import type { GuestControl } from "./control.ts";

export const SLICE_MS = 2;
const CHECK_INTERVAL_MS = 0.25;
export const PERIOD_MS = 100;
const INITIAL_FUEL = 10_000;
const MAX_FUEL = 2 ** 30;

/** CPU time of the calling thread, in ms. */
function threadCpuMs(): number {
  const usage = process.threadCpuUsage();
  return (usage.user + usage.system) / 1000;
}

export class GuestClock {
  readonly #control: GuestControl;
  /** CPU time allowed per period, in ms; undefined: no limit. */
  readonly #quotaMs: number | undefined;
  /** The thread's CPU time when the guest's time was last counted; undefined while it waits. */
  #cpuAtRun: number | undefined;
  #sliceStart = 0;
  #lastCheck = 0;
  #fuel = INITIAL_FUEL;
  #cpuMs = 0;
  /** CPU ms the guest may still use before it is held (negative: owed). */
  #bucketMs: number;
  #refilledAt: number;

  constructor(control: GuestControl, cpuLimitMillis: number | undefined) {
    this.#control = control;
    this.#quotaMs = cpuLimitMillis === undefined ? undefined : (PERIOD_MS * cpuLimitMillis) / 1000;
    this.#bucketMs = this.#quotaMs ?? 0;
    this.#refilledAt = performance.now();
  }

  /** CPU time used so far, in ms. */
  get cpuMs(): number {
    if (this.#cpuAtRun !== undefined) this.#account();
    return this.#cpuMs;
  }

  /** The guest has the thread from now on. */
  run(): void {
    const now = performance.now();
    this.#cpuAtRun = threadCpuMs();
    this.#sliceStart = now;
    this.#lastCheck = now;
  }

  /** The guest gives the thread up (it waits, or it ended). */
  pause(): void {
    if (this.#cpuAtRun === undefined) return;
    this.#account();
    this.#cpuAtRun = undefined;
  }

  /**
   * Before a guest that waited runs again: holds it while it is over its CPU quota, then gives it
   * the thread. A kill ends the hold at once (it rejects).
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
    this.#control.checkKill();
    const now = performance.now();
    this.#tuneFuel(now);
    this.#account();
    const hold = this.#quotaHold(now);
    if (hold > 0) return this.#yield(() => this.#holdFor(hold));
    if (now - this.#sliceStart >= SLICE_MS) return this.#yield(nextTurn);
    return this.#fuel;
  };

  async #yield(wait: () => Promise<void>): Promise<number> {
    this.pause();
    await wait();
    this.#control.checkKill();
    this.run();
    return this.#fuel;
  }

  /** Holds the guest for `ms`; a kill ends the hold at once (it rejects). */
  async #holdFor(ms: number): Promise<void> {
    const deadline = performance.now() + ms;
    for (let left = ms; left > 0; left = deadline - performance.now()) {
      await this.#control.wait(this.#control.doorbell(), left, true);
    }
  }

  #tuneFuel(now: number): void {
    const since = Math.max(now - this.#lastCheck, 0.001);
    this.#lastCheck = now;
    const factor = Math.min(2, Math.max(0.5, CHECK_INTERVAL_MS / since));
    this.#fuel = Math.min(MAX_FUEL, Math.max(1, Math.round(this.#fuel * factor)));
  }

  /** Adds the CPU time since the last count to the guest's, and takes it from its bucket. */
  #account(): void {
    const cpu = threadCpuMs();
    const ran = Math.max(0, cpu - (this.#cpuAtRun ?? cpu));
    this.#cpuAtRun = cpu;
    this.#cpuMs += ran;
    this.#bucketMs -= ran;
    this.#control.publishCpu(BigInt(Math.round(this.#cpuMs * 1e6)));
  }

  /** How long the guest must wait before it may run again (0: it may run now). */
  #quotaHold(now: number): number {
    const quota = this.#quotaMs;
    if (quota === undefined) return 0;
    const ratePerMs = quota / PERIOD_MS;
    this.#bucketMs = Math.min(quota, this.#bucketMs + (now - this.#refilledAt) * ratePerMs);
    this.#refilledAt = now;
    if (this.#bucketMs > 0) return 0;
    // Held until half a period's quota is back: a few holds a second, not one per yield point.
    return (quota / 2 - this.#bucketMs) / ratePerMs;
  }
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
