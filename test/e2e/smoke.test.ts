// Proves the test bed is real: a control plane that real kubectl talks to, a real scheduler, and
// a real OCI registry that stores and serves a wasm guest.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { after, before, test } from "node:test";
import { createNamespace, eventually, kubectlOk, testCluster } from "../support/cluster.ts";
import { buildGuest } from "../support/guests.ts";

let namespace: Awaited<ReturnType<typeof createNamespace>>;

before(async () => {
  namespace = await createNamespace("smoke");
});
after(async () => {
  await namespace?.remove();
});

test("real kubectl lists namespaces through the generated kubeconfig", async () => {
  const names = (await kubectlOk(["get", "namespaces", "-o", "name"])).split("\n");
  assert.ok(names.includes("namespace/default"), names.join(","));
  assert.ok(names.includes("namespace/kube-system"), names.join(","));
  const version = JSON.parse(await kubectlOk(["version", "-o", "json"]));
  assert.equal(version.serverVersion.gitVersion, testCluster().kubernetesVersion);
});

test("the real scheduler sees a pod and leaves it Pending when no node fits", async () => {
  await kubectlOk([
    "-n",
    namespace.name,
    "run",
    "lonely",
    "--image=registry.invalid/none:1",
    "--restart=Never",
  ]);
  const condition = await eventually(async () => {
    const pod = JSON.parse(
      await kubectlOk(["-n", namespace.name, "get", "pod", "lonely", "-o", "json"]),
    );
    return pod.status?.conditions?.find((c: { type: string }) => c.type === "PodScheduled");
  }, "the scheduler to report on the pod");
  assert.equal(condition.status, "False");
  assert.equal(condition.reason, "Unschedulable");
  const pod = JSON.parse(
    await kubectlOk(["-n", namespace.name, "get", "pod", "lonely", "-o", "json"]),
  );
  assert.equal(pod.status.phase, "Pending");
});

test("a wasm guest is pushed to the registry over plain HTTP and pulled back intact", async () => {
  const registry = `http://${testCluster().registry}`;
  const repository = `${namespace.name}/hello`;
  const wasm = await readFile(await buildGuest("hello"));
  const config = Buffer.from(JSON.stringify({ architecture: "wasm", os: "wasip1" }));
  const digest = (bytes: Buffer) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

  const upload = async (bytes: Buffer) => {
    const start = await fetch(`${registry}/v2/${repository}/blobs/uploads/`, { method: "POST" });
    assert.equal(start.status, 202);
    const location = new URL(start.headers.get("location")!, registry);
    location.searchParams.set("digest", digest(bytes));
    const put = await fetch(location, {
      method: "PUT",
      body: new Uint8Array(bytes),
      headers: { "content-type": "application/octet-stream" },
    });
    assert.equal(put.status, 201, await put.text());
  };
  await upload(wasm);
  await upload(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.wasm.config.v0+json",
        digest: digest(config),
        size: config.length,
      },
      layers: [{ mediaType: "application/wasm", digest: digest(wasm), size: wasm.length }],
    }),
  );
  const put = await fetch(`${registry}/v2/${repository}/manifests/v1`, {
    method: "PUT",
    body: new Uint8Array(manifest),
    headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
  });
  assert.equal(put.status, 201, await put.text());

  const got = await fetch(`${registry}/v2/${repository}/manifests/v1`, {
    headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  assert.equal(got.headers.get("docker-content-digest"), digest(manifest));
  const layer = JSON.parse(await got.text()).layers[0];
  const blob = Buffer.from(
    await (await fetch(`${registry}/v2/${repository}/blobs/${layer.digest}`)).arrayBuffer(),
  );
  assert.equal(digest(blob), digest(wasm));
  assert.ok(WebAssembly.validate(blob));
});
