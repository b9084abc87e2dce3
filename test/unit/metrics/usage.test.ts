import assert from "node:assert/strict";
import { test } from "node:test";
import { CpuRates, type CpuSample } from "../../../src/metrics/usage.ts";

const at = (ms: number, usageCoreSeconds: number): CpuSample => ({
  time: new Date(1_800_000_000_000 + ms),
  usageCoreSeconds,
});

test("CpuRates: no rate at first sight, then the rate since the previous sample", () => {
  const rates = new CpuRates(1000);
  assert.equal(rates.withRate("c1", at(0, 10)).usageNanoCores, undefined);
  const second = rates.withRate("c1", at(2000, 11));
  assert.equal(second.usageNanoCores, 500_000_000);
  assert.equal(second.usageCoreSeconds, 11, "the sample itself is kept");
  assert.equal(rates.withRate("c1", at(4000, 13)).usageNanoCores, 1_000_000_000);
  assert.equal(rates.withRate("c2", at(4000, 1)).usageNanoCores, undefined, "keys are apart");
});

test("CpuRates: a window shorter than the minimum repeats the last rate and keeps the base", () => {
  const rates = new CpuRates(1000);
  rates.withRate("c", at(0, 0));
  assert.equal(rates.withRate("c", at(100, 0.1)).usageNanoCores, undefined);
  assert.equal(rates.withRate("c", at(1000, 0.25)).usageNanoCores, 250_000_000);
  assert.equal(rates.withRate("c", at(1200, 0.45)).usageNanoCores, 250_000_000);
  assert.equal(rates.withRate("c", at(2000, 0.75)).usageNanoCores, 500_000_000);
  assert.equal(rates.withRate("c", at(1500, 0.5)).usageNanoCores, 500_000_000, "older: ignored");
});

test("CpuRates: retain() forgets what was not measured", () => {
  const rates = new CpuRates(1000);
  rates.withRate("gone", at(0, 1));
  rates.withRate("kept", at(0, 1));
  rates.retain(new Set(["kept"]));
  assert.equal(rates.withRate("gone", at(2000, 2)).usageNanoCores, undefined);
  assert.equal(rates.withRate("kept", at(2000, 2)).usageNanoCores, 500_000_000);
});
