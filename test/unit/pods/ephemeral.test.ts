// Ephemeral containers (`kubectl debug`): the spec they run with (the target's env and mounts),
// their status, and their life in a running pod (started once, never restarted, stopped with the
// pod, the pod's other containers untouched).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { ephemeralRunSpec } from "../../../src/pods/containers/ephemeral.ts";
import { ephemeralRecord, recordFromPod } from "../../../src/pods/pod-record.ts";
import { buildStatus } from "../../../src/pods/status.ts";
import { controllerBench, type FakeKube, makePod, until } from "./fakes.ts";

const bench = await controllerBench("wasmlet-ephemeral-");
const harness = () => bench.harness({ timing: { firstStatusHoldMs: 0 } });

const ephemeralStatus = (kube: FakeKube, pod: V1Pod, name: string) =>
  (kube.status(pod.metadata!.uid!).ephemeralContainerStatuses ?? []).find(
    (s: { name: string }) => s.name === name,
  );

const target: V1Container = {
  name: "app",
  image: "hello:1",
  env: [{ name: "GREETING", value: "hi" }],
  envFrom: [{ configMapRef: { name: "settings" } }],
  volumeMounts: [{ name: "data", mountPath: "/data" }],
};

test("an ephemeral container takes its target's env and mounts unless it declares its own", () => {
  const specOf = (name: string) => (name === "app" ? target : undefined);
  const plain = ephemeralRunSpec(
    { name: "debugger", image: "toolbox:1", targetContainerName: "app", stdin: true, tty: true },
    specOf,
  );
  assert.deepEqual(plain, {
    name: "debugger",
    image: "toolbox:1",
    stdin: true,
    tty: true,
    env: target.env,
    envFrom: target.envFrom,
    volumeMounts: target.volumeMounts,
  });
  const own = ephemeralRunSpec(
    {
      name: "debugger",
      image: "toolbox:1",
      targetContainerName: "app",
      env: [{ name: "OWN", value: "1" }],
      volumeMounts: [{ name: "other", mountPath: "/other" }],
    },
    specOf,
  );
  assert.deepEqual(own.env, [{ name: "OWN", value: "1" }]);
  assert.equal(own.envFrom, undefined);
  assert.deepEqual(own.volumeMounts, [{ name: "other", mountPath: "/other" }]);
  const untargeted = ephemeralRunSpec({ name: "debugger", image: "toolbox:1" }, specOf);
  assert.deepEqual(untargeted, { name: "debugger", image: "toolbox:1" });
});

test("ephemeralContainerStatuses: waiting, then the instance's state; never ready, no restarts", () => {
  const pod = makePod({
    spec: { ephemeralContainers: [{ name: "debugger", image: "toolbox:1" }] },
  });
  const record = recordFromPod(pod, new Date("2030-01-01T00:00:00Z"));
  const context = { nodeIPs: ["10.9.0.1"], now: new Date("2030-01-01T00:00:01Z") };
  assert.deepEqual(buildStatus(pod, record, context).ephemeralContainerStatuses, [
    {
      name: "debugger",
      state: { waiting: { reason: "ContainerCreating" } },
      lastState: {},
      ready: false,
      restartCount: 0,
      image: "toolbox:1",
      imageID: "",
      started: false,
    },
  ]);
  // Rebuilt after a wasmlet restart: one that ran is not started again.
  const ran = ephemeralRecord(
    "debugger",
    "toolbox:1",
    {
      name: "debugger",
      image: "toolbox:1",
      imageID: "toolbox@sha256:ab",
      containerID: "wasmlet://abc",
      ready: false,
      restartCount: 0,
      state: { running: { startedAt: new Date("2030-01-01T00:00:00Z") } },
    },
    new Date("2030-01-01T00:00:05Z"),
  );
  assert.equal(ran.state.kind, "terminated");
  assert.equal(ran.instanceId, "abc");
});

test("kubectl debug: the ephemeral container runs once with the target's env, is reported, and stops with the pod", async () => {
  const { kube, runtime, controller } = harness();
  kube.setConfigMap("default", "settings", { FROM_MAP: "m" });
  const pod = makePod({
    spec: {
      runtimeClassName: "wasm",
      containers: [target],
      volumes: [{ name: "data", emptyDir: {} }],
    },
  });
  controller.onPodUpsert(pod);
  await until(() => runtime.of("app")[0]?.running, "the app running");
  // The debugger exits at once: restartPolicy Always does not bring it back.
  runtime.behaviours.set("debugger", { exitAfterMs: 20, exitCode: 3 });
  const debugged: V1Pod = {
    ...pod,
    spec: {
      ...pod.spec!,
      ephemeralContainers: [
        { name: "debugger", image: "toolbox:1", targetContainerName: "app", stdin: true },
      ],
    },
  };
  controller.onPodUpsert(debugged);
  await until(
    () => ephemeralStatus(kube, pod, "debugger")?.state?.terminated,
    "the debugger's exit reported",
  );
  await new Promise((resolve) => setTimeout(resolve, 150));
  const [instance, ...more] = runtime.of("debugger");
  assert.equal(more.length, 0, "started once, never restarted");
  assert.equal(instance?.spec.env.GREETING, "hi");
  assert.equal(instance?.spec.env.FROM_MAP, "m");
  assert.equal(instance?.spec.stdin, true);
  assert.deepEqual(
    instance?.spec.mounts.map((m) => m.guestPath),
    ["/data"],
  );
  const status = ephemeralStatus(kube, pod, "debugger");
  assert.equal(status.state.terminated.exitCode, 3);
  assert.equal(status.ready, false);
  assert.equal(status.restartCount, 0);
  assert.equal(status.containerID, `wasmlet://${instance?.id}`);
  assert.match(status.imageID, /sha256/);
  const reasons = kube.events
    .filter((e) => e.fieldPath === "spec.ephemeralContainers{debugger}")
    .map((e) => e.reason);
  assert.deepEqual(reasons, ["Pulling", "Pulled", "Created", "Started"]);
  // The app was not touched.
  assert.equal(runtime.of("app").length, 1);
  assert.ok(runtime.of("app")[0]?.running);
});

test("a running ephemeral container is attachable (found by name) and stopped with the pod", async () => {
  const { kube, runtime, controller } = harness();
  const pod = makePod({ spec: { runtimeClassName: "wasm" } });
  controller.onPodUpsert(pod);
  await until(() => runtime.of("app")[0]?.running, "the app running");
  controller.onPodUpsert({
    ...pod,
    spec: { ...pod.spec!, ephemeralContainers: [{ name: "debugger", image: "toolbox:1" }] },
  });
  await until(() => ephemeralStatus(kube, pod, "debugger")?.state?.running, "the debugger running");
  const found = controller.instance("default", pod.metadata!.name!, "debugger");
  assert.equal(found?.id, runtime.of("debugger")[0]?.id);
  controller.onPodUpsert({
    ...pod,
    metadata: { ...pod.metadata, deletionTimestamp: new Date(), deletionGracePeriodSeconds: 1 },
    spec: { ...pod.spec!, ephemeralContainers: [{ name: "debugger", image: "toolbox:1" }] },
  });
  await until(() => kube.deletes.length > 0, "the pod deleted");
  assert.equal(runtime.of("debugger")[0]?.running, false);
  assert.equal(runtime.of("debugger").length, 1);
});

test("an ephemeral container's image is pulled like any other: ErrImagePull, then it runs", async () => {
  const { kube, images, runtime, controller } = harness();
  images.images.set("toolbox:broken", { failures: 1 });
  const pod = makePod({ spec: { runtimeClassName: "wasm" } });
  controller.onPodUpsert(pod);
  await until(() => runtime.of("app")[0]?.running, "the app running");
  controller.onPodUpsert({
    ...pod,
    spec: { ...pod.spec!, ephemeralContainers: [{ name: "debugger", image: "toolbox:broken" }] },
  });
  await until(
    () => ephemeralStatus(kube, pod, "debugger")?.state?.running,
    "the debugger running after its pull failed",
  );
  const patched = kube.patches.map((p) => JSON.stringify(p.patch.status ?? p.patch));
  assert.ok(
    patched.some((p) =>
      /"ephemeralContainerStatuses".*"reason":"(ErrImagePull|ImagePullBackOff)"/.test(p),
    ),
    "the pull failure was reported in ephemeralContainerStatuses",
  );
  const failed = kube.events.filter((e) => e.fieldPath === "spec.ephemeralContainers{debugger}");
  assert.ok(failed.some((e) => e.message === "Error: ErrImagePull"));
  assert.equal(runtime.of("app").length, 1);
});
