// Probes with the kubelet's semantics (1 probe second = 5 ms): exec probes against a scripted
// command, network probes against real servers on 127.0.0.1.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import type { V1Container, V1Probe } from "@kubernetes/client-node";
import { type ProbeOutcome, runNetworkProbe } from "../../../src/pods/net-probe.ts";
import type { ExecResult } from "../../../src/pods/ports.ts";
import { ContainerProber, type ProbeKind, runnableProbes } from "../../../src/pods/prober.ts";
import { until } from "./fakes.ts";
import { closedPort, httpServer, type Listening } from "./net-servers.ts";

const SECOND = 5;

function harness(
  probes: Partial<Record<ProbeKind, V1Probe>>,
  answer: (args: string[], call: number) => ExecResult,
  network: (probe: V1Probe, timeoutMs: number) => Promise<ProbeOutcome> = () =>
    Promise.reject(new Error("no network in this test")),
) {
  const seen = {
    calls: [] as { args: string[]; timeoutMs: number }[],
    networkCalls: 0,
    started: 0,
    readiness: [] as boolean[],
    unhealthy: [] as string[],
    warnings: [] as string[],
    kills: [] as string[],
  };
  const prober = new ContainerProber(
    probes,
    {
      exec: async (args, timeoutMs) => {
        seen.calls.push({ args, timeoutMs });
        return answer(args, seen.calls.length);
      },
      network: (probe, timeoutMs) => {
        seen.networkCalls++;
        return network(probe, timeoutMs);
      },
      started: () => seen.started++,
      readiness: (ready) => seen.readiness.push(ready),
      unhealthy: (message) => seen.unhealthy.push(message),
      warning: (message) => seen.warnings.push(message),
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

test("probes with an action run (exec needs a command); without probes the container is started and ready at once", () => {
  assert.deepEqual(
    runnableProbes({
      name: "app",
      livenessProbe: { httpGet: { port: 80 } },
      readinessProbe: probe(["ready"]),
      startupProbe: { exec: { command: [] } },
    }),
    { liveness: { httpGet: { port: 80 } }, readiness: probe(["ready"]) },
  );
  assert.deepEqual(
    runnableProbes({
      name: "app",
      livenessProbe: { tcpSocket: { port: 80 } },
      readinessProbe: {},
      startupProbe: { grpc: { port: 9090 } },
    }),
    { liveness: { tcpSocket: { port: 80 } }, startup: { grpc: { port: 9090 } } },
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

// ---------------------------------------------------------------- network probes, real servers

const servers: Listening[] = [];
after(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

/** The prober wired to the real network probes, the pod's IP being 127.0.0.1. */
function networkHarness(probes: Partial<Record<ProbeKind, V1Probe>>, container: V1Container) {
  return harness(
    probes,
    () => ({ exitCode: 0, output: "", timedOut: false }),
    (probe, timeoutMs) => runNetworkProbe(probe, container, "127.0.0.1", timeoutMs),
  );
}
// 200 probe seconds = 1 s: room for a real request on a busy machine.
const networkProbe = (fields: V1Probe): V1Probe => ({
  periodSeconds: 1,
  timeoutSeconds: 200,
  ...fields,
});

test("readiness follows an httpGet probe against a server that changes its answer", async () => {
  let status = 200;
  const server = await httpServer((_request, response) => {
    response.writeHead(status);
    response.end();
  });
  servers.push(server);
  const container: V1Container = {
    name: "app",
    ports: [{ name: "web", containerPort: server.port }],
  };
  const { prober, seen } = networkHarness(
    { readiness: networkProbe({ httpGet: { port: "web", path: "/ready" }, failureThreshold: 2 }) },
    container,
  );
  prober.start();
  await until(() => seen.readiness.length === 1, "ready");
  assert.deepEqual(seen.readiness, [true]);
  status = 503;
  await until(() => seen.readiness.length === 2, "unready");
  assert.deepEqual(seen.readiness, [true, false]);
  assert.ok(seen.unhealthy.length >= 2, "unready only after failureThreshold failures");
  assert.equal(seen.unhealthy[0], "Readiness probe failed: HTTP probe failed with statuscode: 503");
  status = 302; // A 3xx without Location is not followed: a success, with a warning.
  await until(() => seen.readiness.length === 3, "ready again");
  assert.deepEqual(seen.readiness, [true, false, true]);
  assert.equal(
    seen.warnings[0],
    "Readiness probe warning: Probe terminated redirects, Response body: ",
  );
  assert.ok(server.seen.every((request) => request.url === "/ready"));
  prober.stop();
});

test("liveness kills after failureThreshold failed httpGet probes in a row", async () => {
  let answers = [500, 200, 500, 500, 500, 200];
  const server = await httpServer((_request, response) => {
    response.writeHead(answers[0] ?? 200);
    answers = answers.slice(1);
    response.end("boom");
  });
  servers.push(server);
  const { prober, seen } = networkHarness(
    { liveness: networkProbe({ httpGet: { port: server.port }, failureThreshold: 3 }) },
    { name: "app" },
  );
  prober.start();
  await until(() => seen.kills.length === 1, "kill");
  assert.deepEqual(seen.kills, ["liveness"]);
  assert.equal(server.seen.length, 5, "a success resets the count");
  assert.deepEqual(seen.unhealthy, [
    "Liveness probe failed: HTTP probe failed with statuscode: 500",
    "Liveness probe failed: HTTP probe failed with statuscode: 500",
    "Liveness probe failed: HTTP probe failed with statuscode: 500",
    "Liveness probe failed: HTTP probe failed with statuscode: 500",
  ]);
  prober.stop();
});

test("liveness kills after failureThreshold refused tcpSocket probes", async () => {
  const port = await closedPort();
  const { prober, seen } = networkHarness(
    { liveness: networkProbe({ tcpSocket: { port }, failureThreshold: 2 }) },
    { name: "app" },
  );
  prober.start();
  await until(() => seen.kills.length === 1, "kill");
  assert.deepEqual(seen.kills, ["liveness"]);
  assert.deepEqual(seen.unhealthy, [
    `Liveness probe failed: dial tcp 127.0.0.1:${port}: connect: connection refused`,
    `Liveness probe failed: dial tcp 127.0.0.1:${port}: connect: connection refused`,
  ]);
  prober.stop();
});

test("a probe that cannot be carried out is tried 3 times, reported as errored, and never counts", async () => {
  const { prober, seen } = networkHarness(
    {
      liveness: networkProbe({ httpGet: { port: "web" }, failureThreshold: 1 }),
      readiness: networkProbe({ tcpSocket: { port: "db" }, failureThreshold: 1 }),
    },
    { name: "app" },
  );
  prober.start();
  await until(() => seen.unhealthy.length >= 6, "a few rounds");
  prober.stop();
  assert.deepEqual(seen.kills, [], "not a failure: liveness does not kill");
  assert.deepEqual(seen.readiness, [], "not a success either");
  assert.ok(
    seen.unhealthy.includes(
      'Liveness probe errored and resulted in unknown state: port "web" not found',
    ),
  );
  assert.ok(
    seen.unhealthy.includes(
      'Readiness probe errored and resulted in unknown state: port "db" not found',
    ),
  );
  assert.ok(
    seen.networkCalls >= 3 * seen.unhealthy.length &&
      seen.networkCalls <= 3 * seen.unhealthy.length + 6,
    `3 attempts per report (${seen.networkCalls} calls, ${seen.unhealthy.length} reports)`,
  );
});
