import assert from "node:assert/strict";
import { test } from "node:test";
import { Backoff } from "../../../src/pods/backoff.ts";

test("restart back-off: immediate, then 10s doubling to 300s, reset after a long run", () => {
  let now = 0;
  const backoff = new Backoff(
    { initialMs: 10_000, maxMs: 300_000, resetAfterMs: 600_000 },
    () => now,
  );
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
  // Runs for more than 10 minutes: the next crash restarts at once and the window starts over.
  now += 600_001;
  assert.equal(backoff.remaining("c", now), 0);
  assert.equal(backoff.next("c", now), 10_000);
  backoff.forget("c");
  assert.equal(backoff.get("c"), 0);
  assert.throws(() => new Backoff({ initialMs: 0, maxMs: 1, resetAfterMs: 1 }), RangeError);
});
