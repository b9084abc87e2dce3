// Walks the declared state graph: every state reachable from Pending, every path ends in
// Terminated, deletion possible from every state, and the table is exactly the intended one.
import assert from "node:assert/strict";
import { test } from "node:test";
import { STATE_NAMES, STATES, TRANSITIONS } from "../../../src/pods/states/index.ts";

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
