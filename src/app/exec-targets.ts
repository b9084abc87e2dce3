// Which running container `kubectl exec` and `kubectl attach` mean, decided from the pod as the
// API shows it and the instance the pod controller runs; the answers the kubelet gives when there
// is none (no such pod or container, or not running, with the waiting reason when there is one).
import type { V1Pod } from "@kubernetes/client-node";
import type { Container } from "../runtime/types.ts";
import type { ExecAttachTarget } from "../server/exec-attach.ts";

export interface ExecTargetDeps {
  /** The pod as last seen from the API (the watch cache). */
  pod(namespace: string, name: string): V1Pod | undefined;
  /** The live instance of a container, running or exited. */
  instance(namespace: string, name: string, container: string): Container | undefined;
}

export function resolveExecTarget(
  deps: ExecTargetDeps,
  namespace: string,
  name: string,
  containerName: string,
  podUid: string | undefined,
): ExecAttachTarget {
  const pod = deps.pod(namespace, name);
  if (!pod || (podUid !== undefined && pod.metadata?.uid !== podUid))
    return { kind: "pod-not-found" };
  const spec = [
    ...(pod.spec?.containers ?? []),
    ...(pod.spec?.initContainers ?? []),
    ...(pod.spec?.ephemeralContainers ?? []),
  ].find((c) => c.name === containerName);
  if (!spec) return { kind: "container-not-found" };
  const container = deps.instance(namespace, name, containerName);
  if (!container?.running) {
    const waiting = [
      ...(pod.status?.containerStatuses ?? []),
      ...(pod.status?.initContainerStatuses ?? []),
      ...(pod.status?.ephemeralContainerStatuses ?? []),
    ].find((s) => s.name === containerName)?.state?.waiting?.reason;
    return waiting ? { kind: "not-running", reason: waiting } : { kind: "not-running" };
  }
  return { kind: "container", container, stdinOnce: spec.stdinOnce ?? false };
}
