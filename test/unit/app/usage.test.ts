import assert from "node:assert/strict";
import { it } from "node:test";
import type { RunningContainer } from "../../../src/app/runtime-port.ts";
import { UsageMeter } from "../../../src/app/usage.ts";
import type { Container } from "../../../src/runtime/types.ts";

function running(
  id: string,
  labels: Record<string, string>,
  started: Promise<Date>,
  memoryBytes = 1024,
): RunningContainer {
  const container = {
    id,
    started,
    cpuUsage: async () => ({ user: 2_000_000, system: 500_000 }),
    memoryBytes: () => memoryBytes,
  } as unknown as Container;
  return { labels, container };
}

it("measures the node and the started containers, grouped by pod", async () => {
  const early = new Date(1_000);
  const late = new Date(2_000);
  const pod = { namespace: "ns", pod: "web", uid: "u1" };
  const meter = new UsageMeter({
    nodeName: "n1",
    running: () => [
      running("c1", { ...pod, container: "app" }, Promise.resolve(late), 4096),
      running("c2", { ...pod, container: "sidecar" }, Promise.resolve(early)),
      running("c3", { ...pod, container: "starting" }, new Promise(() => {})),
      running("c4", { container: "no pod" }, Promise.resolve(early)),
    ],
  });
  const { node, pods } = await meter.measure();
  assert.equal(node.nodeName, "n1");
  assert.ok(node.memory.workingSetBytes > 0);
  assert.equal(pods.length, 1);
  const [web] = pods;
  assert.equal(web?.uid, "u1");
  assert.equal(web?.name, "web");
  assert.deepEqual(web?.startTime, early, "the pod started with its first container");
  assert.deepEqual(
    web?.containers.map((c) => [c.name, c.cpu.usageCoreSeconds, c.memory.workingSetBytes]),
    [
      ["app", 2.5, 4096],
      ["sidecar", 2.5, 1024],
    ],
  );
});
