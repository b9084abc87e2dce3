import assert from "node:assert/strict";
import { test } from "node:test";
import {
  bytesOf,
  compareQuantity,
  millisOf,
  parseQuantity,
  quantityMilliValue,
  quantityValue,
} from "../../../src/volumes/quantity.ts";

test("quantities parse like resource.Quantity and round up", () => {
  const cases: [string, bigint, bigint][] = [
    // text, Value(), MilliValue()
    ["1", 1n, 1000n],
    ["100m", 1n, 100n],
    ["1.5", 2n, 1500n],
    ["0.1", 1n, 100n],
    ["1Ki", 1024n, 1024000n],
    ["1.5Gi", 1610612736n, 1610612736000n],
    ["128Mi", 134217728n, 134217728000n],
    ["1k", 1000n, 1000000n],
    ["1e3", 1000n, 1000000n],
    ["2E-3", 1n, 2n],
    ["500u", 1n, 1n],
    ["0", 0n, 0n],
  ];
  for (const [text, value, milli] of cases) {
    assert.equal(quantityValue(parseQuantity(text)), value, `Value(${text})`);
    assert.equal(quantityMilliValue(parseQuantity(text)), milli, `MilliValue(${text})`);
  }
});

test("comparisons are exact across suffixes", () => {
  assert.equal(compareQuantity(parseQuantity("1Gi"), parseQuantity("1073741824")), 0);
  assert.equal(compareQuantity(parseQuantity("1G"), parseQuantity("1Gi")), -1);
  assert.equal(compareQuantity(parseQuantity("500m"), parseQuantity("0.5")), 0);
  assert.equal(bytesOf("64Mi"), 67108864);
  assert.equal(millisOf("250m"), 250);
  assert.equal(bytesOf(undefined), undefined);
});

test("garbage is rejected with WASMLET_ERR_QUANTITY", () => {
  for (const text of ["", "abc", "1.2.3", "1Kb", "Mi"]) {
    assert.throws(() => parseQuantity(text), { code: "WASMLET_ERR_QUANTITY" }, text);
  }
});
