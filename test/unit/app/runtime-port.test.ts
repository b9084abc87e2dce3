// The runtime port counts a container's restarts, and forgets a pod's containers once the pod is
// over, so that what it remembers does not grow with every pod the node ever ran.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { WasiRuntimePort } from "../../../src/app/runtime-port.ts";
import type { RunSpec } from "../../../src/pods/ports.ts";
import type { Runtime } from "../../../src/runtime/runtime.ts";
import type { Container, ExitStatus } from "../../../src/runtime/types.ts";

const scratchDir = mkdtempSync(join(tmpdir(), "wasmlet-runtime-port-"));
after(() => rmSync(scratchDir, { recursive: true, force: true }));

/** A runtime whose containers exit when told. */
function fakeRuntime() {
  const exits: Array<(status: ExitStatus) => void> = [];
  const runtime = {
    run: (spec: { id: string }) => {
      const exited = new Promise<ExitStatus>((resolve) => exits.push(resolve));
      return {
        id: spec.id,
        started: Promise.resolve(new Date()),
        exited,
        stop: async () => {},
      } as unknown as Container;
    },
  } as unknown as Runtime;
  const exitAll = () => {
    const now = new Date();
    for (const exit of exits.splice(0))
      exit({ exitCode: 0, reason: "Completed", startedAt: now, finishedAt: now } as ExitStatus);
  };
  return { runtime, exitAll };
}

function spec(id: string, uid: string, container: string): RunSpec {
  return {
    id,
    module: {} as WebAssembly.Module,
    args: ["app"],
    env: {},
    mounts: [],
    workingDir: "/",
    stdin: false,
    logPath: join(scratchDir, `${id}.log`),
    labels: { namespace: "ns", pod: "web", uid, container },
  };
}

describe("WasiRuntimePort", () => {
  it("counts a container started again as a restart, until its pod is forgotten", async () => {
    const { runtime, exitAll } = fakeRuntime();
    let restarts = 0;
    const port = new WasiRuntimePort({
      runtime,
      logRotation: { maxBytes: 1 << 20, maxFiles: 2 },
      scratchDir,
      onRestart: () => restarts++,
    });
    const run = async (id: string, uid: string, container: string) => {
      const handle = port.run(spec(id, uid, container));
      exitAll();
      await handle.exited;
    };
    await run("a1", "u1", "app");
    await run("b1", "u1", "sidecar");
    await run("c1", "u2", "app");
    assert.equal(restarts, 0, "first starts");
    await run("a2", "u1", "app");
    assert.equal(restarts, 1, "app of u1 again");
    port.forgetPod("u1");
    await run("a3", "u1", "app");
    assert.equal(restarts, 1, "after forgetPod, u1's containers start afresh");
    await run("c2", "u2", "app");
    assert.equal(restarts, 2, "other pods are remembered");
    assert.deepEqual(port.running(), []);
  });
});
