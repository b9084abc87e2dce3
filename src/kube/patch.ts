// Typed patch helpers. Every write wasmlet makes carries the field manager `wasmlet`, so
// `kubectl get -o yaml --show-managed-fields` says who owns what, and server-side apply can drop
// fields wasmlet stopped setting without touching anyone else's.
import {
  type ConfigurationOptions,
  type ObservableMiddleware,
  PatchStrategy,
  setHeaderOptions,
  type V1Node,
  type V1Pod,
} from "@kubernetes/client-node";
import { apiError } from "./api-error.ts";
import type { KubeClient } from "./client.ts";

export const FIELD_MANAGER = "wasmlet";

export type PatchKind = "merge" | "strategic" | "apply" | "json";

const CONTENT_TYPES: Record<PatchKind, string> = {
  merge: PatchStrategy.MergePatch,
  strategic: PatchStrategy.StrategicMergePatch,
  apply: PatchStrategy.ServerSideApply,
  json: PatchStrategy.JsonPatch,
};

/** Request options that send a patch body of this kind. */
export function patchOptions(kind: PatchKind): ConfigurationOptions<ObservableMiddleware> {
  return setHeaderOptions("Content-Type", CONTENT_TYPES[kind]);
}

/** The query parameters that go with a patch of this kind: field manager, and force for apply. */
export function patchParams(kind: PatchKind): { fieldManager: string; force?: boolean } {
  return kind === "apply"
    ? { fieldManager: FIELD_MANAGER, force: true }
    : { fieldManager: FIELD_MANAGER };
}

/** JSON Patch operations (RFC 6902). */
export type JsonPatchOperation =
  | { op: "add" | "replace" | "test"; path: string; value: unknown }
  | { op: "remove"; path: string };

type PatchBody<K extends PatchKind> = K extends "json" ? JsonPatchOperation[] : object;

export async function patchNode<K extends PatchKind>(
  kube: KubeClient,
  name: string,
  kind: K,
  body: PatchBody<K>,
): Promise<V1Node> {
  try {
    return await kube.core.patchNode({ name, body, ...patchParams(kind) }, patchOptions(kind));
  } catch (error) {
    throw apiError(error, `patching node ${name} (${kind})`);
  }
}

export async function patchNodeStatus<K extends PatchKind>(
  kube: KubeClient,
  name: string,
  kind: K,
  body: PatchBody<K>,
): Promise<V1Node> {
  try {
    return await kube.core.patchNodeStatus(
      { name, body, ...patchParams(kind) },
      patchOptions(kind),
    );
  } catch (error) {
    throw apiError(error, `patching the status of node ${name} (${kind})`);
  }
}

export async function patchPodStatus<K extends PatchKind>(
  kube: KubeClient,
  namespace: string,
  name: string,
  kind: K,
  body: PatchBody<K>,
): Promise<V1Pod> {
  try {
    return await kube.core.patchNamespacedPodStatus(
      { namespace, name, body, ...patchParams(kind) },
      patchOptions(kind),
    );
  } catch (error) {
    throw apiError(error, `patching the status of pod ${namespace}/${name} (${kind})`);
  }
}
