import assert from "node:assert/strict";
import { test } from "node:test";
import type { PodStatusDoc } from "../../../src/pods/status.ts";
import { StatusPatcher, statusPatch, withoutRegression } from "../../../src/pods/status-patcher.ts";
import { FakeKube, HttpError, silentLogger, until } from "./fakes.ts";

const ref = { namespace: "ns", name: "p", uid: "u1" };

function status(overrides: Partial<PodStatusDoc> = {}): PodStatusDoc {
  return {
    phase: "Pending",
    conditions: [
      {
        type: "Ready",
        status: "False",
        reason: "ContainersNotReady",
        lastProbeTime: null,
        lastTransitionTime: "2025-01-01T00:00:00Z",
      },
    ],
    startTime: "2025-01-01T00:00:00Z",
    qosClass: "BestEffort",
    containerStatuses: [
      {
        name: "a",
        state: { waiting: { reason: "ContainerCreating" } },
        lastState: {},
        ready: false,
        restartCount: 0,
        image: "a",
        imageID: "",
        started: false,
      },
    ],
    ...overrides,
  };
}

test("patches hold only changed fields and changed conditions; others' conditions are untouched", () => {
  const acked = {
    phase: "Pending",
    conditions: [
      { type: "PodScheduled", status: "True" },
      {
        type: "Ready",
        status: "False",
        reason: "ContainersNotReady",
        lastProbeTime: null,
        lastTransitionTime: "2025-01-01T00:00:00Z",
      },
    ],
    startTime: "2025-01-01T00:00:00Z",
    qosClass: "BestEffort",
    containerStatuses: status().containerStatuses,
    reason: "Old",
  };
  assert.deepEqual(statusPatch(acked, status()), { reason: null });
  const next = status({
    phase: "Running",
    conditions: [
      {
        type: "Ready",
        status: "True",
        lastProbeTime: null,
        lastTransitionTime: "2025-01-01T00:00:05Z",
      },
    ],
  });
  const patch = statusPatch({ ...acked, reason: undefined }, next);
  assert.deepEqual(Object.keys(patch ?? {}).sort(), ["conditions", "phase"]);
  assert.deepEqual(
    (patch!.conditions as { type: string }[]).map((c) => c.type),
    ["Ready"],
  );
});

test("never regresses: terminal phase, terminated instance, restart count", () => {
  const terminated = {
    name: "a",
    state: { terminated: { exitCode: 0, containerID: "wasmlet://x" } },
    lastState: {},
    ready: false,
    restartCount: 3,
    image: "a",
    imageID: "",
    containerID: "wasmlet://x",
    started: false,
  };
  const acked = { phase: "Succeeded", containerStatuses: [terminated] };
  const stale = status({ phase: "Running" });
  stale.containerStatuses[0] = {
    ...terminated,
    state: { running: { startedAt: "t" } },
    restartCount: 1,
  };
  const fixed = withoutRegression(acked, stale);
  assert.equal(fixed.phase, "Succeeded");
  assert.deepEqual(fixed.containerStatuses[0]!.state, terminated.state);
  assert.equal(fixed.containerStatuses[0]!.restartCount, 3);
  // A newer instance may run: that is a restart, not a regression.
  const restarted = status({ phase: "Running" });
  restarted.containerStatuses[0] = {
    ...terminated,
    containerID: "wasmlet://y",
    state: { running: { startedAt: "t" } },
    restartCount: 4,
  };
  assert.deepEqual(
    withoutRegression({ phase: "Running", containerStatuses: [terminated] }, restarted)
      .containerStatuses[0]!.state,
    { running: { startedAt: "t" } },
  );
});

test("the patcher coalesces bursts, carries the uid precondition, retries failures, stops on 404", async () => {
  const kube = new FakeKube();
  const patcher = new StatusPatcher({
    kube,
    pod: ref,
    initial: undefined,
    logger: silentLogger,
    retryInitialMs: 5,
  });
  patcher.set(status());
  patcher.set(status({ phase: "Running" }));
  patcher.set(status({ phase: "Running", podIP: "10.0.0.1" }));
  await patcher.flush();
  assert.equal(kube.patches.length, 1);
  assert.deepEqual(kube.patches[0]!.patch.metadata, { uid: "u1" });
  assert.equal(kube.status("u1").phase, "Running");
  assert.equal(kube.status("u1").podIP, "10.0.0.1");

  patcher.set(status({ phase: "Running", podIP: "10.0.0.1" }));
  await patcher.flush();
  assert.equal(kube.patches.length, 1, "nothing changed, nothing sent");

  kube.failPatches = 2;
  patcher.set(status({ phase: "Succeeded", podIP: "10.0.0.1" }));
  await patcher.flush();
  assert.equal(kube.status("u1").phase, "Succeeded");
  assert.equal(patcher.patches, 4);

  let gone = 0;
  const missing = new StatusPatcher({
    kube: { patchPodStatus: async () => Promise.reject(new HttpError(404, "not found")) },
    pod: ref,
    initial: undefined,
    logger: silentLogger,
    onGone: () => gone++,
  });
  missing.set(status());
  await missing.flush();
  missing.set(status({ phase: "Running" }));
  await missing.flush();
  assert.equal(gone, 1);
  assert.equal(missing.patches, 1);
});

const condition = (
  type: string,
  state: "True" | "False",
  reason?: string,
  message?: string,
): NonNullable<PodStatusDoc["conditions"]>[number] => ({
  type,
  status: state,
  ...(reason ? { reason } : {}),
  ...(message ? { message } : {}),
  lastProbeTime: null,
  lastTransitionTime: "2025-01-01T00:00:00Z",
});

test("a condition that changes state drops the reason and message of the old one", async () => {
  const kube = new FakeKube();
  const patcher = new StatusPatcher({ kube, pod: ref, initial: undefined, logger: silentLogger });
  const notReady = condition(
    "Ready",
    "False",
    "ContainersNotReady",
    "containers with unready status: [a]",
  );
  patcher.set(status({ conditions: [notReady] }));
  await patcher.flush();
  patcher.set(status({ phase: "Running", conditions: [condition("Ready", "True")] }));
  await patcher.flush();
  const ready = (kube.status("u1").conditions as Record<string, unknown>[])[0];
  assert.deepEqual(ready, {
    type: "Ready",
    status: "True",
    lastTransitionTime: "2025-01-01T00:00:00Z",
  });
  // Nothing further to send: the acknowledged status holds no leftover fields either.
  patcher.set(status({ phase: "Running", conditions: [condition("Ready", "True")] }));
  await patcher.flush();
  assert.equal(kube.patches.length, 2);
});

test("conditions others changed in the API are put back with the next patch", async () => {
  const kube = new FakeKube();
  const patcher = new StatusPatcher({ kube, pod: ref, initial: undefined, logger: silentLogger });
  const running = status({ phase: "Running", conditions: [condition("Ready", "True")] });
  patcher.set(running);
  await patcher.flush();
  // The node lifecycle controller marks the pods of an unreachable node not ready.
  const marked = {
    ...kube.status("u1"),
    conditions: [condition("Ready", "False", "NodeNotReady")],
  };
  kube.statuses.set("u1", marked);
  patcher.observe(marked);
  patcher.set(running);
  await patcher.flush();
  assert.equal(kube.patches.length, 2);
  assert.deepEqual(
    (kube.status("u1").conditions as { status: string; reason?: string }[]).map((c) => [
      c.status,
      c.reason,
    ]),
    [["True", undefined]],
  );
  // An event that agrees with what was sent changes nothing.
  patcher.observe(kube.status("u1"));
  patcher.set(running);
  await patcher.flush();
  assert.equal(kube.patches.length, 2);
});

test("the first patch waits for the pod to leave Pending, up to firstPatchHoldMs", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const kube = new FakeKube();
  const patcher = (uid: string, firstPatchHoldMs: number) =>
    new StatusPatcher({
      kube,
      pod: { ...ref, uid },
      initial: undefined,
      logger: silentLogger,
      firstPatchHoldMs,
    });
  const patchesOf = (uid: string) =>
    kube.patches.filter((p) => (p.patch.metadata as { uid: string }).uid === uid).length;
  // A patcher without a hold, given a status at the same moment: once its patch is out, the held
  // one's would be too, were it not held.
  const control = (uid: string) => {
    patcher(uid, 0).set(status());
    return until(() => patchesOf(uid) === 1, `the unheld patch of ${uid}`);
  };

  const quick = patcher("u1", 60_000);
  quick.set(status());
  await control("c1");
  assert.equal(patchesOf("u1"), 0, "a Pending status is held");
  quick.set(status({ phase: "Running" }));
  // No time passes: only leaving Pending can have sent it.
  await until(
    () => patchesOf("u1") === 1,
    "leaving Pending sends at once, without waiting for flush",
  );
  assert.equal(kube.status("u1").phase, "Running");
  quick.set(status({ phase: "Running", podIP: "10.0.0.1" }));
  await until(() => patchesOf("u1") === 2, "only the first patch is held");

  const pending = patcher("u2", 60_000);
  pending.set(status());
  t.mock.timers.tick(59_999);
  await control("c2");
  assert.equal(patchesOf("u2"), 0, "still held a millisecond before the hold ends");
  t.mock.timers.tick(1);
  await until(() => patchesOf("u2") === 1, "a pod still Pending is reported when the hold ends");
  assert.equal(kube.status("u2").phase, "Pending");

  const flushed = patcher("u3", 60_000);
  flushed.set(status());
  await flushed.flush();
  assert.equal(flushed.patches, 1, "flush() ends the hold");
});
