import assert from "node:assert/strict";
import { test } from "node:test";
import { renderResourceMetrics } from "../../../src/metrics/resource-metrics.ts";
import { buildStatsSummary } from "../../../src/metrics/stats-summary.ts";
import { type NodeUsage, nanoCoresBetween, type PodUsage } from "../../../src/metrics/usage.ts";

const t0 = new Date("2026-11-26T10:00:00.000Z");
const t1 = new Date("2026-11-26T10:00:10.000Z");
const node: NodeUsage = {
  nodeName: "wasm-1",
  startTime: t0,
  cpu: { time: t1, usageCoreSeconds: 12.5 },
  memory: { time: t1, workingSetBytes: 1_000_000 },
};
const pods: PodUsage[] = [
  {
    namespace: "demo",
    name: 'we"ird\\pod',
    uid: "u1",
    startTime: t0,
    containers: [
      {
        name: "a",
        startTime: t0,
        cpu: { time: t1, usageCoreSeconds: 0.5, usageNanoCores: 1000 },
        memory: { time: t1, workingSetBytes: 100 },
      },
      {
        name: "b",
        startTime: t0,
        cpu: { time: t1, usageCoreSeconds: 0.25, usageNanoCores: 500 },
        memory: { time: t1, workingSetBytes: 50 },
      },
    ],
  },
];

test("every container and node sample carries a millisecond timestamp, as metrics-server needs", () => {
  const text = renderResourceMetrics(node, pods);
  const ms = String(t1.getTime());
  for (const line of text
    .split("\n")
    .filter((l) => l && !l.startsWith("#") && !l.startsWith("resource_scrape_error"))) {
    assert.ok(line.endsWith(` ${ms}`), line);
  }
  assert.match(text, new RegExp(`^node_cpu_usage_seconds_total 12.5 ${ms}$`, "m"));
  assert.match(
    text,
    /^container_cpu_usage_seconds_total\{container="a",namespace="demo",pod="we\\"ird\\\\pod"\} 0.5 /m,
  );
  assert.match(text, /^container_start_time_seconds\{container="b",[^}]*\} 1795687200 /m);
  assert.match(
    text,
    /^pod_memory_working_set_bytes\{namespace="demo",pod="we\\"ird\\\\pod"\} 150 /m,
  );
  assert.match(text, /^resource_scrape_error 0$/m);
  assert.match(text, /^# TYPE container_cpu_usage_seconds_total counter$/m);
});

test("a node without pods still reports node metrics and no empty families", () => {
  const text = renderResourceMetrics(node, []);
  assert.doesNotMatch(text, /container_cpu_usage_seconds_total/);
  assert.match(text, /^node_memory_working_set_bytes 1000000 /m);
});

test("the stats summary sums containers into the pod", () => {
  const summary = buildStatsSummary(node, pods);
  assert.equal(summary.node.cpu.usageCoreNanoSeconds, 12_500_000_000);
  const pod = summary.pods[0]!;
  assert.deepEqual(pod.podRef, { name: 'we"ird\\pod', namespace: "demo", uid: "u1" });
  assert.equal(pod.cpu?.usageCoreNanoSeconds, 750_000_000);
  assert.equal(pod.cpu?.usageNanoCores, 1500);
  assert.equal(pod.memory?.workingSetBytes, 150);
  assert.equal(pod.containers[1]?.memory.workingSetBytes, 50);
});

test("CPU rate is the cumulative difference over the window", () => {
  assert.equal(
    nanoCoresBetween({ time: t0, usageCoreSeconds: 1 }, { time: t1, usageCoreSeconds: 6 }),
    500_000_000,
  );
  assert.equal(
    nanoCoresBetween({ time: t1, usageCoreSeconds: 1 }, { time: t1, usageCoreSeconds: 6 }),
    undefined,
  );
});

test("wasmlet's own metrics render in Prometheus text with process metrics", async () => {
  const { WasmletMetrics } = await import("../../../src/metrics/wasmlet-metrics.ts");
  const metrics = new WasmletMetrics();
  metrics.podsByPhase.set({ phase: "Running" }, 3);
  metrics.imagePulls.inc({ result: "pulled" });
  metrics.podStartSeconds.observe(0.012);
  const text = await metrics.render();
  assert.match(text, /^wasmlet_pods\{phase="Running"\} 3$/m);
  assert.match(text, /^wasmlet_image_pulls_total\{result="pulled"\} 1$/m);
  assert.match(text, /^wasmlet_pod_start_duration_seconds_bucket\{le="0.025"\} 1$/m);
  assert.match(text, /^process_cpu_user_seconds_total /m);
  assert.match(metrics.contentType, /text\/plain/);
});
