import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import {
  type ContainerRecord,
  type PodRecord,
  recordFromPod,
} from "../../../src/pods/pod-record.ts";
import {
  buildStatus,
  kubeTime,
  podPhase,
  qosClass,
  type StateDoc,
} from "../../../src/pods/status.ts";

type S = { name: string; state: StateDoc; lastState: StateDoc; ready: boolean; started: boolean };
const running = (name: string, started = true): S => ({
  name,
  state: { running: { startedAt: "t" } },
  lastState: {},
  ready: started,
  started,
});
const waiting = (name: string, last?: number): S => ({
  name,
  state: { waiting: { reason: "x" } },
  lastState: last === undefined ? {} : { terminated: { exitCode: last } },
  ready: false,
  started: false,
});
const exited = (name: string, exitCode: number): S => ({
  name,
  state: { terminated: { exitCode } },
  lastState: {},
  ready: false,
  started: false,
});

/** Init containers named `s…` are sidecars (restartPolicy Always). */
function spec(restartPolicy: string, inits: string[] = []): V1Pod {
  return {
    spec: {
      restartPolicy,
      initContainers: inits.map((name) =>
        name.startsWith("s") ? { name, restartPolicy: "Always" } : { name },
      ),
      containers: [{ name: "a" }, { name: "b" }],
    },
  };
}

test("phase follows the kubelet's getPhase", () => {
  const cases: [string, V1Pod, S[], S[], boolean, string][] = [
    ["nothing yet", spec("Always"), [], [], false, "Pending"],
    ["one waiting", spec("Always"), [], [running("a"), waiting("b")], false, "Pending"],
    ["all running", spec("Always"), [], [running("a"), running("b")], false, "Running"],
    ["always, all exited", spec("Always"), [], [exited("a", 0), exited("b", 1)], false, "Running"],
    [
      "never, all exited 0",
      spec("Never"),
      [],
      [exited("a", 0), exited("b", 0)],
      false,
      "Succeeded",
    ],
    ["never, one failed", spec("Never"), [], [exited("a", 0), exited("b", 2)], false, "Failed"],
    [
      "onfailure, one failed",
      spec("OnFailure"),
      [],
      [exited("a", 0), exited("b", 2)],
      false,
      "Running",
    ],
    [
      "crashloop counts as stopped",
      spec("Always"),
      [],
      [running("a"), waiting("b", 1)],
      false,
      "Running",
    ],
    [
      "terminal pod, all ok",
      spec("Always"),
      [],
      [exited("a", 0), exited("b", 0)],
      true,
      "Succeeded",
    ],
    [
      "terminal pod, a failure",
      spec("Always"),
      [],
      [exited("a", 0), exited("b", 137)],
      true,
      "Failed",
    ],
    [
      "init running",
      spec("Always", ["i"]),
      [running("i")],
      [waiting("a"), waiting("b")],
      false,
      "Pending",
    ],
    [
      "init failed, never",
      spec("Never", ["i"]),
      [exited("i", 1)],
      [waiting("a"), waiting("b")],
      false,
      "Failed",
    ],
    [
      "init failed, always (restarting)",
      spec("Always", ["i"]),
      [waiting("i", 1)],
      [waiting("a"), waiting("b")],
      false,
      "Pending",
    ],
    [
      "init done, apps run",
      spec("Always", ["i"]),
      [exited("i", 0)],
      [running("a"), running("b")],
      false,
      "Running",
    ],
    ["unknown container", spec("Always"), [], [running("a")], false, "Pending"],
    [
      "sidecar running, not started yet",
      spec("Always", ["s"]),
      [running("s", false)],
      [waiting("a"), waiting("b")],
      false,
      "Pending",
    ],
    [
      "sidecar started, apps running",
      spec("Always", ["i", "s"]),
      [exited("i", 0), running("s")],
      [running("a"), running("b")],
      false,
      "Running",
    ],
    [
      "sidecar restarting while apps run",
      spec("Always", ["s"]),
      [waiting("s", 1)],
      [running("a"), running("b")],
      false,
      "Running",
    ],
    [
      "never: apps exited 0, sidecar stopped",
      spec("Never", ["s"]),
      [exited("s", 143)],
      [exited("a", 0), exited("b", 0)],
      true,
      "Succeeded",
    ],
    [
      "onfailure: apps exited 0, sidecar still running",
      spec("OnFailure", ["s"]),
      [running("s")],
      [exited("a", 0), exited("b", 0)],
      false,
      "Running",
    ],
  ];
  for (const [name, pod, inits, statuses, terminal, phase] of cases) {
    assert.equal(podPhase(pod, inits, statuses, terminal), phase, name);
  }
});

test("qosClass follows GetPodQOS", () => {
  const withResources = (
    ...resources: { requests?: Record<string, string>; limits?: Record<string, string> }[]
  ): V1Pod => ({
    spec: { containers: resources.map((r, i) => ({ name: `c${i}`, resources: r })) },
  });
  assert.equal(qosClass(withResources({})), "BestEffort");
  assert.equal(
    qosClass(
      withResources({ limits: { cpu: "1", memory: "1Gi" }, requests: { cpu: "1", memory: "1Gi" } }),
    ),
    "Guaranteed",
  );
  // Without the API server's defaulting of requests to limits, GetPodQOS says Burstable.
  assert.equal(qosClass(withResources({ limits: { cpu: "1", memory: "1Gi" } })), "Burstable");
  assert.equal(
    qosClass(
      withResources({
        limits: { cpu: "1", memory: "1Gi" },
        requests: { cpu: "500m", memory: "1Gi" },
      }),
    ),
    "Burstable",
  );
  assert.equal(qosClass(withResources({ requests: { cpu: "100m" } })), "Burstable");
  const both = { limits: { cpu: "1", memory: "1Gi" }, requests: { cpu: "1", memory: "1Gi" } };
  assert.equal(qosClass(withResources(both, both)), "Guaranteed");
  assert.equal(qosClass(withResources(both, {})), "Burstable");
  assert.equal(qosClass(withResources({ requests: { "nvidia.com/gpu": "1" } })), "BestEffort");
});

function recordFor(
  pod: V1Pod,
  mutate: (containers: Map<string, ContainerRecord>) => void,
): PodRecord {
  const record = recordFromPod(pod, new Date("2025-01-01T00:00:00Z"));
  mutate(record.containers);
  return record;
}

test("status: conditions, IPs, container statuses in the kubelet's shape", () => {
  const pod: V1Pod = {
    metadata: { name: "p", namespace: "ns", uid: "u", generation: 3 },
    spec: {
      restartPolicy: "Always",
      readinessGates: [{ conditionType: "example.com/lb" }],
      initContainers: [{ name: "init", image: "i:1" }],
      containers: [
        { name: "a", image: "a:1", volumeMounts: [{ name: "v", mountPath: "/v", readOnly: true }] },
        { name: "b", image: "b:1" },
      ],
    },
    status: {
      conditions: [
        { type: "Ready", status: "False", lastTransitionTime: new Date("2024-01-01T00:00:00Z") },
      ],
    },
  };
  const now = new Date("2025-01-01T00:00:10.500Z");
  const record = recordFor(pod, (c) => {
    c.get("init")!.state = {
      kind: "terminated",
      exitCode: 0,
      reason: "Completed",
      finishedAt: now,
      instanceId: "i1",
    };
    c.get("init")!.ready = true;
    c.get("a")!.state = { kind: "running", startedAt: now };
    c.get("a")!.ready = true;
    c.get("a")!.started = true;
    c.get("a")!.instanceId = "abc";
    c.get("a")!.restartCount = 2;
    c.get("a")!.lastState = {
      kind: "terminated",
      exitCode: 1,
      reason: "Error",
      finishedAt: now,
      instanceId: "old",
    };
    c.get("b")!.state = { kind: "waiting", reason: "CrashLoopBackOff", message: "back-off 10s" };
    c.get("b")!.lastState = {
      kind: "terminated",
      exitCode: 2,
      reason: "Error",
      finishedAt: now,
      instanceId: "b0",
    };
  });
  record.readyToStart = true;
  const status = buildStatus(pod, record, { nodeIPs: ["10.0.0.7"], now });
  assert.equal(status.phase, "Running");
  assert.deepEqual(
    status.conditions.map((c) => [c.type, c.status, c.reason, c.message]),
    [
      ["PodReadyToStartContainers", "True", undefined, undefined],
      ["Initialized", "True", undefined, undefined],
      ["Ready", "False", "ContainersNotReady", "containers with unready status: [b]"],
      ["ContainersReady", "False", "ContainersNotReady", "containers with unready status: [b]"],
    ],
  );
  assert.equal(
    status.conditions.find((c) => c.type === "Ready")!.lastTransitionTime,
    "2024-01-01T00:00:00Z",
    "unchanged status keeps its transition time",
  );
  assert.equal(
    status.conditions.find((c) => c.type === "Initialized")!.lastTransitionTime,
    "2025-01-01T00:00:10Z",
  );
  assert.deepEqual(
    [status.hostIP, status.podIP, status.hostIPs, status.podIPs],
    ["10.0.0.7", "10.0.0.7", [{ ip: "10.0.0.7" }], [{ ip: "10.0.0.7" }]],
  );
  assert.equal(status.qosClass, "BestEffort");
  assert.equal(status.observedGeneration, 3);
  assert.equal(status.startTime, "2025-01-01T00:00:00Z");
  assert.deepEqual(status.containerStatuses[0], {
    name: "a",
    state: { running: { startedAt: "2025-01-01T00:00:10Z" } },
    lastState: {
      terminated: {
        exitCode: 1,
        reason: "Error",
        finishedAt: "2025-01-01T00:00:10Z",
        containerID: "wasmlet://old",
      },
    },
    ready: true,
    restartCount: 2,
    image: "a:1",
    imageID: "",
    containerID: "wasmlet://abc",
    started: true,
    volumeMounts: [{ name: "v", mountPath: "/v", readOnly: true, recursiveReadOnly: "Disabled" }],
  });
  assert.deepEqual(status.containerStatuses[1]!.state, {
    waiting: { reason: "CrashLoopBackOff", message: "back-off 10s" },
  });
  assert.equal(status.initContainerStatuses![0]!.ready, true);

  // Readiness gates: containers ready, gate missing, then False.
  for (const c of record.containers.values()) if (!c.init) c.ready = true;
  const gated = buildStatus(pod, record, { nodeIPs: [], now });
  assert.deepEqual(
    gated.conditions.filter((c) => c.type === "Ready").map((c) => [c.status, c.reason, c.message]),
    [
      [
        "False",
        "ReadinessGatesNotReady",
        'corresponding condition of pod readiness gate "example.com/lb" does not exist.',
      ],
    ],
  );
  pod.status!.conditions!.push({ type: "example.com/lb", status: "False" });
  assert.match(
    buildStatus(pod, record, { nodeIPs: [], now }).conditions[2]!.message!,
    /is not "True", but False/,
  );
  pod.status!.conditions![1]!.status = "True";
  assert.equal(buildStatus(pod, record, { nodeIPs: [], now }).conditions[2]!.status, "True");
});

test("Initialized lists incomplete init containers; terminal pods get PodCompleted/PodFailed", () => {
  const pod: V1Pod = {
    metadata: { uid: "u" },
    spec: {
      restartPolicy: "Never",
      initContainers: [{ name: "i1" }, { name: "i2" }],
      containers: [{ name: "a" }],
    },
  };
  const now = new Date();
  const record = recordFor(pod, () => undefined);
  const initial = buildStatus(pod, record, { nodeIPs: [], now });
  assert.equal(initial.phase, "Pending");
  assert.deepEqual(initial.containerStatuses[0]!.state, { waiting: { reason: "PodInitializing" } });
  assert.equal(initial.conditions[1]!.message, "containers with incomplete status: [i1 i2]");

  const done = recordFor(pod, (c) => {
    c.get("i1")!.state = { kind: "terminated", exitCode: 0, reason: "Completed", finishedAt: now };
    c.get("i2")!.state = { kind: "terminated", exitCode: 0, reason: "Completed", finishedAt: now };
    c.get("a")!.state = { kind: "terminated", exitCode: 0, reason: "Completed", finishedAt: now };
  });
  done.terminal = true;
  const ok = buildStatus(pod, done, { nodeIPs: [], now });
  assert.equal(ok.phase, "Succeeded");
  assert.deepEqual(
    ok.conditions.map((c) => [c.type, c.status, c.reason]),
    [
      ["PodReadyToStartContainers", "False", undefined],
      ["Initialized", "True", undefined],
      ["Ready", "False", "PodCompleted"],
      ["ContainersReady", "False", "PodCompleted"],
    ],
  );

  // A terminal pod whose containers never finished is Failed (the kubelet's TerminatePod).
  const stopped = recordFor(pod, () => undefined);
  stopped.terminal = true;
  assert.equal(buildStatus(pod, stopped, { nodeIPs: [], now }).phase, "Failed");

  const rejected = recordFor(pod, () => undefined);
  rejected.rejected = true;
  rejected.verdict = {
    phase: "Failed",
    reason: "HostNetworkNotSupported",
    message: "Pod was rejected: x",
  };
  const r = buildStatus(pod, rejected, { nodeIPs: ["1.2.3.4"], now });
  assert.deepEqual(
    [r.phase, r.reason, r.message, r.conditions, r.containerStatuses],
    ["Failed", "HostNetworkNotSupported", "Pod was rejected: x", [], []],
  );
});

test("a record rebuilt from the API after a wasmlet restart", () => {
  const pod: V1Pod = {
    metadata: { uid: "u" },
    spec: {
      initContainers: [{ name: "i", image: "i" }],
      containers: [
        { name: "a", image: "a" },
        { name: "b", image: "b" },
        { name: "c", image: "c" },
      ],
    },
    status: {
      startTime: new Date("2025-01-01T00:00:00Z"),
      initContainerStatuses: [
        {
          name: "i",
          image: "i",
          imageID: "i@sha",
          ready: true,
          restartCount: 0,
          state: { terminated: { exitCode: 0, containerID: "wasmlet://i0" } },
        },
      ],
      containerStatuses: [
        {
          name: "a",
          image: "a",
          imageID: "a@sha",
          ready: true,
          restartCount: 2,
          containerID: "wasmlet://a2",
          state: { running: { startedAt: new Date("2025-01-01T00:01:00Z") } },
        },
        {
          name: "b",
          image: "b",
          imageID: "",
          ready: false,
          restartCount: 4,
          containerID: "wasmlet://b4",
          state: { waiting: { reason: "CrashLoopBackOff" } },
          lastState: { terminated: { exitCode: 1, containerID: "wasmlet://b4" } },
        },
        {
          name: "c",
          image: "c",
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: "ContainerCreating" } },
        },
      ],
    },
  };
  const now = new Date("2025-01-01T01:00:00Z");
  const record = recordFromPod(pod, now);
  assert.equal(kubeTime(record.startTime), "2025-01-01T00:00:00Z");
  const i = record.containers.get("i")!;
  assert.deepEqual([i.state.kind, i.instanceId], ["terminated", "i0"]);
  const a = record.containers.get("a")!;
  assert.equal(a.restartCount, 2);
  assert.equal(a.instanceId, "a2");
  assert.equal(a.state.kind, "terminated");
  assert.equal(a.lastState?.reason, "ContainerStatusUnknown");
  assert.equal(a.lastState?.exitCode, 137);
  const b = record.containers.get("b")!;
  assert.deepEqual([b.state.kind, b.restartCount, b.lastState], ["terminated", 4, undefined]);
  const c = record.containers.get("c")!;
  assert.deepEqual([c.state.kind, c.instanceId], ["waiting", undefined]);
});
