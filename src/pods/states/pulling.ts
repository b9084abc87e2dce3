// Pulling: every container's image is ensured (pulled per imagePullPolicy and compiled, memory-capped
// to the container's limit). Failures show ErrImagePull, then ImagePullBackOff while the kubelet's
// back-off (10 s doubling to 300 s) runs; ErrImageNeverPull and InvalidImageName wait for a change.
// Deleting the pod ends its wait at once; the pull itself is aborted, down to the registry request,
// once no other pod waits for the same image.
import type { V1Container } from "@kubernetes/client-node";
import { bytesOf } from "../../quantity/quantity.ts";
import { goDuration, messageOf } from "../format.ts";
import type { ContainerRecord } from "../pod-record.ts";
import type { PullPolicy } from "../ports.ts";
import { ContainerReason, EventReason, EventType } from "../reasons.ts";
import type { PodState, StateContext } from "./state.ts";

const NEXT = ["Preparing", "Failed", "Terminating"] as const;

/** Decodes the pod's imagePullSecrets; missing ones give the kubelet's FailedToRetrieveImagePullSecret warning. */
export async function pullSecrets(ctx: StateContext): Promise<string[]> {
  const configs: string[] = [];
  const missing: string[] = [];
  for (const ref of ctx.pod.spec?.imagePullSecrets ?? []) {
    const name = ref.name ?? "";
    let secret: Awaited<ReturnType<typeof ctx.deps.kube.getSecret>>;
    try {
      secret = await ctx.deps.kube.getSecret(ctx.ref.namespace, name);
    } catch {
      secret = undefined;
    }
    const json = secret?.data?.[".dockerconfigjson"];
    const legacy = secret?.data?.[".dockercfg"];
    const encoded = json ?? legacy;
    if (encoded === undefined) missing.push(name);
    else configs.push(Buffer.from(encoded, "base64").toString());
  }
  if (missing.length > 0) {
    ctx.event(
      EventType.Warning,
      EventReason.FailedToRetrieveImagePullSecret,
      `Unable to retrieve some image pull secrets (${missing.join(", ")}); attempting to pull the image may not succeed.`,
    );
  }
  return configs;
}

/** Which waiting reason a failed ensure shows (see ImagePort). */
export function pullFailureReason(error: unknown): string {
  const { reason, code } = (error ?? {}) as { reason?: unknown; code?: unknown };
  if (reason === ContainerReason.ErrImageNeverPull || code === "WASMLET_ERR_IMAGE_NEVER_PULL") {
    return ContainerReason.ErrImageNeverPull;
  }
  if (
    reason === ContainerReason.InvalidImageName ||
    code === "WASMLET_ERR_IMAGE_REFERENCE_INVALID"
  ) {
    return ContainerReason.InvalidImageName;
  }
  return ContainerReason.ErrImagePull;
}

/**
 * The container's imagePullPolicy, defaulted as the API server does for objects that skipped its
 * defaulting: the tag `latest` (explicit, even beside a digest, or implied by a reference with
 * neither tag nor digest) means Always, anything else IfNotPresent.
 */
export function pullPolicy(container: V1Container): PullPolicy {
  const policy = container.imagePullPolicy;
  if (policy === "Always" || policy === "IfNotPresent" || policy === "Never") return policy;
  const [name = "", digest] = (container.image ?? "").split("@");
  const tag = /:([^/]+)$/.exec(name)?.[1] ?? (digest === undefined ? "latest" : undefined);
  return tag === "latest" ? "Always" : "IfNotPresent";
}

/** Ensures one container's image (pulled per its policy), retrying with back-off; false once the pod's signal aborted. */
export async function ensureImage(
  ctx: StateContext,
  record: ContainerRecord,
  spec: V1Container,
  secrets: string[],
): Promise<boolean> {
  const image = spec.image ?? "";
  const key = `${ctx.ref.uid}/${record.name}/${image}`;
  for (;;) {
    if (ctx.signal.aborted) return false;
    const began = ctx.deps.now().getTime();
    try {
      const memory = bytesOf(spec.resources?.limits?.memory);
      const ensured = await ctx.deps.images.ensure(image, {
        pullPolicy: pullPolicy(spec),
        pullSecrets: secrets,
        ...(spec.command?.[0] ? { executable: spec.command[0] } : {}),
        ...(memory !== undefined ? { memoryLimitBytes: memory } : {}),
        signal: ctx.signal,
        onPulling: () =>
          ctx.event(EventType.Normal, EventReason.Pulling, `Pulling image "${image}"`, record),
      });
      ctx.images.set(record.name, ensured);
      record.image = ensured.image;
      record.imageID = ensured.imageID;
      if (ensured.pulled) {
        const took = goDuration(ctx.deps.now().getTime() - began);
        const size =
          ensured.sizeBytes !== undefined ? ` Image size: ${ensured.sizeBytes} bytes.` : "";
        ctx.event(
          EventType.Normal,
          EventReason.Pulled,
          `Successfully pulled image "${image}" in ${took} (${took} including waiting).${size}`,
          record,
        );
      } else {
        ctx.event(
          EventType.Normal,
          EventReason.Pulled,
          `Container image "${image}" already present on machine`,
          record,
        );
      }
      if (
        record.state.kind === "waiting" &&
        record.state.reason !== ContainerReason.PodInitializing
      ) {
        record.state = {
          kind: "waiting",
          reason:
            !record.ephemeral && (ctx.pod.spec?.initContainers ?? []).length > 0
              ? ContainerReason.PodInitializing
              : ContainerReason.ContainerCreating,
        };
        ctx.publish();
      }
      ctx.deps.imageBackoff.reset(key);
      return true;
    } catch (error) {
      if (ctx.signal.aborted) return false;
      const message = messageOf(error);
      const reason = pullFailureReason(error);
      const keepLast = record.state.kind === "terminated" ? record.state : record.lastState;
      if (reason === ContainerReason.ErrImageNeverPull) {
        const text = `Container image "${image}" is not present with pull policy of Never`;
        record.state = {
          kind: "waiting",
          reason: ContainerReason.ErrImageNeverPull,
          message: text,
        };
        ctx.event(EventType.Warning, EventReason.ErrImageNeverPull, text, record);
      } else if (reason === ContainerReason.InvalidImageName) {
        const text = `Failed to apply default image tag "${image}": ${message}`;
        record.state = { kind: "waiting", reason: ContainerReason.InvalidImageName, message: text };
        ctx.event(EventType.Warning, EventReason.InspectFailed, text, record);
      } else {
        record.state = { kind: "waiting", reason: ContainerReason.ErrImagePull, message };
        ctx.event(
          EventType.Warning,
          EventReason.Failed,
          `Failed to pull image "${image}": ${message}`,
          record,
        );
        ctx.event(
          EventType.Warning,
          EventReason.Failed,
          `Error: ${ContainerReason.ErrImagePull}`,
          record,
        );
        const failedAt = ctx.deps.now().getTime();
        const delay = ctx.deps.imageBackoff.next(key, failedAt);
        if (keepLast) record.lastState = keepLast;
        ctx.publish();
        if (!(await ctx.sleep(Math.min(delay, ctx.deps.timing.errImagePullShowMs)))) return false;
        const left = ctx.deps.imageBackoff.remaining(key, failedAt);
        if (left > 0) {
          record.state = {
            kind: "waiting",
            reason: ContainerReason.ImagePullBackOff,
            message: `Back-off pulling image "${image}": ${ContainerReason.ErrImagePull}: ${message}`,
          };
          ctx.event(
            EventType.Normal,
            EventReason.BackOff,
            `Back-off pulling image "${image}"`,
            record,
          );
          ctx.event(
            EventType.Warning,
            EventReason.Failed,
            `Error: ${ContainerReason.ImagePullBackOff}`,
            record,
          );
          ctx.publish();
          if (!(await ctx.sleep(left))) return false;
        }
        continue;
      }
      if (keepLast) record.lastState = keepLast;
      ctx.publish();
      if (!(await ctx.sleep(ctx.deps.timing.retryMs))) return false;
    }
  }
}

export const pulling: PodState<"Pulling", (typeof NEXT)[number]> = {
  name: "Pulling",
  next: NEXT,
  async run(ctx: StateContext) {
    const secrets = await pullSecrets(ctx);
    for (const record of ctx.record.containers.values()) {
      if (ctx.images.has(record.name)) continue;
      // Finished init containers need no image unless they run again (they do not).
      if (record.init && record.state.kind === "terminated" && record.state.exitCode === 0)
        continue;
      const spec = ctx.containerSpec(record.name);
      if (!spec) continue;
      if (!(await ensureImage(ctx, record, spec, secrets))) return "Terminating";
    }
    return "Preparing";
  },
};
