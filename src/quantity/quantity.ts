// Kubernetes resource quantities ("100m", "1.5Gi", "2e3"), the one parser for pods, volumes, node
// and configuration. Values are exact rationals, so the kubelet's arithmetic (Value, MilliValue,
// ceil of value / divisor) gives the answers resource.Quantity gives; and the formats the Node
// reports its capacity in.
import { quantityError } from "./errors.ts";

/** An exact quantity: numerator / denominator, denominator > 0. */
export interface Quantity {
  readonly num: bigint;
  readonly den: bigint;
}

const BINARY: Record<string, bigint> = {
  Ki: 1n << 10n,
  Mi: 1n << 20n,
  Gi: 1n << 30n,
  Ti: 1n << 40n,
  Pi: 1n << 50n,
  Ei: 1n << 60n,
};
const DECIMAL: Record<string, number> = {
  n: -9,
  u: -6,
  m: -3,
  "": 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};

const QUANTITY = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;

/** resource.ParseQuantity; throws WASMLET_ERR_QUANTITY with the API server's wording. */
export function parseQuantity(text: string): Quantity {
  const match = QUANTITY.exec(text.trim());
  if (!match)
    throw quantityError(
      "WASMLET_ERR_QUANTITY",
      `quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': ${JSON.stringify(text)}`,
    );
  const [, sign, digits = "0", suffix = ""] = match;
  const [whole = "0", fraction = ""] = digits.split(".");
  let num = BigInt((whole || "0") + fraction);
  let den = 10n ** BigInt(fraction.length);
  if (sign === "-") num = -num;
  const binary = BINARY[suffix];
  if (binary !== undefined) {
    num *= binary;
  } else {
    // "E" alone is exa; an exponent has digits after its "e" or "E".
    const exponent = DECIMAL[suffix] ?? Number(suffix.slice(1));
    if (exponent >= 0) num *= 10n ** BigInt(exponent);
    else den *= 10n ** BigInt(-exponent);
  }
  return { num, den };
}

/** ceil(a / b) for bigints, b > 0. */
export function ceilDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a > 0n ? q + 1n : q;
}

/** a / b rounded away from zero, b > 0: resource.Quantity's "round up" (1.5 → 2, -1.5 → -2). */
function roundUpDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  if (a % b === 0n) return q;
  return a > 0n ? q + 1n : q - 1n;
}

/** Go's Quantity.Value(): the value rounded up to an integer. */
export function quantityValue(q: Quantity): bigint {
  return roundUpDiv(q.num, q.den);
}

/** Go's Quantity.MilliValue(): the value in thousandths, rounded up. */
export function quantityMilliValue(q: Quantity): bigint {
  return roundUpDiv(q.num * 1000n, q.den);
}

export function compareQuantity(a: Quantity, b: Quantity): number {
  const left = a.num * b.den;
  const right = b.num * a.den;
  return left < right ? -1 : left > right ? 1 : 0;
}

export function addQuantity(a: Quantity, b: Quantity): Quantity {
  return { num: a.num * b.den + b.num * a.den, den: a.den * b.den };
}

export const ZERO: Quantity = { num: 0n, den: 1n };

/** Bytes of a memory-like quantity as a JS number (rounded up), or undefined when absent. */
export function bytesOf(text: string | undefined): number | undefined {
  return text === undefined ? undefined : Number(quantityValue(parseQuantity(text)));
}

/** Millicores of a cpu quantity (rounded up), or undefined when absent. */
export function millisOf(text: string | undefined): number | undefined {
  return text === undefined ? undefined : Number(quantityMilliValue(parseQuantity(text)));
}

/** Millicores as the Node reports CPU: whole cores when whole (`2`), else millis (`1500m`). */
export function cpuQuantity(millis: number): string {
  const m = Math.max(0, Math.floor(millis));
  return m % 1000 === 0 ? String(m / 1000) : `${m}m`;
}

/** Bytes as the Node reports memory and storage: `Ki` when whole kibibytes, else bytes. */
export function bytesQuantity(bytes: number): string {
  const b = Math.max(0, Math.floor(bytes));
  return b % 1024 === 0 ? `${b / 1024}Ki` : String(b);
}
