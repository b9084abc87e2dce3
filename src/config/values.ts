// Parsers for the value formats configuration accepts. Each takes what a flag, an environment
// variable or a YAML file gives (a string, or a YAML scalar/list/map) and returns the typed value,
// or throws a ValueError whose message says why, in words a user can act on.
import { isIP } from "node:net";
import { isWasmletError } from "../errors.ts";
import {
  parseQuantity,
  type Quantity,
  quantityMilliValue,
  quantityValue,
} from "../quantity/quantity.ts";

export class ValueError extends Error {
  override name = "ValueError";
}

export type TaintEffect = "NoSchedule" | "PreferNoSchedule" | "NoExecute";

export interface TaintSpec {
  key: string;
  value: string | undefined;
  effect: TaintEffect;
}

function show(value: unknown): string {
  return typeof value === "string"
    ? JSON.stringify(value)
    : (JSON.stringify(value) ?? String(value));
}

function scalar(value: unknown): string {
  if (typeof value === "string") return value.trim();
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  throw new ValueError(`expected a single value, got ${show(value)}`);
}

export function parseString(value: unknown): string {
  const text = scalar(value);
  if (text === "") throw new ValueError("must not be empty");
  return text;
}

export function parseBoolean(value: unknown): boolean {
  if (typeof value === "boolean") return value;
  const text = scalar(value).toLowerCase();
  if (["true", "1", "yes", "on"].includes(text)) return true;
  if (["false", "0", "no", "off"].includes(text)) return false;
  throw new ValueError(`${show(value)} is not a boolean (use true or false)`);
}

export function parseInteger(value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const text = scalar(value);
  if (!/^-?\d+$/.test(text)) throw new ValueError(`${show(value)} is not a whole number`);
  const n = Number(text);
  if (n < min || n > max) {
    throw new ValueError(
      max === Number.MAX_SAFE_INTEGER
        ? `${n} is less than ${min}`
        : `${n} is not between ${min} and ${max}`,
    );
  }
  return n;
}

export function parsePort(value: unknown): number {
  return parseInteger(value, 1, 65535);
}

export function parseIP(value: unknown): string {
  const text = scalar(value);
  if (isIP(text) === 0) throw new ValueError(`${show(value)} is not an IP address`);
  return text;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A Kubernetes object name of the DNS-subdomain kind (what a Node name must be). */
export function parseDnsSubdomain(value: unknown): string {
  const text = scalar(value);
  if (text.length === 0 || text.length > 253)
    throw new ValueError(`${show(value)} must be 1 to 253 characters`);
  if (!text.split(".").every((label) => DNS1123_LABEL.test(label) && label.length <= 63)) {
    throw new ValueError(
      `${show(value)} is not a valid node name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)`,
    );
  }
  return text;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go-style durations: `500ms`, `10s`, `1m30s`, `2h`. Returns milliseconds. */
export function parseDuration(value: unknown, { allowZero = false } = {}): number {
  const text = scalar(value);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (let match = re.exec(text); match !== null; match = re.exec(text)) {
    total += Number(match[1]) * (DURATION_UNITS[match[2] as string] as number);
    consumed = re.lastIndex;
  }
  if (text === "" || consumed !== text.length) {
    throw new ValueError(`${show(value)} is not a duration (examples: 500ms, 10s, 1m30s, 2h)`);
  }
  if (!allowZero && total <= 0) throw new ValueError(`${show(value)} must be longer than zero`);
  return Math.round(total);
}

/** The quantity in `text` when it is one and not negative, else undefined. */
function nonNegativeQuantity(text: string): Quantity | undefined {
  try {
    const quantity = parseQuantity(text);
    return quantity.num < 0n ? undefined : quantity;
  } catch (error) {
    if (isWasmletError(error, "WASMLET_ERR_QUANTITY")) return undefined;
    throw error;
  }
}

/** A Kubernetes quantity of bytes: `512`, `100Mi`, `1.5Gi`, `2G`; fractions round up, as the API's. */
export function parseBytes(value: unknown): number {
  const quantity = nonNegativeQuantity(scalar(value));
  if (!quantity) {
    throw new ValueError(`${show(value)} is not a byte quantity (examples: 512, 100Mi, 1.5Gi, 2G)`);
  }
  return Number(quantityValue(quantity));
}

/** A Kubernetes CPU quantity: `100m`, `0.5`, `2`. Returns millicores, fractions rounded up. */
export function parseCpuMillis(value: unknown): number {
  const quantity = nonNegativeQuantity(scalar(value));
  if (!quantity)
    throw new ValueError(`${show(value)} is not a CPU quantity (examples: 100m, 0.5, 2)`);
  return Number(quantityMilliValue(quantity));
}

/** A percentage `0%`–`100%` (the `%` may be left out). Returns the number. */
export function parsePercent(value: unknown): number {
  const text = scalar(value).replace(/%$/, "");
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) > 100) {
    throw new ValueError(`${show(value)} is not a percentage between 0% and 100%`);
  }
  return Number(text);
}

/** Comma-separated (or a YAML list), empty entries dropped. */
export function parseList(value: unknown): string[] {
  const items = Array.isArray(value) ? value.map(scalar) : scalar(value).split(",");
  return items.map((item) => item.trim()).filter((item) => item !== "");
}

/** `k=v,k2=v2`, or a YAML mapping. */
export function parseKeyValues(value: unknown): Record<string, string> {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, v === null ? "" : scalar(v)]),
    );
  }
  const result: Record<string, string> = {};
  for (const item of parseList(value)) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new ValueError(`${show(item)} is not key=value`);
    result[item.slice(0, eq).trim()] = item.slice(eq + 1).trim();
  }
  return result;
}

const QUALIFIED_NAME =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

export function checkLabelKey(key: string): void {
  const name = key.includes("/") ? key.slice(key.indexOf("/") + 1) : key;
  const prefix = key.includes("/") ? key.slice(0, key.indexOf("/")) : "";
  if (!QUALIFIED_NAME.test(key) || name.length > 63 || prefix.length > 253) {
    throw new ValueError(`${JSON.stringify(key)} is not a valid label key`);
  }
}

export function checkLabelValue(key: string, value: string): void {
  if (value.length > 63 || !LABEL_VALUE.test(value)) {
    throw new ValueError(`the value ${JSON.stringify(value)} of ${key} is not a valid label value`);
  }
}

/** Node labels: `k=v,k2=v2` or a YAML mapping, every key and value valid for Kubernetes. */
export function parseLabels(value: unknown): Record<string, string> {
  const labels = parseKeyValues(value);
  for (const [key, labelValue] of Object.entries(labels)) {
    checkLabelKey(key);
    checkLabelValue(key, labelValue);
  }
  return labels;
}

const EFFECTS: readonly TaintEffect[] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

function parseTaint(item: unknown): TaintSpec {
  let key: string;
  let taintValue: string | undefined;
  let effect: string;
  if (item !== null && typeof item === "object" && !Array.isArray(item)) {
    const t = item as Record<string, unknown>;
    key = scalar(t.key ?? "");
    taintValue = t.value === undefined || t.value === null ? undefined : scalar(t.value);
    effect = scalar(t.effect ?? "");
  } else {
    const text = scalar(item);
    const colon = text.lastIndexOf(":");
    if (colon <= 0) throw new ValueError(`${show(text)} is not a taint (key[=value]:Effect)`);
    effect = text.slice(colon + 1);
    const kv = text.slice(0, colon);
    const eq = kv.indexOf("=");
    key = eq < 0 ? kv : kv.slice(0, eq);
    taintValue = eq < 0 ? undefined : kv.slice(eq + 1);
  }
  checkLabelKey(key);
  if (taintValue !== undefined) checkLabelValue(key, taintValue);
  if (!EFFECTS.includes(effect as TaintEffect)) {
    throw new ValueError(
      `the taint effect ${JSON.stringify(effect)} of ${key} is not one of ${EFFECTS.join(", ")}`,
    );
  }
  return { key, value: taintValue, effect: effect as TaintEffect };
}

/** Taints: `key[=value]:Effect,...`, or a YAML list of strings or `{key, value, effect}`. */
export function parseTaints(value: unknown): TaintSpec[] {
  const items = Array.isArray(value) ? value : parseList(value);
  return items.map(parseTaint);
}

export interface Reservation {
  cpuMillis: number;
  memoryBytes: number;
  ephemeralStorageBytes: number;
}

/** `cpu=100m,memory=256Mi,ephemeral-storage=1Gi` or a YAML mapping with those keys. */
export function parseReservation(value: unknown): Reservation {
  const entries = parseKeyValues(value);
  const result: Reservation = { cpuMillis: 0, memoryBytes: 0, ephemeralStorageBytes: 0 };
  for (const [key, amount] of Object.entries(entries)) {
    if (key === "cpu") result.cpuMillis = parseCpuMillis(amount);
    else if (key === "memory") result.memoryBytes = parseBytes(amount);
    else if (key === "ephemeral-storage") result.ephemeralStorageBytes = parseBytes(amount);
    else
      throw new ValueError(
        `${JSON.stringify(key)} is not a reservable resource (cpu, memory, ephemeral-storage)`,
      );
  }
  return result;
}

/** A registry host with an optional port, as it appears in image references. */
export function parseRegistryHosts(value: unknown): string[] {
  const hosts = parseList(value);
  for (const host of hosts) {
    if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(host) && !/^\[[0-9a-fA-F:]+\](:\d{1,5})?$/.test(host)) {
      throw new ValueError(`${JSON.stringify(host)} is not a registry host[:port]`);
    }
  }
  return hosts;
}
