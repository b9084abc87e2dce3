import assert from "node:assert/strict";
import { test } from "node:test";
import type { PodStatusDoc } from "../../../src/pods/status.ts";
import { StatusPatcher, statusPatch, withoutRegression } from "../../../src/pods/status-patcher.ts";
import { FakeKube, HttpError, silentLogger } from "./fakes.ts";

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

test("the first patch waits for the pod to leave Pending, up to firstPatchHoldMs", async () => {
  const kube = new FakeKube();
  const quick = new StatusPatcher({
    kube,
    pod: ref,
    initial: undefined,
    logger: silentLogger,
    firstPatchHoldMs: 60_000,
  });
  quick.set(status());
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(kube.patches.length, 0, "a Pending status is held");
  quick.set(status({ phase: "Running" }));
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(kube.patches.length, 1, "leaving Pending sends at once, without waiting for flush");
  assert.equal(kube.status("u1").phase, "Running");
  quick.set(status({ phase: "Running", podIP: "10.0.0.1" }));
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(kube.patches.length, 2, "only the first patch is held");

  const slow = new FakeKube();
  const pending = new StatusPatcher({
    kube: slow,
    pod: { ...ref, uid: "u2" },
    initial: undefined,
    logger: silentLogger,
    firstPatchHoldMs: 30,
  });
  const started = performance.now();
  pending.set(status());
  while (slow.patches.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(
    performance.now() - started >= 25,
    "a pod still Pending is reported when the hold ends",
  );
  assert.equal(slow.status("u2").phase, "Pending");

  const flushed = new StatusPatcher({
    kube: new FakeKube(),
    pod: { ...ref, uid: "u3" },
    initial: undefined,
    logger: silentLogger,
    firstPatchHoldMs: 60_000,
  });
  flushed.set(status());
  await flushed.flush();
  assert.equal(flushed.patches, 1, "flush() ends the hold");
});
