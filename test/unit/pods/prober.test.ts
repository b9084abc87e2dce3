// Exec probes with the kubelet's semantics, against a scripted command (1 probe second = 5 ms).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Probe } from "@kubernetes/client-node";
import type { ExecResult } from "../../../src/pods/ports.ts";
import { ContainerProber, execProbes, type ProbeKind } from "../../../src/pods/prober.ts";
import { until } from "./fakes.ts";

const SECOND = 5;

function harness(
  probes: Partial<Record<ProbeKind, V1Probe>>,
  answer: (args: string[], call: number) => ExecResult,
) {
  const seen = {
    calls: [] as { args: string[]; timeoutMs: number }[],
    started: 0,
    readiness: [] as boolean[],
    unhealthy: [] as string[],
    kills: [] as string[],
  };
  const prober = new ContainerProber(
    probes,
    {
      exec: async (args, timeoutMs) => {
        seen.calls.push({ args, timeoutMs });
        return answer(args, seen.calls.length);
      },
      started: () => seen.started++,
      readiness: (ready) => seen.readiness.push(ready),
      unhealthy: (message) => seen.unhealthy.push(message),
      kill: (kind) => seen.kills.push(kind),
    },
    SECOND,
  );
  return { prober, seen };
}

const ok: ExecResult = { exitCode: 0, output: "", timedOut: false };
const fail = (output: string): ExecResult => ({ exitCode: 1, output, timedOut: false });
const probe = (command: string[], fields: Partial<V1Probe> = {}): V1Probe => ({
  exec: { command },
  periodSeconds: 1,
  ...fields,
});

test("only exec probes are run; without probes the container is started and ready at once", () => {
  assert.deepEqual(
    execProbes({
      name: "app",
      livenessProbe: { httpGet: { port: 80 } },
      readinessProbe: probe(["ready"]),
      startupProbe: { exec: { command: [] } },
    }),
    { readiness: probe(["ready"]) },
  );
  const { prober, seen } = harness({}, () => ok);
  prober.start();
  assert.equal(seen.started, 1);
  assert.deepEqual(seen.readiness, [true]);
  prober.stop();
});

test("readiness starts false, turns true after successThreshold, false after failureThreshold", async () => {
  const { prober, seen } = harness(
    {
      readiness: probe(["check"], { successThreshold: 2, failureThreshold: 2, timeoutSeconds: 3 }),
    },
    (_args, call) => (call <= 4 ? ok : fail("not yet")),
  );
  prober.start();
  assert.equal(seen.started, 1);
  assert.deepEqual(seen.readiness, [], "not ready before the first success");
  await until(() => seen.readiness.length === 1, "ready");
  assert.equal(seen.calls.length, 2, "ready after two successes");
  await until(() => seen.readiness.length === 2, "unready");
  assert.deepEqual(seen.readiness, [true, false]);
  assert.equal(seen.calls.length, 6, "unready after two failures in a row");
  assert.deepEqual(seen.unhealthy.slice(0, 2), [
    "Readiness probe failed: not yet",
    "Readiness probe failed: not yet",
  ]);
  assert.equal(seen.calls[0]!.timeoutMs, 3 * SECOND);
  assert.deepEqual(seen.calls[0]!.args, ["check"]);
  prober.stop();
  const calls = seen.calls.length;
  await new Promise((resolve) => setTimeout(resolve, 5 * SECOND));
  assert.equal(seen.calls.length, calls, "nothing runs after stop()");
});

test("liveness kills after failureThreshold failures in a row; a success resets the count", async () => {
  const answers = [fail("a"), ok, fail("b"), fail("c"), fail("d")];
  const { prober, seen } = harness(
    { liveness: probe(["alive"], { failureThreshold: 3 }) },
    (_args, call) => answers[call - 1] ?? ok,
  );
  prober.start();
  await until(() => seen.kills.length === 1, "kill");
  assert.deepEqual(seen.kills, ["liveness"]);
  assert.equal(seen.calls.length, 5);
  assert.deepEqual(seen.unhealthy, [
    "Liveness probe failed: a",
    "Liveness probe failed: b",
    "Liveness probe failed: c",
    "Liveness probe failed: d",
  ]);
  await new Promise((resolve) => setTimeout(resolve, 4 * SECOND));
  assert.equal(seen.calls.length, 5, "the probe stops once it has asked for the kill");
  prober.stop();
});

test("a startup probe holds liveness and readiness back; failing it kills; timeouts and silent failures say so", async () => {
  const slow = harness(
    {
      startup: probe(["boot"], { failureThreshold: 10 }),
      liveness: probe(["alive"]),
      readiness: probe(["ready"]),
    },
    (args, call) => (args[0] === "boot" && call < 3 ? fail("") : ok),
  );
  slow.prober.start();
  await until(() => slow.seen.readiness.length === 1, "ready");
  assert.equal(slow.seen.started, 1);
  assert.deepEqual(
    slow.seen.calls.slice(0, 3).map((c) => c.args[0]),
    ["boot", "boot", "boot"],
    "nothing else runs before startup succeeds",
  );
  assert.equal(slow.seen.unhealthy[0], 'Startup probe failed: command ["boot"] exited with 1');
  slow.prober.stop();

  const never = harness(
    { startup: probe(["boot"], { failureThreshold: 2, initialDelaySeconds: 2 }) },
    () => ({ exitCode: 137, output: "", timedOut: true }),
  );
  const begun = Date.now();
  never.prober.start();
  await until(() => never.seen.kills.length === 1, "kill");
  assert.ok(Date.now() - begun >= 2 * SECOND, "initialDelaySeconds is waited out");
  assert.deepEqual(never.seen.kills, ["startup"]);
  assert.equal(never.seen.started, 0);
  assert.equal(never.seen.unhealthy[0], 'Startup probe failed: command ["boot"] timed out');
  never.prober.stop();
});
