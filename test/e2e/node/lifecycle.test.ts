// A wasmlet node's life against the real control plane and the real kubectl: it registers Ready
// within seconds with honest status, heartbeats through its Lease, survives SIGKILL (the real
// controller-manager marks it Unknown, a restart brings it back), refuses a second holder of its
// name, and stops cleanly on SIGTERM.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { after, before, describe, it } from "node:test";
import type { V1NodeStatus } from "@kubernetes/client-node";
import { eventually, kubectlOk } from "../../support/cluster.ts";
import { getNode, nodeIP, readyCondition, Wasmlet, waitForReady } from "../../support/wasmlet.ts";

describe("wasmlet node lifecycle", () => {
  let node: Wasmlet;
  const started = Date.now();

  before(async () => {
    node = await Wasmlet.start({
      args: [
        "--allow-self-signed",
        "--no-tls-bootstrap",
        "--node-labels",
        "e2e.wasmlet.io/suite=lifecycle",
      ],
    });
  });
  after(async () => {
    await node?.cleanup();
  });

  it("shows up Ready in `kubectl get nodes` within seconds, saying what it is", async () => {
    await waitForReady(node.nodeName, "True", 20_000);
    assert.ok(Date.now() - started < 20_000);
    const wide = await kubectlOk(["get", "node", node.nodeName, "-o", "wide", "--no-headers"]);
    const columns = wide.trim().split(/\s{2,}/);
    // NAME STATUS ROLES AGE VERSION INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME
    assert.equal(columns[0], node.nodeName);
    assert.equal(columns[1], "Ready");
    assert.match(columns[4] ?? "", /^v1\.\d+\.\d+-wasmlet\.\d+\.\d+\.\d+$/);
    assert.equal(columns[5], nodeIP());
    assert.match(columns[7] ?? "", /^WASI preview1 \(wasmlet, Node \d+\.\d+\.\d+\) on /);
    assert.match(columns[9] ?? "", /^wasmlet:\/\/\d+\.\d+\.\d+$/);
  });

  it("describes honest capacity, labels, taint, conditions and system info", async () => {
    // Events are written just after the first status: wait for the first one to be listed.
    const described = await eventually(
      async () => {
        const text = await kubectlOk(["describe", "node", node.nodeName]);
        return /Starting wasmlet\./.test(text) ? text : undefined;
      },
      "the Starting event in `kubectl describe node`",
      10_000,
      250,
    );
    for (const label of [
      "kubernetes.io/os=wasip1",
      "kubernetes.io/arch=wasm",
      "node.kubernetes.io/wasmlet=true",
      "kubernetes.io/hostname=",
      "e2e.wasmlet.io/suite=lifecycle",
    ]) {
      assert.ok(described.includes(label), `label ${label} in:\n${described}`);
    }
    // (The controller-manager's not-ready taint may still be listed for a moment after Ready.)
    assert.match(described, /Taints:[\s\S]*wasmlet\.io\/wasm=true:NoSchedule[\s\S]*Unschedulable:/);
    assert.match(described, /Ready\s+True .* KubeletReady\s+wasmlet is posting ready status/);
    assert.match(described, /MemoryPressure\s+False .* KubeletHasSufficientMemory/);
    assert.match(described, /DiskPressure\s+False .* KubeletHasNoDiskPressure/);
    assert.match(described, /PIDPressure\s+False .* KubeletHasSufficientPID/);
    assert.match(described, /Operating System:\s+wasip1/);
    assert.match(described, /Architecture:\s+wasm/);
    assert.match(described, /Container Runtime Version:\s+wasmlet:\/\//);
    assert.match(described, /Normal\s+Starting\s+.*wasmlet\s+Starting wasmlet\./);

    const status = (await getNode(node.nodeName))?.status as Required<V1NodeStatus>;
    assert.equal(status.capacity.cpu, String(availableParallelism()));
    const memTotalKiB = Number(
      /^MemTotal:\s+(\d+) kB/m.exec(await readFile("/proc/meminfo", "utf8"))?.[1],
    );
    assert.equal(status.capacity.memory, `${memTotalKiB}Ki`, "memory capacity is the host's");
    assert.equal(status.capacity.pods, "500");
    assert.equal(
      status.allocatable.memory,
      `${memTotalKiB - 100 * 1024}Ki`,
      "minus the memory pressure threshold",
    );
    assert.ok(Number.parseInt(status.capacity["ephemeral-storage"] ?? "", 10) > 0);
    assert.deepEqual(status.daemonEndpoints, { kubeletEndpoint: { Port: node.port } });
    assert.deepEqual(
      status.addresses.map((a: { type: string }) => a.type),
      ["InternalIP", "Hostname"],
    );
  });

  it("keeps a Lease in kube-node-lease, owned by the Node, renewed every interval", async () => {
    const nodeUid = (await getNode(node.nodeName))?.metadata?.uid;
    const read = async () =>
      JSON.parse(
        await kubectlOk(["-n", "kube-node-lease", "get", "lease", node.nodeName, "-o", "json"]),
      );
    const first = await read();
    assert.equal(first.spec.holderIdentity, node.nodeName);
    assert.equal(first.spec.leaseDurationSeconds, 40);
    assert.deepEqual(first.metadata.ownerReferences, [
      { apiVersion: "v1", kind: "Node", name: node.nodeName, uid: nodeUid },
    ]);
    const later = await eventually(
      async () => {
        const lease = await read();
        return Date.parse(lease.spec.renewTime) > Date.parse(first.spec.renewTime)
          ? lease
          : undefined;
      },
      "the lease's renewTime to advance",
      10_000,
      250,
    );
    assert.ok(Date.parse(later.spec.renewTime) - Date.parse(first.spec.renewTime) < 5_000);
  });

  it("creates the RuntimeClass wasm that steers pods to wasmlet nodes", async () => {
    const rc = JSON.parse(await kubectlOk(["get", "runtimeclass", "wasm", "-o", "json"]));
    assert.equal(rc.handler, "wasmlet");
    assert.deepEqual(rc.scheduling.nodeSelector, { "node.kubernetes.io/wasmlet": "true" });
    assert.deepEqual(rc.scheduling.tolerations, [
      { key: "wasmlet.io/wasm", operator: "Equal", value: "true", effect: "NoSchedule" },
    ]);
  });

  it("is reachable through the API server's node proxy, and on its plain healthz port", async () => {
    assert.equal(
      await kubectlOk(["get", "--raw", `/api/v1/nodes/${node.nodeName}/proxy/healthz`]),
      "ok",
    );
    const plain = await fetch(`http://127.0.0.1:${node.healthzPort}/healthz`);
    assert.equal(plain.status, 200);
    assert.equal(await plain.text(), "ok");
  });

  it("refuses to run a second process under the same node name", async () => {
    const twin = await Wasmlet.start({
      nodeName: node.nodeName,
      args: ["--allow-self-signed", "--no-tls-bootstrap"],
    });
    try {
      const { code } = await twin.exited;
      assert.equal(code, 1);
      assert.match(
        twin.output,
        new RegExp(
          `wasmlet run: the node name ${node.nodeName} is in use: process ${node.pid} on this host holds its Lease`,
        ),
      );
      assert.equal(
        (await readyCondition(node.nodeName))?.status,
        "True",
        "the twin left the node alone",
      );
    } finally {
      await twin.cleanup({ keepNode: true });
    }
  });

  it("goes Unknown after SIGKILL (the real controller-manager) and comes back Ready on restart", async () => {
    node.kill("SIGKILL");
    await node.exited;
    const unknown = await waitForReady(node.nodeName, "Unknown", 40_000);
    assert.equal(unknown.reason, "NodeStatusUnknown");
    const node2 = await Wasmlet.start({
      nodeName: node.nodeName,
      dataDir: node.dataDir,
      port: node.port,
      args: ["--allow-self-signed", "--no-tls-bootstrap"],
    });
    const previous = node;
    node = node2;
    await previous.cleanup({ keepNode: true, keepDataDir: true });
    const ready = await waitForReady(node.nodeName, "True", 20_000);
    assert.equal(ready.reason, "KubeletReady");
    assert.match(
      node.output,
      /taking over the node from a previous wasmlet on this host that is gone/,
    );
  });

  it("stops cleanly on SIGTERM and leaves the Node NotReady, saying why", async () => {
    node.kill("SIGTERM");
    const { code } = await node.exited;
    assert.equal(code, 0, node.output.slice(-2000));
    const ready = await readyCondition(node.nodeName);
    assert.equal(ready?.status, "False");
    assert.equal(ready?.reason, "KubeletNotReady");
    assert.equal(ready?.message, "wasmlet stopped (SIGTERM)");
    assert.match(node.output, /"msg":"wasmlet stopped"/);
    const described = await kubectlOk(["describe", "node", node.nodeName]);
    assert.match(described, /Shutdown\s+.*wasmlet stopped \(SIGTERM\)/);
  });
});
