import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import {
  formatMap,
  goQuote,
  podFieldValue,
  resourceFieldValue,
  splitSubscriptedPath,
} from "../../../src/volumes/field-ref.ts";

const pod: V1Pod = {
  metadata: {
    name: "web",
    namespace: "shop",
    uid: "u-1",
    labels: { app: "web", tier: "front" },
    annotations: { "example.com/note": 'say "hi"\n' },
  },
  spec: { nodeName: "wasm-node", serviceAccountName: "runner", containers: [] },
};
const context = { podIPs: ["10.0.0.5", "fd00::5"], hostIPs: ["10.0.0.5", "fd00::5"] };

test("fieldRef values follow podFieldSelectorRuntimeValue", () => {
  const cases: [string, string][] = [
    ["metadata.name", "web"],
    ["metadata.namespace", "shop"],
    ["metadata.uid", "u-1"],
    ["metadata.labels['tier']", "front"],
    ["metadata.labels['missing']", ""],
    ["metadata.annotations['example.com/note']", 'say "hi"\n'],
    ["metadata.labels", 'app="web"\ntier="front"'],
    ["metadata.annotations", 'example.com/note="say \\"hi\\"\\n"'],
    ["spec.nodeName", "wasm-node"],
    ["spec.serviceAccountName", "runner"],
    ["status.hostIP", "10.0.0.5"],
    ["status.hostIPs", "10.0.0.5,fd00::5"],
    ["status.podIP", "10.0.0.5"],
    ["status.podIPs", "10.0.0.5,fd00::5"],
  ];
  for (const [fieldPath, expected] of cases) {
    assert.equal(podFieldValue(pod, { fieldPath }, context), expected, fieldPath);
  }
  assert.throws(
    () => podFieldValue(pod, { fieldPath: "spec.hostname" }, context),
    /unsupported fieldPath: spec.hostname/,
  );
  assert.throws(
    () => podFieldValue(pod, { fieldPath: "metadata.name['x']" }, context),
    /does not support subscript/,
  );
});

test("subscripts and Go quoting", () => {
  assert.deepEqual(splitSubscriptedPath("metadata.labels['a.b/c']"), {
    path: "metadata.labels",
    subscript: "a.b/c",
  });
  assert.deepEqual(splitSubscriptedPath("metadata.name"), { path: "metadata.name" });
  assert.equal(goQuote("tab\there\u0001é"), '"tab\\there\\x01é"');
  assert.equal(formatMap({ b: "2", a: "1" }), 'a="1"\nb="2"');
  assert.equal(formatMap(undefined), "");
});

test("resourceFieldRef: ceil(value / divisor), limits default to node allocatable", () => {
  const container: V1Container = {
    name: "app",
    resources: { requests: { cpu: "250m", memory: "64Mi" }, limits: { cpu: "1500m" } },
  };
  const allocatable = { cpu: "4", memory: "8Gi", "ephemeral-storage": "100Gi" };
  const value = (resource: string, divisor?: string) =>
    resourceFieldValue({ resource, ...(divisor ? { divisor } : {}) }, container, allocatable);
  assert.equal(value("limits.cpu"), "2"); // 1.5 cores rounded up
  assert.equal(value("limits.cpu", "1m"), "1500");
  assert.equal(value("requests.cpu", "1m"), "250");
  assert.equal(value("requests.cpu"), "1");
  assert.equal(value("requests.memory"), "67108864");
  assert.equal(value("requests.memory", "1Mi"), "64");
  assert.equal(value("limits.memory", "1Gi"), "8"); // node allocatable
  assert.equal(value("limits.ephemeral-storage", "1Gi"), "100");
  assert.equal(value("requests.ephemeral-storage"), "0");
  assert.throws(() => value("limits.gpu"), /unsupported container resource : limits.gpu/);
});
