// What an ephemeral container (`kubectl debug --target=<container>`) runs as. A CRI runtime puts
// it in the target's process namespace, so it sees the target's processes, their environment and
// their files; a wasm instance has no process to share, so wasmlet gives it the target's
// environment (env and envFrom) and volume mounts instead, unless it declares its own. Pure.
import type { V1Container, V1EphemeralContainer } from "@kubernetes/client-node";

/** The container spec an ephemeral container runs with; `specOf` finds the target's. */
export function ephemeralRunSpec(
  ephemeral: V1EphemeralContainer,
  specOf: (name: string) => V1Container | undefined,
): V1Container {
  const { targetContainerName, ...own } = ephemeral;
  const spec: V1Container = { ...own };
  const target = targetContainerName ? specOf(targetContainerName) : undefined;
  if (!target) return spec;
  const ownEnv = (own.env ?? []).length > 0 || (own.envFrom ?? []).length > 0;
  if (!ownEnv) {
    if (target.env) spec.env = target.env;
    if (target.envFrom) spec.envFrom = target.envFrom;
  }
  if ((own.volumeMounts ?? []).length === 0 && target.volumeMounts)
    spec.volumeMounts = target.volumeMounts;
  return spec;
}
