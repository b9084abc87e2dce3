import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConditionTracker, evaluateConditions } from "../../../src/node/conditions.ts";
import type { HostIdentity, HostSnapshot } from "../../../src/node/host.ts";
import { allocatable, capacity } from "../../../src/node/resources.ts";
import {
  buildStatus,
  type NodeImage,
  nodeImages,
  statusFingerprint,
} from "../../../src/node/status.ts";

const Gi = 2 ** 30;
const host: HostSnapshot = {
  at: 0,
  cpuMillis: 4000,
  memoryTotalBytes: 16 * Gi,
  memoryAvailableBytes: 8 * Gi,
  diskTotalBytes: 100 * Gi,
  diskAvailableBytes: 50 * Gi,
  pidLimit: 32768,
  pidsInUse: 300,
};
const thresholds = {
  memoryPressureThresholdBytes: 100 * 2 ** 20,
  diskPressureThresholdPercent: 10,
  pidPressureThresholdPercent: 10,
};
const identity: HostIdentity = {
  hostname: "host-a",
  machineID: "m",
  systemUUID: "s",
  bootID: "b",
  kernelVersion: "6.1.0",
  hostOS: "Debian GNU/Linux 12 (bookworm)",
};

describe("node resources", () => {
  it("reports capacity from the host and allocatable minus reservation and thresholds", () => {
    const config = {
      maxPods: 500,
      reserved: { cpuMillis: 500, memoryBytes: Gi, ephemeralStorageBytes: 10 * Gi },
      ...thresholds,
    };
    assert.deepEqual(capacity(host, config), {
      cpu: "4",
      memory: `${16 * 1024 * 1024}Ki`,
      "ephemeral-storage": `${100 * 1024 * 1024}Ki`,
      pods: "500",
    });
    assert.deepEqual(allocatable(host, config), {
      cpu: "3500m",
      memory: `${(15 * Gi - 100 * 2 ** 20) / 1024}Ki`,
      "ephemeral-storage": `${(80 * Gi) / 1024}Ki`,
      pods: "500",
    });
  });
});

describe("node conditions", () => {
  it("computes the four conditions from measurements with the kubelet's reasons", () => {
    const healthy = evaluateConditions(host, thresholds, []);
    assert.deepEqual(
      healthy.map((c) => [c.type, c.status, c.reason]),
      [
        ["Ready", "True", "KubeletReady"],
        ["MemoryPressure", "False", "KubeletHasSufficientMemory"],
        ["DiskPressure", "False", "KubeletHasNoDiskPressure"],
        ["PIDPressure", "False", "KubeletHasSufficientPID"],
      ],
    );
    const pressed = evaluateConditions(
      { ...host, memoryAvailableBytes: 50 * 2 ** 20, diskAvailableBytes: 5 * Gi, pidsInUse: 32000 },
      thresholds,
      ["runtime: worker pool not started", "wasmlet is shutting down"],
    );
    assert.deepEqual(
      pressed.map((c) => [c.type, c.status, c.reason]),
      [
        ["Ready", "False", "KubeletNotReady"],
        ["MemoryPressure", "True", "KubeletHasInsufficientMemory"],
        ["DiskPressure", "True", "KubeletHasDiskPressure"],
        ["PIDPressure", "True", "KubeletHasInsufficientPID"],
      ],
    );
    assert.equal(pressed[0]?.message, "runtime: worker pool not started; wasmlet is shutting down");
    assert.match(pressed[1]?.message ?? "", /less than 100Mi free/);
  });

  it("keeps lastTransitionTime until a status changes, and only after commit", () => {
    const tracker = new ConditionTracker();
    const t0 = new Date("2026-01-01T00:00:00Z");
    tracker.seed([{ type: "Ready", status: "True", lastTransitionTime: t0 }]);
    const t1 = new Date("2026-01-01T00:01:00Z");
    const first = tracker.apply(evaluateConditions(host, thresholds, []), t1);
    assert.deepEqual(first.conditions[0]?.lastTransitionTime, t0, "seeded Ready keeps its time");
    assert.equal(first.conditions[0]?.lastHeartbeatTime, t1);
    assert.deepEqual(
      first.changed.map((c) => c.type),
      ["MemoryPressure", "DiskPressure", "PIDPressure"],
    );
    const t2 = new Date("2026-01-01T00:02:00Z");
    const uncommitted = tracker.apply(evaluateConditions(host, thresholds, ["down"]), t2);
    assert.deepEqual(
      uncommitted.changed.map((c) => c.type),
      ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"],
    );
    first.commit();
    const notReady = tracker.apply(evaluateConditions(host, thresholds, ["down"]), t2);
    assert.deepEqual(
      notReady.changed.map((c) => c.type),
      ["Ready"],
    );
    assert.equal(notReady.conditions[0]?.lastTransitionTime, t2);
    assert.equal(notReady.conditions[1]?.lastTransitionTime, t1);
  });
});

describe("node status", () => {
  it("builds addresses, endpoint, info and features; the fingerprint ignores heartbeats", () => {
    const tracker = new ConditionTracker();
    const make = (now: Date, features: string[], images: NodeImage[] = []) => {
      const applied = tracker.apply(evaluateConditions(host, thresholds, []), now);
      applied.commit();
      return buildStatus({
        config: {
          nodeName: "n1",
          nodeIP: "10.0.0.5",
          maxPods: 500,
          reserved: { cpuMillis: 0, memoryBytes: 0, ephemeralStorageBytes: 0 },
          ...thresholds,
        },
        host,
        identity,
        kubeletPort: 10250,
        conditions: applied.conditions,
        declaredFeatures: features,
        images,
      });
    };
    const a = make(new Date(1_000), []);
    assert.deepEqual(a.addresses, [
      { type: "InternalIP", address: "10.0.0.5" },
      { type: "Hostname", address: "host-a" },
    ]);
    assert.deepEqual(a.daemonEndpoints, { kubeletEndpoint: { Port: 10250 } });
    const info = a.nodeInfo as Record<string, string>;
    assert.equal(info.operatingSystem, "wasip1");
    assert.equal(info.architecture, "wasm");
    assert.match(info.kubeletVersion ?? "", /^v1\.\d+\.\d+-wasmlet\.\d+\.\d+\.\d+/);
    assert.match(info.containerRuntimeVersion ?? "", /^wasmlet:\/\/\d+\.\d+\.\d+/);
    assert.match(info.osImage ?? "", /^WASI preview1 .* on Debian GNU\/Linux 12/);
    assert.equal("declaredFeatures" in a, false);
    const conditions = a.conditions as Array<Record<string, unknown>>;
    assert.equal(typeof conditions[0]?.lastHeartbeatTime, "string");
    const b = make(new Date(2_000), []);
    assert.equal(statusFingerprint(a), statusFingerprint(b), "heartbeat time alone is no change");
    assert.notEqual(
      statusFingerprint(a),
      statusFingerprint(make(new Date(2_000), ["ExtendWebSocketsToKubelet"])),
    );
    assert.deepEqual(make(new Date(3_000), ["ExtendWebSocketsToKubelet"]).declaredFeatures, [
      "ExtendWebSocketsToKubelet",
    ]);
    assert.equal("images" in a, false);
    assert.notEqual(
      statusFingerprint(a),
      statusFingerprint(
        make(new Date(2_000), [], [{ id: "r/a@sha256:1", reference: "r/a:1", sizeBytes: 1 }]),
      ),
      "a new image is a change",
    );
  });

  it("lists images like the kubelet: digest name first, then references; largest first, at most 50", () => {
    const images: NodeImage[] = [
      { id: "reg/small@sha256:aa", reference: "reg/small:v1", sizeBytes: 10 },
      { id: "reg/big@sha256:bb", reference: "reg/big:v2", sizeBytes: 5000 },
      { id: "reg/big@sha256:bb", reference: "reg/big:latest", sizeBytes: 5000 },
      { id: "reg/big@sha256:bb", reference: "reg/big@sha256:bb", sizeBytes: 5000 },
    ];
    assert.deepEqual(nodeImages(images), [
      { names: ["reg/big@sha256:bb", "reg/big:latest", "reg/big:v2"], sizeBytes: 5000 },
      { names: ["reg/small@sha256:aa", "reg/small:v1"], sizeBytes: 10 },
    ]);
    const many = Array.from({ length: 60 }, (_, i) => ({
      id: `reg/i${i}@sha256:${i}`,
      reference: `reg/i${i}:v1`,
      sizeBytes: i,
    }));
    const listed = nodeImages(many);
    assert.equal(listed.length, 50);
    assert.equal(listed[0]!.sizeBytes, 59);
    const tags = Array.from({ length: 8 }, (_, i) => ({
      id: "reg/t@sha256:cc",
      reference: `reg/t:v${i}`,
      sizeBytes: 1,
    }));
    assert.equal(nodeImages(tags)[0]!.names.length, 5, "at most five names per image");
  });
});
