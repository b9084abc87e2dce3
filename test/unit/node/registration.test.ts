import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { parse } from "yaml";
import {
  desiredLabels,
  desiredTaints,
  mergeTaints,
  runtimeClass,
} from "../../../src/node/registration.ts";

describe("node registration", () => {
  it("labels the node as wasm, with the user's labels, never letting them change os/arch", () => {
    const labels = desiredLabels({
      nodeName: "n1",
      nodeLabels: { zone: "z1", "kubernetes.io/os": "linux", "kubernetes.io/hostname": "custom" },
    });
    assert.deepEqual(labels, {
      "kubernetes.io/hostname": "custom",
      zone: "z1",
      "kubernetes.io/os": "wasip1",
      "kubernetes.io/arch": "wasm",
      "node.kubernetes.io/wasmlet": "true",
    });
    // The hostname label names the node (several wasmlet nodes may share a host).
    assert.equal(
      desiredLabels({ nodeName: "wasm-7", nodeLabels: {} })["kubernetes.io/hostname"],
      "wasm-7",
    );
  });

  it("always carries the wasm taint, plus the user's", () => {
    assert.deepEqual(
      desiredTaints({
        registerWithTaints: [
          { key: "dedicated", value: "edge", effect: "NoExecute" },
          { key: "wasmlet.io/wasm", value: "yes", effect: "NoSchedule" },
        ],
      }),
      [
        { key: "wasmlet.io/wasm", value: "yes", effect: "NoSchedule" },
        { key: "dedicated", value: "edge", effect: "NoExecute" },
      ],
    );
  });

  it("adds missing taints and keeps everyone else's", () => {
    const wasm = { key: "wasmlet.io/wasm", value: "true", effect: "NoSchedule" };
    const unreachable = {
      key: "node.kubernetes.io/unreachable",
      effect: "NoExecute",
      timeAdded: new Date(0),
    };
    assert.equal(mergeTaints([unreachable, wasm], [wasm]), undefined, "nothing to do");
    assert.deepEqual(mergeTaints([unreachable], [wasm]), [unreachable, wasm]);
    assert.deepEqual(mergeTaints([{ ...wasm, value: "false" }], [wasm]), [wasm]);
  });

  it("creates the same RuntimeClass as manifests/runtimeclass.yaml", async () => {
    const manifest = parse(
      await readFile(new URL("../../../manifests/runtimeclass.yaml", import.meta.url), "utf8"),
    );
    assert.deepEqual(JSON.parse(JSON.stringify(runtimeClass())), manifest);
  });
});
