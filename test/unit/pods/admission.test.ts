import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { admit } from "../../../src/pods/admission.ts";

const handlers = new Map([
  ["wasm", "wasmlet"],
  ["runc", "runc"],
]);
const options = {
  hostPath: ["/srv/shared"],
  runtimeClassHandler: async (name: string) => handlers.get(name),
};

function pod(spec: Partial<NonNullable<V1Pod["spec"]>>): V1Pod {
  return {
    metadata: { name: "p", namespace: "ns", uid: "u" },
    spec: { containers: [{ name: "app", image: "x" }], ...spec },
  };
}

test("pods the node cannot run are rejected with a precise reason and message", async () => {
  const cases: [Partial<NonNullable<V1Pod["spec"]>>, string, RegExp][] = [
    [{ hostNetwork: true }, "HostNetworkNotSupported", /^hostNetwork is not supported by wasmlet/],
    [{ hostPID: true }, "HostNamespacesNotSupported", /^hostPID is not supported/],
    [{ hostIPC: true }, "HostNamespacesNotSupported", /^hostIPC is not supported/],
    [{ os: { name: "windows" } }, "OSNotSupported", /spec.os.name is "windows"/],
    [
      { containers: [{ name: "app", securityContext: { privileged: true } }] },
      "PrivilegedNotSupported",
      /container "app" asks for privileged mode/,
    ],
    [
      { initContainers: [{ name: "init", securityContext: { privileged: true } }] },
      "PrivilegedNotSupported",
      /container "init"/,
    ],
    [
      { containers: [{ name: "app", volumeDevices: [{ name: "d", devicePath: "/dev/x" }] }] },
      "VolumeDevicesNotSupported",
      /volumeDevices/,
    ],
    [
      { volumes: [{ name: "data", persistentVolumeClaim: { claimName: "c" } }] },
      "VolumeTypeNotSupported",
      /volume "data" is of type persistentVolumeClaim, which wasmlet does not support/,
    ],
    [
      { volumes: [{ name: "b", projected: { sources: [{ clusterTrustBundle: { path: "p" } }] } }] },
      "VolumeTypeNotSupported",
      /projected volume "b" has a clusterTrustBundle source/,
    ],
    [
      { volumes: [{ name: "h", hostPath: { path: "/etc" } }] },
      "HostPathNotAllowed",
      /volume "h" mounts hostPath \/etc/,
    ],
    [
      { runtimeClassName: "runc" },
      "RuntimeClassNotSupported",
      /RuntimeClass "runc" has handler "runc"; this node runs only the "wasmlet" handler/,
    ],
    [{ runtimeClassName: "ghost" }, "RuntimeClassNotSupported", /^RuntimeClass "ghost" not found$/],
  ];
  for (const [spec, reason, message] of cases) {
    const result = await admit(pod(spec), options);
    assert.equal(result.admitted, false, JSON.stringify(spec));
    if (!result.admitted) {
      assert.equal(result.reason, reason);
      assert.match(result.message, message);
    }
  }
});

test("supported pods are admitted; tcpSocket hooks and probes or hooks without a known action become warnings", async () => {
  const result = await admit(
    pod({
      runtimeClassName: "wasm",
      volumes: [
        { name: "c", configMap: { name: "x" } },
        { name: "h", hostPath: { path: "/srv/shared/data" } },
        { name: "p", projected: { sources: [{ serviceAccountToken: { path: "t" } }] } },
      ],
      initContainers: [
        {
          name: "proxy",
          restartPolicy: "Always",
          startupProbe: { grpc: { port: 9090 } },
          lifecycle: { preStop: { tcpSocket: { port: 15000 } } },
        },
      ],
      containers: [
        {
          name: "app",
          readinessProbe: { httpGet: { port: 8080, path: "/" } },
          livenessProbe: { tcpSocket: { port: 8080 } },
          startupProbe: { exec: { command: ["true"] } },
          lifecycle: {
            preStop: { sleep: { seconds: 2 } },
            postStart: { httpGet: { port: 8080, path: "/started" } },
          },
        },
        {
          name: "legacy",
          livenessProbe: { periodSeconds: 5 },
          lifecycle: { postStart: { tcpSocket: { port: 8080 } }, preStop: {} },
        },
      ],
    }),
    options,
  );
  assert.equal(result.admitted, true);
  if (!result.admitted) return;
  assert.deepEqual(
    result.warnings.map((w) => [w.reason, w.fieldPath, w.message]),
    [
      [
        "HookNotSupported",
        "spec.initContainers{proxy}",
        'preStop hook (tcpSocket) of container "proxy" fails whenever it runs, as on any kubelet: Kubernetes keeps tcpSocket in lifecycle hooks for compatibility only and does not support it (a FailedPreStopHook event, then the stop)',
      ],
      [
        "ProbeNotSupported",
        "spec.containers{legacy}",
        'Liveness probe of container "legacy" has no action wasmlet knows (exec, httpGet, tcpSocket or grpc) and is not run; it is never restarted for failing it',
      ],
      [
        "HookNotSupported",
        "spec.containers{legacy}",
        'postStart hook (tcpSocket) of container "legacy" fails whenever it runs, as on any kubelet: Kubernetes keeps tcpSocket in lifecycle hooks for compatibility only and does not support it (the container is killed after every start)',
      ],
      [
        "HookNotSupported",
        "spec.containers{legacy}",
        'preStop hook of container "legacy" has no action wasmlet knows (exec, httpGet or sleep) and is skipped',
      ],
    ],
  );
});

test("a failing RuntimeClass lookup is not a rejection (it is retried)", async () => {
  await assert.rejects(
    admit(pod({ runtimeClassName: "wasm" }), {
      hostPath: false,
      runtimeClassHandler: async () => Promise.reject(new Error("503")),
    }),
    /503/,
  );
});

test("under node pressure pods are admitted as the kubelet's eviction manager admits them", async () => {
  const under = (...pressure: string[]) => ({ ...options, nodePressure: () => pressure });
  const burstable = {
    containers: [{ name: "app", image: "x", resources: { requests: { memory: "1Mi" } } }],
  };
  const critical = { priority: 2_000_001_000 };
  const toleratesMemory = {
    tolerations: [
      { key: "node.kubernetes.io/memory-pressure", operator: "Exists", effect: "NoSchedule" },
    ],
  };
  const cases: [string[], Partial<NonNullable<V1Pod["spec"]>>, boolean][] = [
    [[], {}, true],
    [["DiskPressure"], {}, false],
    [["DiskPressure"], burstable, false],
    [["DiskPressure"], toleratesMemory, false],
    [["DiskPressure"], critical, true],
    [["PIDPressure"], burstable, false],
    [["MemoryPressure"], {}, false],
    [["MemoryPressure"], burstable, true],
    [["MemoryPressure"], toleratesMemory, true],
    [["MemoryPressure"], { tolerations: [{ operator: "Exists" }] }, true],
    [
      ["MemoryPressure"],
      { tolerations: [{ key: "node.kubernetes.io/disk-pressure", operator: "Exists" }] },
      false,
    ],
    [["MemoryPressure"], critical, true],
    [["MemoryPressure", "DiskPressure"], burstable, false],
  ];
  for (const [pressure, spec, admitted] of cases) {
    const result = await admit(pod(spec), under(...pressure));
    assert.equal(result.admitted, admitted, `${pressure} ${JSON.stringify(spec)}`);
    if (!result.admitted) {
      assert.equal(result.reason, "Evicted");
      assert.equal(result.message, `The node had condition: [${pressure.join(" ")}]. `);
    }
  }
});
