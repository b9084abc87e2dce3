// Walks the declared state graph: every state reachable from Pending, every path ends in
// Terminated, deletion possible from every state, and the table is exactly the intended one. Then
// the driver's overrides: a deletion sends any state's answer to Terminating, a verdict to Failed,
// always along the table, and the driver applies them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_TIMING } from "../../../src/pods/lifecycle-deps.ts";
import { STATE_NAMES, STATES, TRANSITIONS } from "../../../src/pods/states/index.ts";
import { drivenNext } from "../../../src/pods/states/overrides.ts";
import type { StateName } from "../../../src/pods/states/state.ts";
import { controllerBench, makePod, until } from "./fakes.ts";

const EXPECTED: Record<string, string[]> = {
  Pending: ["Pulling", "Succeeded", "Failed", "Terminating"],
  Pulling: ["Preparing", "Failed", "Terminating"],
  Preparing: ["Initializing", "Failed", "Terminating"],
  Initializing: ["Running", "Failed", "Terminating"],
  Running: ["Succeeded", "Failed", "Terminating"],
  Succeeded: ["Terminating"],
  Failed: ["Terminating"],
  Terminating: ["Terminated"],
  Terminated: [],
};

test("each state's name is its key and the declared transitions are the intended table", () => {
  assert.deepEqual(Object.keys(STATES), [...STATE_NAMES]);
  for (const name of STATE_NAMES) {
    assert.equal(STATES[name].name, name);
    assert.deepEqual([...TRANSITIONS[name]], EXPECTED[name], name);
  }
});

test("graph walk: reachability, deletion from anywhere, no dead ends", () => {
  const seen = new Set<string>(["Pending"]);
  const queue = ["Pending"];
  while (queue.length > 0) {
    const state = queue.shift()!;
    for (const next of TRANSITIONS[state as keyof typeof TRANSITIONS]) {
      assert.ok((STATE_NAMES as readonly string[]).includes(next), `${state} → unknown ${next}`);
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  assert.deepEqual(
    [...seen].sort(),
    [...STATE_NAMES].sort(),
    "every state is reachable from Pending",
  );
  for (const name of STATE_NAMES) {
    if (name === "Terminating" || name === "Terminated") continue;
    assert.ok(TRANSITIONS[name].includes("Terminating"), `${name} can be deleted`);
  }
  // From every state, Terminated is reachable (nothing is stuck).
  for (const start of STATE_NAMES) {
    const reach = new Set<string>([start]);
    const todo = [start as string];
    while (todo.length > 0) {
      for (const next of TRANSITIONS[todo.pop() as keyof typeof TRANSITIONS]) {
        if (reach.has(next)) continue;
        reach.add(next);
        todo.push(next);
      }
    }
    assert.ok(reach.has("Terminated"), `${start} can reach Terminated`);
  }
  // Only Terminated is final; Succeeded and Failed only wait for deletion.
  assert.deepEqual(
    STATE_NAMES.filter((n) => TRANSITIONS[n].length === 0),
    ["Terminated"],
  );
});

test("overrides: deletion → Terminating from every state, a verdict → Failed until the pod ends, never off the table", () => {
  const flags = [
    { deletionRequested: false, verdict: false },
    { deletionRequested: false, verdict: true },
    { deletionRequested: true, verdict: false },
    { deletionRequested: true, verdict: true },
  ];
  const running = STATE_NAMES.filter((n) => n !== "Terminated");
  for (const current of running) {
    for (const proposed of TRANSITIONS[current]) {
      for (const pod of flags) {
        const next = drivenNext(current, proposed, pod);
        const expected: StateName =
          pod.deletionRequested && current !== "Terminating"
            ? "Terminating"
            : pod.verdict && !["Succeeded", "Failed", "Terminating"].includes(current)
              ? "Failed"
              : proposed;
        assert.equal(next, expected, `${current} answered ${proposed} with ${JSON.stringify(pod)}`);
        assert.ok(
          next === current || TRANSITIONS[current].includes(next),
          `${current} → ${next} is declared`,
        );
      }
    }
  }
});

const bench = await controllerBench("wasmlet-transitions-");
// The kubelet's own timings, on the real clock.
const driver = () => bench.harness({ allocatable: () => ({}), timing: DEFAULT_TIMING });

test("the driver sends a state's ordinary answer to Terminating once the pod is being deleted", async () => {
  const { images, controller, statesOf } = driver();
  const pod = makePod();
  // The pull succeeds, so Pulling answers Preparing, but the deletion came while it pulled.
  const ensure = images.ensure.bind(images);
  images.ensure = async (image, options) => {
    const ensured = await ensure(image, options);
    controller.onPodUpsert({
      ...pod,
      metadata: { ...pod.metadata, deletionTimestamp: new Date(), deletionGracePeriodSeconds: 30 },
    });
    return ensured;
  };
  controller.onPodUpsert(pod);
  await until(() => statesOf(pod).includes("Terminated"), "Terminated");
  assert.deepEqual(statesOf(pod), ["Pending", "Pulling", "Terminating", "Terminated"]);
});

test("the driver sends a state's answer to Failed once a verdict is reached (active deadline)", async () => {
  const { kube, images, controller, statesOf } = driver();
  images.images.set("slow:1", { hang: true });
  const pod = makePod({
    spec: { activeDeadlineSeconds: 0, containers: [{ name: "app", image: "slow:1" }] },
  });
  // The aborted pull makes Pulling answer Terminating; the verdict makes it Failed.
  controller.onPodUpsert(pod);
  await until(() => statesOf(pod).at(-1) === "Failed", "Failed");
  assert.ok(
    !statesOf(pod).includes("Terminating"),
    "Failed comes first, Terminating only on deletion",
  );
  await until(() => kube.status(pod.metadata!.uid!).reason === "DeadlineExceeded", "the reason");
  assert.equal(kube.deletes.length, 0);
});
