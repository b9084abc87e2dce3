// The downward API: values of pod fields (fieldRef) and container resources (resourceFieldRef), with
// the kubelet's exact formats. Used by env resolution (pods/) and by downwardAPI/projected volumes.
import type {
  V1Container,
  V1ObjectFieldSelector,
  V1Pod,
  V1ResourceFieldSelector,
} from "@kubernetes/client-node";
import {
  ceilDiv,
  compareQuantity,
  parseQuantity,
  type Quantity,
  quantityMilliValue,
  quantityValue,
  ZERO,
} from "../quantity/quantity.ts";
import { volumeError } from "./errors.ts";

/** What the downward API needs to know beyond the pod object itself. */
export interface DownwardContext {
  /** The pod's IPs (wasmlet: the node's InternalIPs). */
  podIPs: readonly string[];
  /** The node's IPs. */
  hostIPs: readonly string[];
  /** The node's allocatable resources (`cpu`, `memory`, `ephemeral-storage`), used as the default limits. */
  nodeAllocatable: Readonly<Record<string, string>>;
}

/** Splits `metadata.labels['key']` into path and subscript (Kubernetes' SplitMaybeSubscriptedPath). */
export function splitSubscriptedPath(fieldPath: string): { path: string; subscript?: string } {
  if (!fieldPath.endsWith("']")) return { path: fieldPath };
  const open = fieldPath.indexOf("['");
  if (open < 0) return { path: fieldPath };
  return { path: fieldPath.slice(0, open), subscript: fieldPath.slice(open + 2, -2) };
}

/** Go's `%q` for the strings a label or annotation value can hold. */
export function goQuote(value: string): string {
  let out = '"';
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0;
    switch (ch) {
      case '"':
        out += '\\"';
        break;
      case "\\":
        out += "\\\\";
        break;
      case "\x07":
        out += "\\a";
        break;
      case "\b":
        out += "\\b";
        break;
      case "\f":
        out += "\\f";
        break;
      case "\n":
        out += "\\n";
        break;
      case "\r":
        out += "\\r";
        break;
      case "\t":
        out += "\\t";
        break;
      case "\v":
        out += "\\v";
        break;
      default:
        if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, "0")}`;
        else if (code >= 0x80 && code <= 0x9f) out += `\\u${code.toString(16).padStart(4, "0")}`;
        else out += ch;
    }
  }
  return `${out}"`;
}

/** Kubernetes' FormatMap: `key="value"` lines in key order, no trailing newline. */
export function formatMap(map: Readonly<Record<string, string>> | undefined): string {
  const keys = Object.keys(map ?? {}).sort();
  return keys.map((key) => `${key}=${goQuote(map?.[key] ?? "")}`).join("\n");
}

/** The value of a pod field, as the kubelet's podFieldSelectorRuntimeValue computes it. */
export function podFieldValue(
  pod: V1Pod,
  selector: V1ObjectFieldSelector,
  context: Pick<DownwardContext, "podIPs" | "hostIPs">,
): string {
  const fieldPath = selector.fieldPath;
  switch (fieldPath) {
    case "spec.nodeName":
      return pod.spec?.nodeName ?? "";
    case "spec.serviceAccountName":
      return pod.spec?.serviceAccountName ?? "";
    case "status.hostIP":
      return context.hostIPs[0] ?? "";
    case "status.hostIPs":
      return context.hostIPs.join(",");
    case "status.podIP":
      return context.podIPs[0] ?? "";
    case "status.podIPs":
      return context.podIPs.join(",");
  }
  const meta = pod.metadata ?? {};
  const { path, subscript } = splitSubscriptedPath(fieldPath);
  if (subscript !== undefined) {
    if (path === "metadata.annotations") return meta.annotations?.[subscript] ?? "";
    if (path === "metadata.labels") return meta.labels?.[subscript] ?? "";
    throw volumeError(
      "WASMLET_ERR_VOLUME_SETUP",
      `fieldPath "${fieldPath}" does not support subscript`,
    );
  }
  switch (fieldPath) {
    case "metadata.annotations":
      return formatMap(meta.annotations);
    case "metadata.labels":
      return formatMap(meta.labels);
    case "metadata.name":
      return meta.name ?? "";
    case "metadata.namespace":
      return meta.namespace ?? "";
    case "metadata.uid":
      return meta.uid ?? "";
  }
  throw volumeError("WASMLET_ERR_VOLUME_SETUP", `unsupported fieldPath: ${fieldPath}`);
}

function quantityOr(text: string | undefined, fallback: Quantity): Quantity {
  return text === undefined ? fallback : parseQuantity(text);
}

/**
 * The value of a container resource, as the kubelet's containerResourceRuntimeValue computes it:
 * unset limits default to the node's allocatable, the result is ceil(value / divisor).
 */
export function resourceFieldValue(
  selector: V1ResourceFieldSelector,
  container: V1Container,
  nodeAllocatable: Readonly<Record<string, string>>,
): string {
  const divisorText = selector.divisor === undefined ? undefined : String(selector.divisor);
  let divisor = divisorText === undefined ? ZERO : parseQuantity(divisorText);
  if (compareQuantity(divisor, ZERO) === 0) divisor = { num: 1n, den: 1n };
  const limits = container.resources?.limits ?? {};
  const requests = container.resources?.requests ?? {};
  const allocatable = (name: string) => quantityOr(nodeAllocatable[name], ZERO);
  const cpu = (q: Quantity) => {
    const d = quantityMilliValue(divisor);
    return String(ceilDiv(quantityMilliValue(q), d === 0n ? 1n : d));
  };
  const bytes = (q: Quantity) => {
    const d = quantityValue(divisor);
    return String(ceilDiv(quantityValue(q), d === 0n ? 1n : d));
  };
  switch (selector.resource) {
    case "limits.cpu":
      return cpu(quantityOr(limits.cpu, allocatable("cpu")));
    case "limits.memory":
      return bytes(quantityOr(limits.memory, allocatable("memory")));
    case "limits.ephemeral-storage":
      return bytes(quantityOr(limits["ephemeral-storage"], allocatable("ephemeral-storage")));
    case "requests.cpu":
      return cpu(quantityOr(requests.cpu, ZERO));
    case "requests.memory":
      return bytes(quantityOr(requests.memory, ZERO));
    case "requests.ephemeral-storage":
      return bytes(quantityOr(requests["ephemeral-storage"], ZERO));
  }
  const hugepages = /^(limits|requests)\.(hugepages-.+)$/.exec(selector.resource);
  if (hugepages) {
    const list = hugepages[1] === "limits" ? limits : requests;
    return bytes(quantityOr(list[hugepages[2] ?? ""], ZERO));
  }
  throw volumeError(
    "WASMLET_ERR_VOLUME_SETUP",
    `unsupported container resource : ${selector.resource}`,
  );
}
