import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Backoff, sleep } from "../../../src/kube/backoff.ts";

describe("Backoff", () => {
  it("doubles up to the cap, with jitter below each ceiling, and resets", () => {
    const top = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map(() => top.next()),
      [100, 200, 400, 800, 1000, 1000],
    );
    assert.equal(top.attempts, 6);
    top.reset();
    assert.equal(top.next(), 100);
    const bottom = new Backoff({
      initialMs: 100,
      maxMs: 1000,
      jitter: 0.5,
      random: () => 0.999999,
    });
    assert.equal(bottom.next(), 50);
    const real = new Backoff({ initialMs: 1000, maxMs: 1000 });
    for (let i = 0; i < 50; i++) {
      const d = real.next();
      assert.ok(d >= 500 && d <= 1000, `${d} within [500, 1000]`);
    }
    assert.throws(() => new Backoff({ initialMs: 0, maxMs: 1 }), RangeError);
  });

  it("per key, as the kubelet restarts: immediate, then 10s doubling to 300s, reset after a long run", () => {
    let now = 0;
    const backoff = new Backoff({
      initialMs: 10_000,
      maxMs: 300_000,
      resetAfterMs: 600_000,
      jitter: 0,
      now: () => now,
    });
    const waits: number[] = [];
    // A container that crashes right after each start.
    for (let i = 0; i < 8; i++) {
      const exitedAt = now;
      const wait = backoff.remaining("c", exitedAt);
      waits.push(wait);
      now += wait;
      backoff.next("c", exitedAt);
      now += 1; // runs 1 ms
    }
    assert.deepEqual(waits, [0, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);
    assert.equal(backoff.get("c"), 300_000);
    assert.equal(backoff.get("other"), 0, "keys are independent");
    assert.equal(backoff.attempts, 0, "the default key is untouched");
    // Runs for more than 10 minutes: the next crash restarts at once and the window starts over.
    now += 600_001;
    assert.equal(backoff.remaining("c", now), 0);
    assert.equal(backoff.next("c", now), 10_000);
    backoff.forget("c");
    assert.equal(backoff.get("c"), 0);
    assert.throws(() => new Backoff({ initialMs: 0, maxMs: 1, resetAfterMs: 1 }), RangeError);
  });

  it("sleep ends early when its signal aborts", async () => {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 20);
    await sleep(10_000, controller.signal);
    assert.ok(Date.now() - started < 1000);
    await sleep(10_000, controller.signal);
  });
});
