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

  it("sleep ends early when its signal aborts", async () => {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 20);
    await sleep(10_000, controller.signal);
    assert.ok(Date.now() - started < 1000);
    await sleep(10_000, controller.signal);
  });
});
