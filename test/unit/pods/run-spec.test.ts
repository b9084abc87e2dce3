import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { buildRunSpec, type RunSpecInputs } from "../../../src/pods/containers/run-spec.ts";
import type { ContainerNetwork } from "../../../src/runtime/types.ts";

// The smallest valid module: magic and version.
const module = new WebAssembly.Module(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
const network = { listen: [], maxConnections: 8 } as unknown as ContainerNetwork;
const ref = { namespace: "ns", name: "web-1", uid: "u-1" };

function inputs(spec: V1Container, pod?: V1Pod, extra: Partial<RunSpecInputs> = {}): RunSpecInputs {
  return {
    id: "abc",
    pod: pod ?? {
      metadata: { name: "web-1", namespace: "ns", uid: "u-1" },
      spec: { containers: [spec] },
    },
    ref,
    spec,
    image: {
      module,
      config: { entrypoint: ["/app.wasm"], cmd: ["serve"], env: ["A=image", "B=image"] },
    },
    env: new Map([["B", "pod"]]),
    mounts: [{ hostPath: "/h", guestPath: "/data", readOnly: true, kind: "directory" }],
    logPath: "/logs/app/0.log",
    network,
    ...extra,
  };
}

test("a run spec takes the image's command, the merged env, mounts, log path and labels", () => {
  const spec: V1Container = { name: "app", image: "x", args: ["--port=$(B)"], stdin: true };
  const run = buildRunSpec(inputs(spec));
  assert.deepEqual(run, {
    id: "abc",
    module,
    args: ["/app.wasm", "--port=pod"],
    env: { HOSTNAME: "web-1", A: "image", B: "pod" },
    mounts: [{ hostPath: "/h", guestPath: "/data", readOnly: true, kind: "directory" }],
    workingDir: "/",
    stdin: true,
    logPath: "/logs/app/0.log",
    labels: { namespace: "ns", pod: "web-1", uid: "u-1", container: "app" },
    network,
  });
});

test("limits become a memory cap and CPU quota; an entrypoint export is passed on", () => {
  const spec: V1Container = {
    name: "app",
    command: ["/bin.wasm"],
    workingDir: "/w",
    resources: { limits: { memory: "64Mi", cpu: "500m" }, requests: { cpu: "250m" } },
  };
  const run = buildRunSpec(
    inputs(spec, undefined, {
      image: { module, config: {}, entrypointExport: "main" },
      env: new Map(),
    }),
  );
  assert.deepEqual(run.args, ["/bin.wasm"]);
  assert.equal(run.workingDir, "/w");
  assert.equal(run.stdin, false);
  assert.equal(run.entrypointExport, "main");
  assert.equal(run.memoryLimitBytes, 64 * 1024 * 1024);
  assert.equal(run.cpuLimitMillis, 500);
  assert.equal(run.exclusiveCpu, undefined);
});

test("whole CPUs of a Guaranteed pod get an exclusive CPU; fractional or Burstable ones do not", () => {
  const guaranteed = (cpu: string): V1Container => ({
    name: "app",
    resources: { limits: { cpu, memory: "1Gi" }, requests: { cpu, memory: "1Gi" } },
  });
  const whole = guaranteed("2");
  assert.equal(buildRunSpec(inputs(whole)).exclusiveCpu, true);
  const fractional = guaranteed("1500m");
  assert.equal(buildRunSpec(inputs(fractional)).exclusiveCpu, undefined);
  const burstable: V1Container = { name: "app", resources: { requests: { cpu: "1" } } };
  assert.equal(buildRunSpec(inputs(burstable)).exclusiveCpu, undefined);
});

test("without a command the container's name is argv[0] and the hostname follows spec.hostname", () => {
  const spec: V1Container = { name: "solo" };
  const pod: V1Pod = {
    metadata: { name: "web-1" },
    spec: { hostname: "host-a", containers: [spec] },
  };
  const run = buildRunSpec(inputs(spec, pod, { image: { module, config: {} }, env: new Map() }));
  assert.deepEqual(run.args, ["solo"]);
  assert.equal(run.env.HOSTNAME, "host-a");
  assert.equal(run.memoryLimitBytes, undefined);
  assert.equal(run.cpuLimitMillis, undefined);
  assert.equal(run.entrypointExport, undefined);
});
