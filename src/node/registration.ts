// Creating or adopting the Node object. A new Node is created with its labels and taints at once
// (so it is never schedulable untainted). An existing one is adopted with targeted patches that
// only add what wasmlet needs: missing labels by merge patch, missing taints by a read-modify-write
// guarded by resourceVersion. Nothing anyone else set is removed; like the kubelet, wasmlet does
// not remove a label or taint that is later dropped from its configuration.
import type { V1Node, V1RuntimeClass, V1Taint } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Config } from "../config/config.ts";
import { checkLabelValue } from "../config/values.ts";
import { describeError } from "../errors.ts";
import { apiError, isAlreadyExists, isConflict, isNotFound } from "../kube/api-error.ts";
import type { KubeClient } from "../kube/client.ts";
import { FIELD_MANAGER, patchNode } from "../kube/patch.ts";
import {
  ARCHITECTURE,
  LABEL_ARCH,
  LABEL_HOSTNAME,
  LABEL_OS,
  LABEL_WASMLET,
  OPERATING_SYSTEM,
  RUNTIME_CLASS_HANDLER,
  RUNTIME_CLASS_NAME,
  TAINT_WASM,
} from "./constants.ts";
import { nodeError } from "./errors.ts";

function validLabelValue(value: string): boolean {
  try {
    checkLabelValue("", value);
    return true;
  } catch {
    return false;
  }
}

/**
 * wasmlet's labels, then the user's (which may override all but the os/arch/wasmlet ones). The
 * hostname label is the node's name, as with a kubelet whose node name is its hostname: several
 * wasmlet nodes can share one host, and pods pin to a node through this label.
 */
export function desiredLabels(
  config: Pick<Config, "nodeName" | "nodeLabels">,
): Record<string, string> {
  const name = config.nodeName.slice(0, 63);
  return {
    [LABEL_HOSTNAME]: validLabelValue(name) ? name : name.replace(/[^A-Za-z0-9._-]/g, "-"),
    ...config.nodeLabels,
    [LABEL_OS]: OPERATING_SYSTEM,
    [LABEL_ARCH]: ARCHITECTURE,
    [LABEL_WASMLET]: "true",
  };
}

export function desiredTaints(config: Pick<Config, "registerWithTaints">): V1Taint[] {
  const taints: V1Taint[] = [{ ...TAINT_WASM }];
  for (const t of config.registerWithTaints) {
    const taint: V1Taint =
      t.value === undefined
        ? { key: t.key, effect: t.effect }
        : { key: t.key, value: t.value, effect: t.effect };
    const same = taints.findIndex((x) => x.key === t.key && x.effect === t.effect);
    if (same >= 0) taints[same] = taint;
    else taints.push(taint);
  }
  return taints;
}

/** `existing` with every desired taint present (same key and effect, desired value); undefined when nothing changes. */
export function mergeTaints(
  existing: readonly V1Taint[],
  desired: readonly V1Taint[],
): V1Taint[] | undefined {
  const result = existing.map((t) => ({ ...t }));
  let changed = false;
  for (const want of desired) {
    const index = result.findIndex((t) => t.key === want.key && t.effect === want.effect);
    if (index < 0) {
      result.push({ ...want });
      changed = true;
    } else if ((result[index]?.value ?? "") !== (want.value ?? "")) {
      result[index] = { ...result[index], ...want } as V1Taint;
      changed = true;
    }
  }
  return changed ? result : undefined;
}

export interface RegisterOptions {
  kube: KubeClient;
  config: Pick<Config, "nodeName" | "nodeLabels" | "registerWithTaints">;
  hostname: string;
  logger: Logger;
}

async function readNode(kube: KubeClient, name: string): Promise<V1Node | undefined> {
  try {
    return await kube.core.readNode({ name });
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw apiError(error, `reading node ${name}`);
  }
}

/** Creates the Node, or adopts the existing one; returns it as the API server has it now. */
export async function registerNode(
  options: RegisterOptions,
): Promise<{ node: V1Node; created: boolean }> {
  const { kube, config, logger } = options;
  const name = config.nodeName;
  const labels = desiredLabels(config);
  const taints = desiredTaints(config);

  for (let attempt = 0; attempt < 10; attempt++) {
    const existing = await readNode(kube, name);
    if (!existing) {
      try {
        const node = await kube.core.createNode({
          body: { apiVersion: "v1", kind: "Node", metadata: { name, labels }, spec: { taints } },
          fieldManager: FIELD_MANAGER,
        });
        logger.info({ uid: node.metadata?.uid }, "registered the node");
        return { node, created: true };
      } catch (error) {
        if (isAlreadyExists(error)) continue;
        throw apiError(error, `creating node ${name}`);
      }
    }

    let node = existing;
    const missingLabels = Object.fromEntries(
      Object.entries(labels).filter(([k, v]) => node.metadata?.labels?.[k] !== v),
    );
    if (Object.keys(missingLabels).length > 0) {
      node = await patchNode(kube, name, "merge", { metadata: { labels: missingLabels } });
    }
    const mergedTaints = mergeTaints(node.spec?.taints ?? [], taints);
    if (mergedTaints) {
      try {
        node = await patchNode(kube, name, "merge", {
          metadata: { resourceVersion: node.metadata?.resourceVersion },
          spec: { taints: mergedTaints },
        });
      } catch (error) {
        if (isConflict(error)) continue;
        throw error;
      }
    }
    logger.info({ uid: node.metadata?.uid }, "adopted the existing node");
    return { node, created: false };
  }
  throw nodeError(
    "WASMLET_ERR_NODE_REGISTRATION",
    `registering node ${name}: the Node kept changing under wasmlet`,
  );
}

/** The RuntimeClass that sends pods to wasmlet nodes (also in manifests/runtimeclass.yaml). */
export function runtimeClass(): V1RuntimeClass {
  return {
    apiVersion: "node.k8s.io/v1",
    kind: "RuntimeClass",
    metadata: { name: RUNTIME_CLASS_NAME, labels: { "app.kubernetes.io/part-of": "wasmlet" } },
    handler: RUNTIME_CLASS_HANDLER,
    scheduling: {
      nodeSelector: { [LABEL_WASMLET]: "true" },
      tolerations: [
        {
          key: TAINT_WASM.key,
          operator: "Equal",
          value: TAINT_WASM.value,
          effect: TAINT_WASM.effect,
        },
      ],
    },
  };
}

/** Creates the RuntimeClass `wasm` when absent; never changes an existing one. Failures are logged, not fatal. */
export async function ensureRuntimeClass(kube: KubeClient, logger: Logger): Promise<void> {
  try {
    await kube.nodeApi.readRuntimeClass({ name: RUNTIME_CLASS_NAME });
    return;
  } catch (error) {
    if (!isNotFound(error)) {
      logger.warn(
        { err: describeError(apiError(error, "reading RuntimeClass wasm")) },
        "cannot check the RuntimeClass",
      );
      return;
    }
  }
  try {
    await kube.nodeApi.createRuntimeClass({ body: runtimeClass(), fieldManager: FIELD_MANAGER });
    logger.info({ runtimeClass: RUNTIME_CLASS_NAME }, "created the RuntimeClass");
  } catch (error) {
    if (isAlreadyExists(error)) return;
    logger.warn(
      { err: describeError(apiError(error, "creating RuntimeClass wasm")) },
      "cannot create the RuntimeClass; apply manifests/runtimeclass.yaml",
    );
  }
}
