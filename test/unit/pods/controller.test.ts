// The pod controller end to end against in-memory ports: every scenario checks what a user would
// see through the API (status patches applied like the API server does, events, DELETE calls) and
// what the runtime was asked to do. Tests about time run the kubelet's own timings on a clock they
// move themselves (mocked timers and the controller's injected clock).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { DEFAULT_TIMING, type Timing } from "../../../src/pods/lifecycle-deps.ts";
import { controllerBench, drained, type FakeKube, makePod, until } from "./fakes.ts";

const { harness } = await controllerBench("wasmlet-controller-");

const uidOf = (pod: V1Pod) => pod.metadata!.uid!;
const statusOf = (kube: FakeKube, pod: V1Pod) => kube.status(uidOf(pod));
const containerStatus = (kube: FakeKube, pod: V1Pod, name: string) =>
  [
    ...(statusOf(kube, pod).containerStatuses ?? []),
    ...(statusOf(kube, pod).initContainerStatuses ?? []),
  ].find((s: { name: string }) => s.name === name);

/**
 * The kubelet's own timings on a clock the test moves: timers are mocked and the controller's
 * clock (also the fake runtime's) advances with them, never with the wall clock.
 */
function mockedTime(t: TestContext, timing: Partial<Timing> = {}) {
  t.mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  let now = Date.parse("2030-01-01T00:00:00Z");
  const setup = harness({
    now: () => new Date(now),
    timing: { ...DEFAULT_TIMING, firstStatusHoldMs: 0, ...timing },
  });
  /** Moves time on by `ms`; timers due fire, and what they set off runs. */
  const advance = async (ms: number) => {
    now += ms;
    t.mock.timers.tick(ms);
    await drained();
  };
  return { ...setup, advance, elapsed: (since: Date) => now - since.getTime() };
}

function deleting(pod: V1Pod, graceSeconds = 30): V1Pod {
  return {
    ...pod,
    metadata: {
      ...pod.metadata,
      deletionTimestamp: new Date(),
      deletionGracePeriodSeconds: graceSeconds,
    },
  };
}

test("a pod runs: Running and Ready, IPs, containerID, argv/env/mounts/limits for the runtime, events in order", async () => {
  const { kube, runtime, controller, states, images } = harness();
  images.images.set("hello:1", {
    config: {
      entrypoint: ["/hello.wasm"],
      cmd: ["--default"],
      env: ["FROM_IMAGE=1"],
      workingDir: "/w",
    },
  });
  const pod = makePod({
    spec: {
      runtimeClassName: "wasm",
      containers: [
        {
          name: "app",
          image: "hello:1",
          args: ["--name", "$(POD_NAME)"],
          env: [{ name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }],
          resources: {
            limits: { memory: "16Mi", cpu: "500m" },
            requests: { memory: "16Mi", cpu: "500m" },
          },
          volumeMounts: [{ name: "scratch", mountPath: "/scratch" }],
        },
      ],
      volumes: [{ name: "scratch", emptyDir: {} }],
    },
  });
  controller.onPodUpsert(pod);
  await until(
    () =>
      statusOf(kube, pod).conditions?.find(
        (c: { type: string; status: string }) => c.type === "Ready" && c.status === "True",
      ),
    "Ready",
  );
  const status = statusOf(kube, pod);
  assert.equal(status.phase, "Running");
  assert.equal(status.podIP, "10.9.0.1");
  assert.equal(status.hostIP, "10.9.0.1");
  assert.equal(status.qosClass, "Guaranteed");
  const app = containerStatus(kube, pod, "app");
  assert.ok(app.state.running.startedAt);
  assert.match(app.containerID, /^wasmlet:\/\/[0-9a-f]{64}$/);
  assert.equal(app.image, "docker.io/library/hello:1");
  assert.match(app.imageID, /@sha256:/);
  assert.deepEqual([app.ready, app.started, app.restartCount], [true, true, 0]);
  assert.deepEqual(states.get(uidOf(pod)), [
    "Pending",
    "Pulling",
    "Preparing",
    "Initializing",
    "Running",
  ]);

  const [instance] = runtime.instances;
  assert.ok(instance);
  assert.deepEqual(instance.spec.args, ["/hello.wasm", "--name", pod.metadata!.name]);
  assert.equal(instance.spec.env.FROM_IMAGE, "1");
  assert.equal(instance.spec.env.POD_NAME, pod.metadata!.name);
  assert.equal(instance.spec.workingDir, "/w");
  assert.equal(instance.spec.memoryLimitBytes, 16 * 1024 * 1024);
  assert.equal(instance.spec.cpuLimitMillis, 500);
  assert.match(
    instance.spec.logPath,
    new RegExp(`default_${pod.metadata!.name}_${uidOf(pod)}/app/0\\.log$`),
  );
  assert.deepEqual(
    instance.spec.mounts.map((m) => [m.guestPath, m.readOnly]),
    [["/scratch", false]],
  );
  assert.equal(images.calls[0]!.options.memoryLimitBytes, 16 * 1024 * 1024);
  assert.equal(images.calls[0]!.options.pullPolicy, "IfNotPresent");
  assert.deepEqual(kube.eventReasons(), ["Pulling", "Pulled", "Created", "Started"]);
  assert.equal(kube.events[0]!.message, 'Pulling image "hello:1"');
  assert.equal(kube.events[0]!.fieldPath, "spec.containers{app}");
  assert.equal(kube.events[2]!.message, "Created container: app");
  assert.deepEqual(controller.instance("default", pod.metadata!.name!, "app")?.id, instance.id);
  await controller.destroy();
});

test("Job pods end Succeeded or Failed (restartPolicy Never) and are not restarted", async () => {
  const { kube, runtime, controller, states } = harness();
  runtime.behaviours.set("ok", { exitAfterMs: 5, exitCode: 0 });
  runtime.behaviours.set("bad", { exitAfterMs: 5, exitCode: 3 });
  const good = makePod({
    spec: { restartPolicy: "Never", containers: [{ name: "ok", image: "job:1" }] },
  });
  const failing = makePod({
    spec: { restartPolicy: "Never", containers: [{ name: "bad", image: "job:1" }] },
  });
  controller.onPodUpsert(good);
  controller.onPodUpsert(failing);
  await until(
    () => statusOf(kube, good).phase === "Succeeded" && statusOf(kube, failing).phase === "Failed",
    "terminal phases",
  );
  assert.deepEqual(containerStatus(kube, good, "ok").state.terminated.reason, "Completed");
  const bad = containerStatus(kube, failing, "bad");
  assert.deepEqual(
    [bad.state.terminated.exitCode, bad.state.terminated.reason, bad.restartCount],
    [3, "Error", 0],
  );
  assert.equal(
    statusOf(kube, good).conditions.find((c: { type: string }) => c.type === "Ready").reason,
    "PodCompleted",
  );
  assert.equal(runtime.instances.length, 2);
  assert.deepEqual(states.get(uidOf(good))?.at(-1), "Succeeded");
  // Deleting a finished pod just deletes it.
  controller.onPodUpsert(deleting(good));
  await until(() => kube.deletes.length === 1, "DELETE");
  assert.deepEqual(kube.deletes[0], {
    namespace: "default",
    name: good.metadata!.name,
    uid: uidOf(good),
  });
  await controller.destroy();
});

test("CrashLoopBackOff: restarts with a doubling back-off, lastState kept, OnFailure stops on success", async () => {
  const { kube, runtime, controller } = harness();
  runtime.behaviours.set("crash", { exitAfterMs: 2, exitCode: 1 });
  const pod = makePod({ spec: { containers: [{ name: "crash", image: "c:1" }] } });
  controller.onPodUpsert(pod);
  const seen = await until(() => {
    const s = containerStatus(kube, pod, "crash");
    return s?.state?.waiting?.reason === "CrashLoopBackOff" && s.restartCount >= 1 ? s : undefined;
  }, "CrashLoopBackOff");
  assert.match(
    seen.state.waiting.message,
    new RegExp(
      `^back-off \\d+ms restarting failed container=crash pod=${pod.metadata!.name}_default\\(${uidOf(pod)}\\)$`,
    ),
  );
  assert.equal(seen.lastState.terminated.exitCode, 1);
  await until(() => runtime.of("crash").length >= 4, "four instances");
  assert.equal(runtime.maxConcurrentPerContainer, 1);
  assert.ok(kube.eventReasons().includes("BackOff"));
  const starts = runtime.of("crash").map((i) => i.spec.logPath.match(/(\d+)\.log$/)?.[1]);
  assert.deepEqual(starts.slice(0, 4), ["0", "1", "2", "3"]);
  assert.equal(statusOf(kube, pod).phase, "Running");
  await controller.destroy();

  const second = harness();
  let runs = 0;
  second.runtime.behaviours.set("flaky", { exitAfterMs: 2, exitCode: 1 });
  const onFailure = makePod({
    spec: { restartPolicy: "OnFailure", containers: [{ name: "flaky", image: "c:1" }] },
  });
  const original = second.runtime.run.bind(second.runtime);
  second.runtime.run = (spec) => {
    runs++;
    if (runs === 3) second.runtime.behaviours.set("flaky", { exitAfterMs: 2, exitCode: 0 });
    return original(spec);
  };
  second.controller.onPodUpsert(onFailure);
  await until(
    () => statusOf(second.kube, onFailure).phase === "Succeeded",
    "Succeeded after retries",
  );
  assert.equal(containerStatus(second.kube, onFailure, "flaky").restartCount, 2);
  await second.controller.destroy();
});

test("init containers run in order before the app; a failing init fails a Never pod", async () => {
  const { kube, runtime, controller } = harness();
  runtime.behaviours.set("init-1", { exitAfterMs: 5, exitCode: 0 });
  runtime.behaviours.set("init-2", { exitAfterMs: 5, exitCode: 0 });
  const pod = makePod({
    spec: {
      initContainers: [
        { name: "init-1", image: "i:1" },
        { name: "init-2", image: "i:1" },
      ],
      containers: [{ name: "app", image: "a:1" }],
    },
  });
  controller.onPodUpsert(pod);
  await until(() => containerStatus(kube, pod, "app")?.state?.running, "app running");
  assert.deepEqual(
    runtime.instances.map((i) => i.spec.labels.container),
    ["init-1", "init-2", "app"],
  );
  assert.equal(containerStatus(kube, pod, "init-2").ready, true);
  assert.equal(
    statusOf(kube, pod).conditions.find((c: { type: string }) => c.type === "Initialized").status,
    "True",
  );

  runtime.behaviours.set("setup", { exitAfterMs: 5, exitCode: 7 });
  const never = makePod({
    spec: {
      restartPolicy: "Never",
      initContainers: [{ name: "setup", image: "i:1" }],
      containers: [{ name: "main", image: "a:1" }],
    },
  });
  controller.onPodUpsert(never);
  await until(() => statusOf(kube, never).phase === "Failed", "Failed");
  assert.equal(runtime.of("main").length, 0);
  assert.equal(containerStatus(kube, never, "setup").state.terminated.exitCode, 7);
  // Once terminal, the app container that never started stays waiting (the kubelet's TerminatePod),
  // so the pod is still not Initialized. The status that says so is the terminal one: it also
  // turns PodReadyToStartContainers False.
  await until(
    () =>
      statusOf(kube, never).conditions.find(
        (c: { type: string }) => c.type === "PodReadyToStartContainers",
      )?.status === "False",
    "the terminal status",
  );
  assert.equal(containerStatus(kube, never, "main").state.waiting.reason, "PodInitializing");
  const initialized = statusOf(kube, never).conditions.find(
    (c: { type: string }) => c.type === "Initialized",
  );
  assert.equal(initialized.status, "False");
  assert.equal(initialized.reason, "ContainersNotInitialized");
  await controller.destroy();
});

test("CreateContainerConfigError until the ConfigMap exists; FailedMount until the volume's Secret exists", async () => {
  const { kube, runtime, controller } = harness();
  const pod = makePod({
    spec: {
      containers: [
        {
          name: "app",
          image: "a:1",
          env: [
            { name: "MODE", valueFrom: { configMapKeyRef: { name: "settings", key: "mode" } } },
          ],
          volumeMounts: [{ name: "creds", mountPath: "/creds" }],
        },
      ],
      volumes: [{ name: "creds", secret: { secretName: "creds" } }],
    },
  });
  controller.onPodUpsert(pod);
  await until(() => kube.events.find((e) => e.reason === "FailedMount"), "FailedMount");
  assert.equal(
    kube.events.find((e) => e.reason === "FailedMount")!.message,
    'MountVolume.SetUp failed for volume "creds" : secret "creds" not found',
  );
  // The first status waits (firstStatusHoldMs) for a start that does not come here.
  await until(() => containerStatus(kube, pod, "app"), "the first status");
  assert.equal(containerStatus(kube, pod, "app").state.waiting.reason, "ContainerCreating");
  assert.equal(
    statusOf(kube, pod).conditions.find(
      (c: { type: string }) => c.type === "PodReadyToStartContainers",
    ).status,
    "False",
  );
  kube.setSecret("default", "creds", { token: "t" });
  const waiting = await until(() => {
    const s = containerStatus(kube, pod, "app");
    return s?.state?.waiting?.reason === "CreateContainerConfigError" ? s : undefined;
  }, "CreateContainerConfigError");
  assert.equal(waiting.state.waiting.message, 'configmap "settings" not found');
  assert.ok(
    kube.events.some(
      (e) => e.reason === "Failed" && e.message === 'Error: configmap "settings" not found',
    ),
  );
  assert.equal(runtime.instances.length, 0);
  kube.setConfigMap("default", "settings", { mode: "fast" });
  await until(
    () => containerStatus(kube, pod, "app")?.state?.running,
    "running once the ConfigMap exists",
  );
  assert.equal(runtime.instances[0]!.spec.env.MODE, "fast");
  assert.equal(containerStatus(kube, pod, "app").restartCount, 0);
  await controller.destroy();
});

test("ErrImagePull then ImagePullBackOff, then the pull succeeds; ErrImageNeverPull waits", async () => {
  const { kube, images, controller } = harness();
  images.images.set("flaky:1", { failures: 2 });
  const pod = makePod({ spec: { containers: [{ name: "app", image: "flaky:1" }] } });
  controller.onPodUpsert(pod);
  const reasons = new Set<string>();
  await until(() => {
    const reason = containerStatus(kube, pod, "app")?.state?.waiting?.reason;
    if (reason) reasons.add(reason);
    return containerStatus(kube, pod, "app")?.state?.running;
  }, "running after pull retries");
  assert.ok(reasons.has("ErrImagePull") || reasons.has("ImagePullBackOff"));
  const messages = kube.events.map((e) => `${e.reason}: ${e.message}`);
  assert.ok(
    messages.includes(
      'Failed: Failed to pull image "flaky:1": pull of flaky:1 failed: manifest unknown',
    ),
  );
  assert.ok(messages.includes("Failed: Error: ErrImagePull"));
  assert.ok(messages.includes('BackOff: Back-off pulling image "flaky:1"'));
  assert.equal(images.calls.length, 3);

  images.images.set("local:1", { failures: 1000, reason: "ErrImageNeverPull" });
  const never = makePod({
    spec: { containers: [{ name: "app", image: "local:1", imagePullPolicy: "Never" }] },
  });
  controller.onPodUpsert(never);
  const s = await until(() => {
    const c = containerStatus(kube, never, "app");
    return c?.state?.waiting?.reason === "ErrImageNeverPull" ? c : undefined;
  }, "ErrImageNeverPull");
  assert.equal(
    s.state.waiting.message,
    'Container image "local:1" is not present with pull policy of Never',
  );
  await controller.destroy();
});

test("graceful deletion: Killing, stop within grace, terminal statuses, DELETE with uid, logs removed; deletion while pulling", async () => {
  const { kube, runtime, images, controller, states, dirs } = harness();
  const pod = makePod({
    spec: { terminationGracePeriodSeconds: 7, containers: [{ name: "app", image: "a:1" }] },
  });
  controller.onPodUpsert(pod);
  await until(() => containerStatus(kube, pod, "app")?.state?.running, "running");
  controller.onPodUpsert(deleting(pod, 5));
  await until(() => kube.deletes.length === 1, "DELETE");
  assert.deepEqual(runtime.instances[0]!.stops, [5000]);
  assert.ok(
    kube.events.some((e) => e.reason === "Killing" && e.message === "Stopping container app"),
  );
  const final = statusOf(kube, pod);
  assert.equal(final.phase, "Failed"); // stopped with 143, like a SIGTERMed container
  assert.equal(containerStatus(kube, pod, "app").state.terminated.exitCode, 143);
  assert.equal(final.conditions.find((c: { type: string }) => c.type === "Ready").status, "False");
  await until(() => controller.stateOf(uidOf(pod)) === "Terminated", "Terminated");
  assert.deepEqual(states.get(uidOf(pod))?.slice(-2), ["Terminating", "Terminated"]);
  assert.ok(
    !existsSync(join(dirs.logs, `default_${pod.metadata!.name}_${uidOf(pod)}`)),
    "a deleted pod's logs are removed",
  );
  controller.onPodDeleted(pod);
  assert.equal(controller.stateOf(uidOf(pod)), undefined);

  images.images.set("slow:1", { hang: true });
  const pulling = makePod({ spec: { containers: [{ name: "app", image: "slow:1" }] } });
  controller.onPodUpsert(pulling);
  await until(() => images.calls.some((c) => c.image === "slow:1"), "pull started");
  controller.onPodUpsert(deleting(pulling));
  await until(() => kube.deletes.some((d) => d.uid === uidOf(pulling)), "DELETE while pulling");
  assert.ok(images.calls.find((c) => c.image === "slow:1")!.options.signal.aborted);
  const unknown = containerStatus(kube, pulling, "app").state.terminated;
  assert.deepEqual([unknown.reason, unknown.exitCode], ["ContainerStatusUnknown", 137]);
  assert.equal(statusOf(kube, pulling).phase, "Failed");
  await controller.destroy();
});

test("deletion during CrashLoopBackOff and force deletion stop at once, while no time passes", async (t) => {
  const { kube, runtime, controller } = mockedTime(t);
  const looping = makePod({ spec: { containers: [{ name: "crash", image: "c:1" }] } });
  controller.onPodUpsert(looping);
  (await until(() => runtime.of("crash")[0], "started")).exit(1);
  (await until(() => runtime.of("crash")[1], "restarted at once")).exit(1);
  await until(
    () => containerStatus(kube, looping, "crash")?.state?.waiting?.reason === "CrashLoopBackOff",
    "in back-off",
  );
  // Time stands still: only the deletion can end the 10 s back-off.
  controller.onPodUpsert(deleting(looping));
  await until(() => kube.deletes.some((d) => d.uid === uidOf(looping)), "DELETE during back-off");

  const forced = makePod({ spec: { containers: [{ name: "app", image: "a:1" }] } });
  controller.onPodUpsert(forced);
  await until(
    () => runtime.of("app").length === 1 && containerStatus(kube, forced, "app")?.state?.running,
    "running",
  );
  const patchesBefore = kube.patches.length;
  controller.onPodDeleted(forced);
  await until(() => controller.stateOf(uidOf(forced)) === undefined, "forgotten");
  assert.deepEqual(runtime.of("app")[0]!.stops[0], 0);
  assert.equal(
    kube.deletes.some((d) => d.uid === uidOf(forced)),
    false,
    "nothing to DELETE: it is gone",
  );
  assert.equal(kube.patches.length, patchesBefore, "no status for a pod that is gone");
  await controller.destroy();
});

test("CrashLoopBackOff on the kubelet's timings and the injected clock: at once, then 10 s, then 20 s", async (t) => {
  const { kube, runtime, controller, advance, elapsed } = mockedTime(t);
  const pod = makePod({ spec: { containers: [{ name: "crash", image: "c:1" }] } });
  controller.onPodUpsert(pod);
  const instance = (n: number) => until(() => runtime.of("crash")[n], `instance ${n}`);
  const backOff = (text: string) =>
    until(
      () => containerStatus(kube, pod, "crash")?.state?.waiting?.message?.startsWith(text),
      text,
    );
  (await instance(0)).exit(1);
  (await instance(1)).exit(1);
  // The back-off's timer is armed as its status goes out: from here only `advance` moves on.
  await backOff("back-off 10s restarting failed container=crash");
  await advance(10_000);
  const third = await instance(2);
  assert.equal(third.startedAt.getTime() - runtime.of("crash")[1]!.finishedAt!.getTime(), 10_000);
  third.exit(1);
  await backOff("back-off 20s restarting failed container=crash");
  await advance(20_000);
  assert.equal(elapsed((await instance(3)).startedAt), 0, "restarted as the 20 s ended");
  await until(() => containerStatus(kube, pod, "crash")?.restartCount === 3, "restartCount 3");
  await controller.destroy();
});

test("ErrImagePull, then ImagePullBackOff for the rest of the back-off, on the kubelet's timings and the injected clock", async (t) => {
  const { kube, images, controller, advance } = mockedTime(t);
  images.images.set("flaky:1", { failures: 2 });
  const pod = makePod({ spec: { containers: [{ name: "app", image: "flaky:1" }] } });
  controller.onPodUpsert(pod);
  const waiting = () => containerStatus(kube, pod, "app")?.state?.waiting?.reason;
  const failures = () => kube.events.filter((e) => e.message === "Error: ErrImagePull").length;
  await until(() => failures() === 1 && waiting() === "ErrImagePull", "ErrImagePull");
  // The first window (10 s) is all shown as ErrImagePull; the pull is retried as it ends.
  await advance(10_000);
  await until(() => failures() === 2, "the second failure");
  // The second window is 20 s: ErrImagePull for 10 s, then ImagePullBackOff until it ends.
  await advance(10_000);
  await until(() => waiting() === "ImagePullBackOff", "ImagePullBackOff");
  assert.equal(images.calls.length, 2, "no pull while backing off");
  await advance(10_000);
  await until(() => containerStatus(kube, pod, "app")?.state?.running, "running");
  assert.equal(images.calls.length, 3);
  assert.ok(
    kube.events.some(
      (e) =>
        e.message ===
        'Successfully pulled image "flaky:1" in 0ms (0ms including waiting). Image size: 1234 bytes.',
    ),
    "the pull's duration is read from the injected clock",
  );
  await controller.destroy();
});

test("preStop sleep: the stop waits for it and gets what is left of the grace period; a force deletion cuts it short", async (t) => {
  const { kube, runtime, controller, advance } = mockedTime(t);
  const killing = (pod: V1Pod) =>
    kube.events.some((e) => e.reason === "Killing" && e.pod.uid === uidOf(pod));
  const sleepy = makePod({
    spec: {
      containers: [
        { name: "sleepy", image: "a:1", lifecycle: { preStop: { sleep: { seconds: 1 } } } },
      ],
    },
  });
  controller.onPodUpsert(sleepy);
  await until(() => containerStatus(kube, sleepy, "sleepy")?.state?.running, "running");
  controller.onPodUpsert(deleting(sleepy, 30));
  // The Killing event and the preStop sleep's timer come in the same turn.
  await until(() => killing(sleepy), "Killing");
  await advance(999);
  assert.deepEqual(runtime.of("sleepy")[0]!.stops, [], "no stop before the sleep ends");
  await advance(1);
  await until(() => kube.deletes.some((d) => d.uid === uidOf(sleepy)), "DELETE");
  assert.deepEqual(runtime.of("sleepy")[0]!.stops, [29_000], "30 s of grace less the 1 s slept");

  const held = makePod({
    spec: {
      containers: [
        { name: "held", image: "a:1", lifecycle: { preStop: { sleep: { seconds: 30 } } } },
      ],
    },
  });
  controller.onPodUpsert(held);
  await until(() => containerStatus(kube, held, "held")?.state?.running, "running");
  controller.onPodUpsert(deleting(held, 60));
  await until(() => killing(held), "Killing");
  controller.onPodDeleted(held);
  // No time passes: only the cut can end the 30 s sleep.
  await until(() => controller.stateOf(uidOf(held)) === undefined, "forgotten at once");
  assert.ok(runtime.of("held")[0]!.stops.every((grace) => grace === 0));
  await controller.destroy();
});

test("the node's shutdown cuts a deletion's preStop sleep short and stops the container itself within its own grace", async (t) => {
  const { kube, runtime, controller, advance } = mockedTime(t);
  const pod = makePod({
    spec: {
      containers: [
        { name: "held", image: "a:1", lifecycle: { preStop: { sleep: { seconds: 30 } } } },
      ],
    },
  });
  controller.onPodUpsert(pod);
  await until(() => containerStatus(kube, pod, "held")?.state?.running, "running");
  controller.onPodUpsert(deleting(pod, 60));
  await until(() => kube.events.some((e) => e.reason === "Killing"), "Killing");
  const closed = controller.close(5_000);
  // The shutdown's own preStop sleep gets its 5 s, then the stop has nothing left.
  await advance(5_000);
  await closed;
  assert.deepEqual(runtime.of("held")[0]!.stops, [0], "one stop, the shutdown's");
  // The deletion's 30 s sleep ended with the shutdown: Terminating goes on to its DELETE.
  await until(() => kube.deletes.some((d) => d.uid === uidOf(pod)), "DELETE");
});

test("the DELETE is retried with back-off until a force deletion or the node's shutdown ends it", async (t) => {
  const { kube, controller, advance, dirs } = mockedTime(t);
  kube.failDeletes = Number.POSITIVE_INFINITY;
  const pod = makePod();
  controller.onPodUpsert(pod);
  await until(() => containerStatus(kube, pod, "app")?.state?.running, "running");
  controller.onPodUpsert(deleting(pod, 0));
  await until(() => kube.deleteAttempts === 1, "the first DELETE");
  await advance(200);
  await until(() => kube.deleteAttempts === 2, "a retry 200 ms later");
  controller.onPodDeleted(pod);
  await until(() => controller.stateOf(uidOf(pod)) === undefined, "forgotten without a retry");
  assert.equal(kube.deleteAttempts, 2);

  const other = makePod();
  const logs = join(dirs.logs, `default_${other.metadata!.name}_${uidOf(other)}`);
  controller.onPodUpsert(other);
  await until(() => containerStatus(kube, other, "app")?.state?.running, "running");
  assert.ok(existsSync(logs));
  controller.onPodUpsert(deleting(other, 0));
  await until(() => kube.deleteAttempts === 3, "its DELETE");
  await controller.close(0);
  // Terminating goes on past its retries to its last step: the pod's logs are removed.
  await until(() => !existsSync(logs), "the retries ended by the shutdown");
  assert.equal(kube.deleteAttempts, 3);
});

test("admission rejects with Failed, reason and 'Pod was rejected:' message; nothing runs", async () => {
  const { kube, runtime, images, controller } = harness();
  const pod = makePod({ spec: { hostNetwork: true } });
  controller.onPodUpsert(pod);
  await until(() => statusOf(kube, pod).phase === "Failed", "rejected");
  const status = statusOf(kube, pod);
  assert.equal(status.reason, "HostNetworkNotSupported");
  assert.match(status.message, /^Pod was rejected: hostNetwork is not supported by wasmlet/);
  assert.equal(kube.events[0]!.reason, "HostNetworkNotSupported");
  assert.equal(images.calls.length, 0);
  assert.equal(runtime.instances.length, 0);
  await controller.destroy();
});

test("restart safety: rebuilt from the API, running containers restart with restartCount+1 and a fresh log file", async () => {
  const first = harness();
  const pod = makePod({
    spec: {
      containers: [
        { name: "app", image: "a:1" },
        { name: "done", image: "a:1" },
      ],
      restartPolicy: "OnFailure",
    },
  });
  first.runtime.behaviours.set("done", { exitAfterMs: 1, exitCode: 0 });
  first.controller.onPodUpsert(pod);
  await until(
    () =>
      containerStatus(first.kube, pod, "app")?.state?.running &&
      containerStatus(first.kube, pod, "done")?.state?.terminated,
    "running",
  );
  const before = containerStatus(first.kube, pod, "app");
  // wasmlet dies (SIGKILL): nothing is sent; its workers die with it.
  await first.controller.destroy();
  const logDir = join(first.dirs.logs, `default_${pod.metadata!.name}_${uidOf(pod)}`, "app");
  assert.deepEqual(await readdir(logDir), []); // the fake runtime writes nothing, the directory exists
  await writeFile(join(logDir, "0.log"), "instance 0\n");

  // A new process sees the pod as the API has it.
  const seen: V1Pod = { ...pod, status: JSON.parse(JSON.stringify(first.kube.status(uidOf(pod)))) };
  const second = first.make();
  await second.resync([seen]);
  await until(
    () =>
      first.runtime.of("app").length === 2 &&
      containerStatus(first.kube, pod, "app")?.state?.running?.startedAt,
    "restarted",
  );
  const after = containerStatus(first.kube, pod, "app");
  assert.equal(after.restartCount, 1);
  assert.notEqual(after.containerID, before.containerID);
  assert.equal(after.lastState.terminated.reason, "ContainerStatusUnknown");
  assert.equal(after.lastState.terminated.containerID, before.containerID);
  assert.match(first.runtime.of("app")[1]!.spec.logPath, /\/app\/1\.log$/);
  assert.equal(
    first.runtime.of("done").length,
    1,
    "a container that completed under OnFailure is not run again",
  );
  assert.equal(first.runtime.maxConcurrentPerContainer, 1);
  await second.destroy();
});

test("resync: pods no longer listed are stopped, leftover pod directories and logs removed; other nodes' pods ignored", async () => {
  const { kube, runtime, controller, dirs } = harness();
  const a = makePod({
    spec: { containers: [{ name: "app", image: "a:1" }], volumes: [{ name: "d", emptyDir: {} }] },
  });
  const b = makePod({ spec: { nodeName: "other-node" } });
  await mkdir(join(dirs.pods, "stale-uid"), { recursive: true });
  await mkdir(join(dirs.logs, "default_gone_stale-uid", "app"), { recursive: true });
  await writeFile(join(dirs.logs, "default_gone_stale-uid", "app", "0.log"), "old\n");
  await controller.resync([a, b]);
  await until(() => containerStatus(kube, a, "app")?.state?.running, "a running");
  assert.equal(controller.stateOf(uidOf(b)), undefined);
  assert.deepEqual(controller.imagesInUse(), ["a:1"], "only this node's pods protect images");
  assert.ok(!(await readdir(dirs.pods)).includes("stale-uid"));
  assert.deepEqual(await readdir(dirs.logs), [`default_${a.metadata!.name}_${uidOf(a)}`]);
  await controller.resync([]);
  await until(() => controller.stateOf(uidOf(a)) === undefined, "a forgotten");
  assert.deepEqual(controller.imagesInUse(), []);
  assert.equal(runtime.instances[0]!.running, false);
  await until(() => !existsSync(join(dirs.pods, uidOf(a))), "a's directory removed");
  await controller.destroy();
});

test("emptyDir over its sizeLimit evicts the pod; activeDeadlineSeconds fails it", async () => {
  const { kube, runtime, controller } = harness();
  const pod = makePod({
    spec: {
      containers: [
        { name: "app", image: "a:1", volumeMounts: [{ name: "tmp", mountPath: "/tmp" }] },
      ],
      volumes: [{ name: "tmp", emptyDir: { sizeLimit: "8Ki" } }],
    },
  });
  controller.onPodUpsert(pod);
  await until(() => runtime.of("app").length === 1, "running");
  await writeFile(
    join(runtime.of("app")[0]!.spec.mounts[0]!.hostPath, "fill"),
    Buffer.alloc(64 * 1024, 7),
  );
  await until(() => statusOf(kube, pod).phase === "Failed", "evicted");
  const status = statusOf(kube, pod);
  assert.equal(status.reason, "Evicted");
  assert.equal(status.message, 'Usage of EmptyDir volume "tmp" exceeds the limit "8Ki". ');
  assert.ok(
    status.conditions.some(
      (c: { type: string; status: string }) => c.type === "DisruptionTarget" && c.status === "True",
    ),
  );
  assert.equal(runtime.of("app")[0]!.running, false);
  assert.ok(kube.events.some((e) => e.reason === "Evicted"));

  const deadline = makePod({
    spec: { activeDeadlineSeconds: 0, containers: [{ name: "late", image: "a:1" }] },
  });
  controller.onPodUpsert(deadline);
  await until(() => statusOf(kube, deadline).reason === "DeadlineExceeded", "deadline");
  assert.equal(statusOf(kube, deadline).phase, "Failed");
  assert.equal(
    statusOf(kube, deadline).message,
    "Pod was active on the node longer than the specified deadline",
  );
  await controller.destroy();
});

test("imagePullSecrets are decoded for the images module; missing ones are a warning; command[0] names the module", async () => {
  const { kube, images, controller } = harness();
  const dockerConfig = JSON.stringify({ auths: { "registry.local:5000": { auth: "dTpw" } } });
  kube.secrets.set("default/regcred", {
    metadata: { name: "regcred", namespace: "default" },
    type: "kubernetes.io/dockerconfigjson",
    data: { ".dockerconfigjson": Buffer.from(dockerConfig).toString("base64") },
  });
  const pod = makePod({
    spec: {
      imagePullSecrets: [{ name: "regcred" }, { name: "absent" }],
      containers: [
        { name: "app", image: "registry.local:5000/app:latest", command: ["/bin/tool.wasm"] },
      ],
    },
  });
  controller.onPodUpsert(pod);
  await until(() => images.calls.length === 1, "ensure");
  const options = images.calls[0]!.options;
  assert.deepEqual(options.pullSecrets, [dockerConfig]);
  assert.equal(options.executable, "/bin/tool.wasm");
  assert.equal(options.pullPolicy, "Always", ":latest defaults to Always");
  const warning = kube.events.find((e) => e.reason === "FailedToRetrieveImagePullSecret");
  assert.equal(
    warning?.message,
    "Unable to retrieve some image pull secrets (absent); attempting to pull the image may not succeed.",
  );
  await controller.close(0);
  await assert.rejects(controller.resync([]), { code: "WASMLET_ERR_CONTROLLER_CLOSED" });
});

test("image errors map to the kubelet's waiting reasons by code", async () => {
  const { pullFailureReason } = await import("../../../src/pods/states/pulling.ts");
  assert.equal(pullFailureReason({ code: "WASMLET_ERR_IMAGE_NEVER_PULL" }), "ErrImageNeverPull");
  assert.equal(
    pullFailureReason({ code: "WASMLET_ERR_IMAGE_REFERENCE_INVALID" }),
    "InvalidImageName",
  );
  assert.equal(pullFailureReason({ reason: "InvalidImageName" }), "InvalidImageName");
  assert.equal(pullFailureReason({ code: "WASMLET_ERR_IMAGE_NOT_FOUND" }), "ErrImagePull");
  assert.equal(pullFailureReason(new Error("x")), "ErrImagePull");
});

test("exec probes: not Ready until the readiness probe passes; a failing liveness probe restarts the container", async () => {
  const { kube, runtime, controller } = harness();
  let ready = false;
  runtime.behaviours.set("web", {
    exec: (args) =>
      args[0] === "ready" && ready
        ? { exitCode: 0, output: "", timedOut: false }
        : { exitCode: 1, output: `${args[0]}: no`, timedOut: false },
  });
  runtime.behaviours.set("sick", {
    exec: () => ({ exitCode: 2, output: "unwell", timedOut: false }),
  });
  const pod = makePod({
    spec: {
      terminationGracePeriodSeconds: 3,
      containers: [
        {
          name: "web",
          image: "a:1",
          readinessProbe: { exec: { command: ["ready"] }, periodSeconds: 1 },
        },
        {
          name: "sick",
          image: "a:1",
          livenessProbe: {
            exec: { command: ["alive"] },
            periodSeconds: 1,
            failureThreshold: 2,
            terminationGracePeriodSeconds: 1,
          },
        },
      ],
    },
  });
  controller.onPodUpsert(pod);
  await until(() => containerStatus(kube, pod, "web")?.state?.running, "web running");
  const web = containerStatus(kube, pod, "web");
  assert.equal(web.ready, false, "not ready before the probe passes");
  assert.equal(web.started, true);
  assert.equal(statusOf(kube, pod).phase, "Running");
  assert.equal(
    statusOf(kube, pod).conditions.find((c: { type: string }) => c.type === "Ready").status,
    "False",
  );
  ready = true;
  await until(() => containerStatus(kube, pod, "web")?.ready, "web ready");
  assert.deepEqual(runtime.of("web")[0]!.execs[0], { args: ["ready"], timeoutMs: 5 });

  await until(() => containerStatus(kube, pod, "sick")?.restartCount >= 1, "sick restarted");
  assert.deepEqual(runtime.of("sick")[0]!.stops, [1000], "the probe's own grace period");
  const events = kube.events.filter((e) => e.fieldPath === "spec.containers{sick}");
  assert.ok(
    events.some((e) => e.reason === "Unhealthy" && e.message === "Liveness probe failed: unwell"),
  );
  assert.ok(
    events.some(
      (e) =>
        e.reason === "Killing" &&
        e.message === "Container sick failed liveness probe, will be restarted",
    ),
  );
  assert.equal(runtime.of("web").length, 1, "a readiness failure never restarts");
  await controller.destroy();
});

test("sidecars: started before the next init container, restarted whatever the policy, stopped after the apps", async () => {
  const { kube, runtime, controller } = harness();
  runtime.behaviours.set("setup", { exitAfterMs: 5 });
  runtime.behaviours.set("flaky", { exitAfterMs: 30, exitCode: 1 });
  runtime.behaviours.set("main", { exitAfterMs: 150 });
  const job = makePod({
    spec: {
      restartPolicy: "Never",
      initContainers: [
        { name: "proxy", image: "a:1", restartPolicy: "Always" },
        { name: "setup", image: "a:1" },
        { name: "flaky", image: "a:1", restartPolicy: "Always" },
      ],
      containers: [{ name: "main", image: "a:1" }],
    },
  });
  controller.onPodUpsert(job);
  await until(() => statusOf(kube, job)?.phase === "Succeeded", "Succeeded", 5000);
  const [proxy] = runtime.of("proxy");
  const [setup] = runtime.of("setup");
  const [main] = runtime.of("main");
  assert.ok(
    proxy!.createdAt < setup!.createdAt,
    "the sidecar starts before the next init container",
  );
  assert.ok(runtime.of("flaky").length >= 2, "a sidecar is restarted under restartPolicy Never");
  assert.equal(runtime.of("proxy").length, 1);
  assert.ok(
    proxy!.stoppedAt! >= main!.createdAt + 100,
    "sidecars are stopped once the app is done",
  );
  const init = (name: string) =>
    statusOf(kube, job).initContainerStatuses.find((c: { name: string }) => c.name === name);
  assert.equal(init("proxy").state.terminated.exitCode, 143);
  assert.equal(init("setup").state.terminated.exitCode, 0);
  assert.equal(containerStatus(kube, job, "main").state.terminated.exitCode, 0);

  const service = makePod({
    spec: {
      terminationGracePeriodSeconds: 5,
      initContainers: [
        { name: "first", image: "a:1", restartPolicy: "Always" },
        { name: "second", image: "a:1", restartPolicy: "Always" },
      ],
      containers: [{ name: "app", image: "a:1" }],
    },
  });
  controller.onPodUpsert(service);
  await until(() => statusOf(kube, service)?.phase === "Running", "Running");
  await until(
    () =>
      statusOf(kube, service).conditions.find((c: { type: string }) => c.type === "Ready")
        ?.status === "True",
    "Ready",
  );
  const sidecar = statusOf(kube, service).initContainerStatuses.find(
    (c: { name: string }) => c.name === "first",
  );
  assert.deepEqual([sidecar.ready, sidecar.started, !!sidecar.state.running], [true, true, true]);
  controller.onPodUpsert(deleting(service, 5));
  await until(() => kube.deletes.some((d) => d.uid === uidOf(service)), "DELETE");
  const stopped = (name: string) => runtime.of(name).at(-1)!.stoppedAt!;
  assert.ok(stopped("app") <= stopped("second"), "apps stop first");
  assert.ok(stopped("second") <= stopped("first"), "sidecars stop last first");
  await controller.destroy();
});

test("exec hooks: a failing postStart kills the container; preStop runs before the stop, within the grace period", async () => {
  const { kube, runtime, controller } = harness();
  runtime.behaviours.set("app", {
    exec: (args) =>
      args[0] === "post-fail"
        ? { exitCode: 1, output: "boom", timedOut: false }
        : args[0] === "pre-fail"
          ? { exitCode: 2, output: "", timedOut: false }
          : { exitCode: 0, output: "", timedOut: false },
  });
  const failing = makePod({
    spec: {
      terminationGracePeriodSeconds: 4,
      containers: [
        {
          name: "app",
          image: "a:1",
          lifecycle: { postStart: { exec: { command: ["post-fail"] } } },
        },
      ],
    },
  });
  controller.onPodUpsert(failing);
  await until(() => runtime.of("app").length >= 2, "restarted after the failed hook");
  const event = kube.events.find((e) => e.reason === "FailedPostStartHook");
  assert.equal(
    event?.message,
    `Exec lifecycle hook ([post-fail]) for Container "app" in Pod "${failing.metadata!.name}_default(${uidOf(failing)})" failed - error: command 'post-fail' exited with 1: boom, message: "boom"`,
  );
  assert.deepEqual(runtime.of("app")[0]!.stops, [4000]);
  assert.equal(runtime.of("app")[0]!.execs[0]!.timeoutMs, undefined, "postStart has no timeout");

  const draining = makePod({
    spec: {
      terminationGracePeriodSeconds: 3,
      containers: [
        {
          name: "app",
          image: "a:1",
          lifecycle: {
            postStart: { exec: { command: ["post-ok"] } },
            preStop: { exec: { command: ["pre-fail"] } },
          },
        },
      ],
    },
  });
  controller.onPodUpsert(draining);
  await until(() => containerStatus(kube, draining, "app")?.state?.running, "running");
  const instance = runtime.instances.find((i) => i.spec.labels.uid === uidOf(draining))!;
  controller.onPodUpsert(deleting(draining, 3));
  await until(() => kube.deletes.some((d) => d.uid === uidOf(draining)), "DELETE");
  assert.deepEqual(
    instance.execs.map((e) => e.args[0]),
    ["post-ok", "pre-fail"],
  );
  assert.ok(instance.execs[1]!.timeoutMs! <= 3000 && instance.execs[1]!.timeoutMs! > 2000);
  assert.ok(instance.stops[0]! <= 3000, "the stop gets what is left of the grace period");
  assert.ok(
    kube.events.some(
      (e) => e.reason === "FailedPreStopHook" && e.fieldPath === "spec.containers{app}",
    ),
  );
  await controller.destroy();
});
