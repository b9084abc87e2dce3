// The exec/attach and port-forward targets the kubelet API resolves from the watch cache and the
// pod controller.
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { describe, it } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { type ExecTargetDeps, resolveExecTarget } from "../../../src/app/exec-targets.ts";
import { type ForwardTargetDeps, resolveForwardTarget } from "../../../src/app/forward-targets.ts";
import type { StateName } from "../../../src/pods/states/state.ts";
import type { Container } from "../../../src/runtime/types.ts";

const pod: V1Pod = {
  metadata: { namespace: "ns", name: "web", uid: "u1" },
  spec: {
    containers: [{ name: "app", stdinOnce: true }],
    initContainers: [{ name: "init" }],
    ephemeralContainers: [{ name: "debugger", stdin: true, tty: true, targetContainerName: "app" }],
  },
  status: {
    podIP: "10.0.0.9",
    ephemeralContainerStatuses: [
      {
        name: "debugger",
        image: "t",
        imageID: "",
        ready: false,
        restartCount: 0,
        state: { waiting: { reason: "ErrImagePull" } },
      },
    ],
    containerStatuses: [
      {
        name: "app",
        image: "i",
        imageID: "",
        ready: false,
        restartCount: 0,
        state: { waiting: { reason: "ContainerCreating" } },
      },
    ],
  },
};

describe("exec and attach targets", () => {
  const running = { running: true } as Container;
  const deps = (instance: Container | undefined): ExecTargetDeps => ({
    pod: (namespace, name) => (namespace === "ns" && name === "web" ? pod : undefined),
    instance: () => instance,
  });

  it("names the running container, with its stdinOnce", () => {
    assert.deepEqual(resolveExecTarget(deps(running), "ns", "web", "app", undefined), {
      kind: "container",
      container: running,
      stdinOnce: true,
    });
    assert.deepEqual(resolveExecTarget(deps(running), "ns", "web", "init", "u1"), {
      kind: "container",
      container: running,
      stdinOnce: false,
    });
  });

  it("finds ephemeral containers (kubectl debug -it, kubectl attach -c)", () => {
    assert.deepEqual(resolveExecTarget(deps(running), "ns", "web", "debugger", "u1"), {
      kind: "container",
      container: running,
      stdinOnce: false,
    });
    assert.deepEqual(resolveExecTarget(deps(undefined), "ns", "web", "debugger", undefined), {
      kind: "not-running",
      reason: "ErrImagePull",
    });
  });

  it("answers as the kubelet when there is nothing to run in", () => {
    assert.deepEqual(resolveExecTarget(deps(running), "ns", "other", "app", undefined), {
      kind: "pod-not-found",
    });
    assert.deepEqual(resolveExecTarget(deps(running), "ns", "web", "app", "u2"), {
      kind: "pod-not-found",
    });
    assert.deepEqual(resolveExecTarget(deps(running), "ns", "web", "sidecar", undefined), {
      kind: "container-not-found",
    });
    assert.deepEqual(resolveExecTarget(deps(undefined), "ns", "web", "app", undefined), {
      kind: "not-running",
      reason: "ContainerCreating",
    });
    const exited = { running: false } as Container;
    assert.deepEqual(resolveExecTarget(deps(exited), "ns", "web", "init", undefined), {
      kind: "not-running",
    });
  });
});

describe("port-forward targets", () => {
  const dialed: string[] = [];
  const deps = (state: StateName | undefined, podIP?: string): ForwardTargetDeps => ({
    pod: (namespace, name) => (namespace === "ns" && name === "web" ? pod : undefined),
    podIP: () => podIP,
    state: () => state,
    dial: async (host, port) => {
      dialed.push(`${host}:${port}`);
      return {} as Socket;
    },
  });

  it("dials the pod's own address while its containers may run", async () => {
    for (const state of ["Initializing", "Running", "Terminating"] as const) {
      const target = resolveForwardTarget(deps(state, "10.244.1.7"), "ns", "web", "u1");
      assert.equal(target.kind, "pod", state);
      if (target.kind === "pod") await target.dial(8080);
    }
    const fallback = resolveForwardTarget(deps("Running"), "ns", "web", undefined);
    if (fallback.kind === "pod") await fallback.dial(80);
    assert.deepEqual(dialed, [
      "10.244.1.7:8080",
      "10.244.1.7:8080",
      "10.244.1.7:8080",
      "10.0.0.9:80",
    ]);
  });

  it("answers not found for another uid and not running outside those states", () => {
    assert.deepEqual(resolveForwardTarget(deps("Running"), "ns", "web", "u2"), {
      kind: "pod-not-found",
    });
    assert.deepEqual(resolveForwardTarget(deps("Running"), "ns", "gone", undefined), {
      kind: "pod-not-found",
    });
    for (const state of ["Pending", "Pulling", "Succeeded", "Terminated", undefined] as const) {
      assert.deepEqual(resolveForwardTarget(deps(state), "ns", "web", undefined), {
        kind: "not-running",
      });
    }
  });
});
