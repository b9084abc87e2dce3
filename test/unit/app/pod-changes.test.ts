import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type {
  V1ManagedFieldsEntry,
  V1ObjectMeta,
  V1Pod,
  V1PodCondition,
  V1PodSpec,
  V1PodStatus,
} from "@kubernetes/client-node";
import { ignoringStatusEchoes, podChangeMatters } from "../../../src/app/pod-changes.ts";
import { decode } from "../../../src/kube/serializer.ts";

/** A pod as the API sends it, with the parts the tests change always there. */
interface Raw {
  apiVersion: string;
  kind: string;
  metadata: V1ObjectMeta & {
    labels: Record<string, string>;
    annotations: Record<string, string>;
    managedFields: V1ManagedFieldsEntry[];
  };
  spec: V1PodSpec;
  status: V1PodStatus & { conditions: V1PodCondition[] };
}

/** A timestamp as the API's JSON has it (the models type them as Date once decoded). */
const time = (text: string) => text as unknown as Date;

/** A pod as the watch hands it out (decoded from the API's JSON), after `change`. */
function pod(change: (raw: Raw) => void = () => {}): V1Pod {
  const raw: Raw = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "web",
      namespace: "ns",
      uid: "u1",
      resourceVersion: "10",
      generation: 1,
      creationTimestamp: time("2026-01-01T00:00:00Z"),
      labels: { app: "web" },
      annotations: { note: "a" },
      managedFields: [
        { manager: "kubectl", operation: "Apply", time: time("2026-01-01T00:00:00Z") },
      ],
    },
    spec: {
      nodeName: "n1",
      containers: [{ name: "app", image: "registry.local/app:1" }],
      readinessGates: [{ conditionType: "example.com/lb" }],
    },
    status: {
      phase: "Pending",
      conditions: [
        { type: "Ready", status: "False", lastTransitionTime: time("2026-01-01T00:00:00Z") },
      ],
    },
  };
  change(raw);
  return decode<V1Pod>(structuredClone(raw), "V1Pod");
}

/** What the wrapped handler lets through, for each change against the same original. */
function delivered(changes: Record<string, (raw: Raw) => void>): string[] {
  const seen: string[] = [];
  let current = "";
  const handler = ignoringStatusEchoes({ modified: () => seen.push(current) });
  for (const [name, change] of Object.entries(changes)) {
    current = name;
    handler.modified?.(pod(change), pod());
  }
  return seen;
}

describe("status echoes", () => {
  it("a MODIFIED event that changes only status, resourceVersion or managedFields does not reach the handler", () => {
    assert.deepEqual(
      delivered({
        "wasmlet's own status patch": (raw) => {
          raw.metadata.resourceVersion = "11";
          raw.metadata.managedFields.push({ manager: "wasmlet", operation: "Update" });
          raw.status.phase = "Running";
          raw.status.podIP = "10.0.0.5";
          raw.status.startTime = time("2026-01-01T00:00:01Z");
          raw.status.containerStatuses = [
            {
              name: "app",
              ready: false,
              restartCount: 1,
              image: "registry.local/app:1",
              imageID: "",
            },
          ];
        },
        "a resourceVersion alone": (raw) => {
          raw.metadata.resourceVersion = "12";
        },
      }),
      [],
    );
    assert.equal(podChangeMatters(pod(), pod()), false, "a relist of the same pod");
  });

  it("a change to spec, metadata or the status' conditions reaches the handler", () => {
    const changes: Record<string, (raw: Raw) => void> = {
      labels: (raw) => {
        raw.metadata.labels.tier = "front";
      },
      annotations: (raw) => {
        raw.metadata.annotations.note = "b";
      },
      deletionTimestamp: (raw) => {
        raw.metadata.deletionTimestamp = time("2026-01-01T00:01:00Z");
        raw.metadata.deletionGracePeriodSeconds = 30;
      },
      ephemeralContainers: (raw) => {
        raw.spec.ephemeralContainers = [{ name: "debug", image: "busybox" }];
      },
      image: (raw) => {
        raw.spec.containers = [{ name: "app", image: "registry.local/app:2" }];
      },
      activeDeadlineSeconds: (raw) => {
        raw.spec.activeDeadlineSeconds = 60;
      },
      "a readiness gate's condition": (raw) => {
        raw.status.conditions.push({ type: "example.com/lb", status: "True" });
      },
      "a condition's transition time": (raw) => {
        raw.status.conditions = [
          { type: "Ready", status: "False", lastTransitionTime: time("2026-01-01T00:00:05Z") },
        ];
      },
    };
    assert.deepEqual(delivered(changes), Object.keys(changes));
  });

  it("leaves the other handlers as they are", () => {
    const added = () => {};
    const handler = ignoringStatusEchoes({ added });
    assert.equal(handler.added, added);
    assert.equal(handler.modified, undefined);
  });
});
