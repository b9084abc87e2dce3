// Which log file `kubectl logs` means, decided as the kubelet decides it from the container's
// status: the running instance; else the last terminated one (also while a crash-looping
// container waits to restart); `--previous` is the instance before the current one. Instances are
// the numbered files of src/pods/log-layout.ts.
import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import { containerLogPath, loggedInstances, podLogDir } from "../pods/log-layout.ts";
import type { ContainerLogTarget } from "../server/container-logs.ts";

export interface LogTargetDeps {
  podLogsDir: string;
  /** The pod as last seen from the API (the watch cache). */
  pod(namespace: string, name: string): V1Pod | undefined;
  /** The live instance of a container: its log and a promise that settles when it exits. */
  live(
    namespace: string,
    name: string,
    container: string,
  ): { logPath: string; exited: PromiseLike<unknown> } | undefined;
}

function statusOf(pod: V1Pod, container: string): V1ContainerStatus | undefined {
  return [
    ...(pod.status?.containerStatuses ?? []),
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.ephemeralContainerStatuses ?? []),
  ].find((s) => s.name === container);
}

export async function resolveLogTarget(
  deps: LogTargetDeps,
  namespace: string,
  name: string,
  container: string,
  previous: boolean,
): Promise<ContainerLogTarget> {
  const pod = deps.pod(namespace, name);
  if (!pod?.metadata?.uid) return { kind: "pod-not-found" };
  const spec = [
    ...(pod.spec?.containers ?? []),
    ...(pod.spec?.initContainers ?? []),
    ...(pod.spec?.ephemeralContainers ?? []),
  ];
  if (!spec.some((c) => c.name === container)) return { kind: "container-not-found" };
  const dir = podLogDir(deps.podLogsDir, namespace, name, pod.metadata.uid);
  const instances = await loggedInstances(dir, container);
  const live = deps.live(namespace, name, container);
  const status = statusOf(pod, container);

  if (previous) {
    // While a container runs (or has just been started again) the previous instance is the file
    // before the newest; while it waits to restart, the newest file is its last terminated run.
    const waiting = !live && status?.state?.waiting !== undefined;
    const index = waiting ? instances.at(-1) : instances.at(-2);
    if (index === undefined || (waiting && !status?.lastState?.terminated))
      return { kind: "no-previous" };
    return { kind: "log", logPath: containerLogPath(dir, container, index), running: false };
  }
  if (live) return { kind: "log", logPath: live.logPath, running: true, exited: live.exited };
  const last = instances.at(-1);
  if (last === undefined) {
    return { kind: "waiting", reason: status?.state?.waiting?.reason ?? "ContainerCreating" };
  }
  return { kind: "log", logPath: containerLogPath(dir, container, last), running: false };
}
