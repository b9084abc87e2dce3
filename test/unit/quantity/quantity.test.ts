import assert from "node:assert/strict";
import { test } from "node:test";
import {
  addQuantity,
  bytesOf,
  bytesQuantity,
  ceilDiv,
  compareQuantity,
  cpuQuantity,
  millisOf,
  parseQuantity,
  quantityMilliValue,
  quantityValue,
} from "../../../src/quantity/quantity.ts";

function values(text: string): [bigint, bigint] {
  const quantity = parseQuantity(text);
  return [quantityValue(quantity), quantityMilliValue(quantity)];
}

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
    assert.deepEqual(values(text), [value, milli], text);
  }
});

test("every suffix of the grammar: binary SI, decimal SI and decimal exponents", () => {
  const binary: [string, bigint][] = [
    ["Ki", 1n << 10n],
    ["Mi", 1n << 20n],
    ["Gi", 1n << 30n],
    ["Ti", 1n << 40n],
    ["Pi", 1n << 50n],
    ["Ei", 1n << 60n],
  ];
  for (const [suffix, factor] of binary) assert.equal(values(`3${suffix}`)[0], 3n * factor, suffix);
  const decimal: [string, number][] = [
    ["n", -9],
    ["u", -6],
    ["m", -3],
    ["k", 3],
    ["M", 6],
    ["G", 9],
    ["T", 12],
    ["P", 15],
    ["E", 18],
  ];
  for (const [suffix, exponent] of decimal) {
    assert.equal(compareQuantity(parseQuantity(`7${suffix}`), parseQuantity(`7e${exponent}`)), 0);
  }
  assert.deepEqual(values("1E"), [10n ** 18n, 10n ** 21n], "E is exa, not an exponent");
  assert.deepEqual(values("12e+2"), [1200n, 1200000n]);
  assert.deepEqual(values("5e-1"), [1n, 500n]);
  assert.deepEqual(values("+2"), [2n, 2000n]);
  assert.deepEqual(values(".5"), [1n, 500n]);
  assert.deepEqual(values("5."), [5n, 5000n]);
  assert.deepEqual(values(" 64Mi "), [67108864n, 67108864000n], "surrounding space is ignored");
});

test("rounding goes away from zero, as resource.Quantity's Value and MilliValue do", () => {
  assert.deepEqual(values("1n"), [1n, 1n]);
  assert.deepEqual(values("1001m"), [2n, 1001n]);
  assert.deepEqual(values("0.0001"), [1n, 1n]);
  assert.deepEqual(values("-1.5"), [-2n, -1500n]);
  assert.deepEqual(values("-1u"), [-1n, -1n]);
  // The downward API divides by a divisor with ceil, towards +∞.
  assert.equal(ceilDiv(5n, 2n), 3n);
  assert.equal(ceilDiv(-5n, 2n), -2n);
  assert.equal(ceilDiv(4n, 2n), 2n);
});

test("comparisons and sums are exact across suffixes", () => {
  assert.equal(compareQuantity(parseQuantity("1Gi"), parseQuantity("1073741824")), 0);
  assert.equal(compareQuantity(parseQuantity("1G"), parseQuantity("1Gi")), -1);
  assert.equal(compareQuantity(parseQuantity("500m"), parseQuantity("0.5")), 0);
  assert.equal(
    compareQuantity(addQuantity(parseQuantity("100m"), parseQuantity("0.9")), parseQuantity("1")),
    0,
  );
  assert.equal(bytesOf("64Mi"), 67108864);
  assert.equal(millisOf("250m"), 250);
  assert.equal(bytesOf(undefined), undefined);
  assert.equal(millisOf(undefined), undefined);
});

test("garbage is rejected with WASMLET_ERR_QUANTITY", () => {
  for (const text of ["", "abc", "1.2.3", "1Kb", "Mi", "1K", "1ki", "1e", "1 Gi", "--1", "1mi"]) {
    assert.throws(() => parseQuantity(text), { code: "WASMLET_ERR_QUANTITY" }, text);
  }
});

test("the Node's capacity formats: whole cores or millis, Ki or bytes", () => {
  assert.equal(cpuQuantity(2000), "2");
  assert.equal(cpuQuantity(1500), "1500m");
  assert.equal(cpuQuantity(-5), "0");
  assert.equal(cpuQuantity(999.9), "999m");
  assert.equal(bytesQuantity(2048), "2Ki");
  assert.equal(bytesQuantity(1000), "1000");
  assert.equal(bytesQuantity(-1), "0Ki");
});
