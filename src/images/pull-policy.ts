// Kubernetes' imagePullPolicy, in plain terms: `Always` resolves the reference at the registry
// every time (downloading only what changed), `IfNotPresent` uses a present image, `Never` only a
// present one. When a pod does not say, the tag `latest` (explicit, or implied by a reference
// with neither tag nor digest) means `Always`, anything else `IfNotPresent`.
import type { ImageReference } from "./reference.ts";

export type PullPolicy = "Always" | "IfNotPresent" | "Never";

export const PULL_POLICIES: readonly PullPolicy[] = ["Always", "IfNotPresent", "Never"];

/** The API server's defaulting rule for `imagePullPolicy`. */
export function defaultPullPolicy(ref: ImageReference): PullPolicy {
  return ref.tag === "latest" ? "Always" : "IfNotPresent";
}

export function isPullPolicy(value: unknown): value is PullPolicy {
  return typeof value === "string" && (PULL_POLICIES as readonly string[]).includes(value);
}
