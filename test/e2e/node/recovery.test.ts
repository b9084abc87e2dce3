// The API server goes away and comes back: wasmlet keeps retrying with growing, jittered delays,
// the real controller-manager marks the node Unknown meanwhile, and when the API server is
// reachable again the node is Ready again by itself. The outage is a TCP proxy in front of it
// (test/support/tcp-proxy.ts) that goes down.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { eventually, testCluster } from "../../support/cluster.ts";
import { GatedProxy } from "../../support/tcp-proxy.ts";
import { sample, Wasmlet, waitForReady } from "../../support/wasmlet.ts";

describe("API server outage", () => {
  let dir: string;
  let proxy: GatedProxy;
  let node: Wasmlet;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "wasmlet-outage-"));
    const cluster = testCluster();
    proxy = new GatedProxy(new URL(cluster.apiServerUrl).host);
    await proxy.up();
    const kubeconfig = parse(await readFile(cluster.kubeconfig, "utf8"));
    for (const entry of kubeconfig.clusters)
      entry.cluster.server = `https://127.0.0.1:${proxy.port}`;
    const file = join(dir, "proxied.kubeconfig");
    await writeFile(file, stringify(kubeconfig), { mode: 0o600 });
    node = await Wasmlet.start({
      kubeconfig: file,
      args: ["--allow-self-signed", "--no-tls-bootstrap", "--api-request-timeout", "3s"],
    });
  });
  after(async () => {
    await node?.cleanup();
    await proxy?.down();
    await rm(dir, { recursive: true, force: true });
  });

  it("backs off while the API server is unreachable and recovers fully when it returns", async () => {
    await waitForReady(node.nodeName, "True", 20_000);
    await node.waitForLog(/"msg":"node is up"/);
    await proxy.down();
    const unknown = await waitForReady(node.nodeName, "Unknown", 40_000);
    assert.equal(unknown.reason, "NodeStatusUnknown");
    const failures = node.logs().filter((l) => l.msg === "cannot renew the node lease; retrying");
    assert.ok(failures.length >= 3, `renewals were retried (${failures.length})`);
    assert.match(String(failures[0]?.err), /the API server did not answer/);
    const delays = failures.map((l) => Number(l.retryInMs));
    assert.ok(
      delays.every((d) => d > 0 && d <= 1000),
      `delays within the renew interval: ${delays}`,
    );
    assert.ok(
      Math.max(...delays.slice(-3)) > Math.min(...delays.slice(0, 2)),
      `delays grow: ${delays}`,
    );
    assert.ok(node.running, "wasmlet kept running through the outage");

    const back = Date.now();
    await proxy.up();
    const ready = await waitForReady(node.nodeName, "True", 20_000);
    assert.equal(ready.reason, "KubeletReady");
    assert.ok(Date.now() - back < 15_000, "Ready again within seconds of the API server's return");
    await eventually(
      async () => node.logs().some((l) => l.msg === "node lease renewed again"),
      "the lease to recover",
      10_000,
    );
    // Each failed renewal is counted, by operation and as a network failure.
    const metrics = await node.metrics();
    const counted = sample(
      metrics,
      'wasmlet_kube_api_errors_total{operation="replaceNamespacedLease",code="network"}',
    );
    assert.ok(counted >= failures.length, `${counted} lease errors counted:\n${metrics}`);
  });
});
