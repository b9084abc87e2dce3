// Which MODIFIED pod events reach the pod controller (virtual-kubelet's UpdateFunc). wasmlet's own
// status patches come back over the watch as MODIFIED events; one that changes nothing but the
// status, resourceVersion or managedFields has nothing for a pod lifecycle to act on. Everything
// else passes: spec, labels, annotations, deletionTimestamp, ephemeral containers, and the status'
// conditions, which the lifecycle reads back (readiness gates that other controllers set, and the
// lastTransitionTime it keeps while a condition holds).
import { isDeepStrictEqual } from "node:util";
import type { V1Pod } from "@kubernetes/client-node";
import type { WatchHandler } from "../kube/watch.ts";

/** The part of a pod a lifecycle acts on: all of it but the status (conditions aside) and bookkeeping. */
function actedOn(pod: V1Pod): unknown {
  const { resourceVersion: _version, managedFields: _fields, ...metadata } = pod.metadata ?? {};
  return { ...pod, metadata, status: pod.status?.conditions };
}

/** Whether `next` differs from `previous` in anything a pod lifecycle acts on. */
export function podChangeMatters(previous: V1Pod, next: V1Pod): boolean {
  return !isDeepStrictEqual(actedOn(previous), actedOn(next));
}

/** `handler` with MODIFIED events that only echo a status change left out. */
export function ignoringStatusEchoes(handler: WatchHandler<V1Pod>): WatchHandler<V1Pod> {
  const { modified } = handler;
  if (!modified) return handler;
  return {
    ...handler,
    modified: (pod, previous) => {
      if (podChangeMatters(previous, pod)) modified(pod, previous);
    },
  };
}
