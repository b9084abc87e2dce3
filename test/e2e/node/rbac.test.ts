// wasmlet with the least privilege of manifests/rbac.yaml (the ServiceAccount
// wasmlet-system/wasmlet, not cluster-admin) does everything a node does; and bad input gets a
// clear message: no permissions, wrong credentials, an unreachable API server, a port in use.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  createNamespace,
  eventually,
  kubectl,
  kubectlOk,
  testCluster,
} from "../../support/cluster.ts";
import {
  nodeIP,
  serviceAccountToken,
  tokenKubeconfig,
  Wasmlet,
  waitForReady,
} from "../../support/wasmlet.ts";
import { httpsRequest, issue, loadCA } from "../../unit/server/test-pki.ts";

const MANIFESTS = new URL("../../../manifests/", import.meta.url).pathname;

describe("wasmlet under manifests/rbac.yaml", () => {
  let dir: string;
  let kubeconfig: string;
  let node: Wasmlet | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "wasmlet-rbac-"));
    await kubectlOk([
      "apply",
      "-f",
      join(MANIFESTS, "namespace.yaml"),
      "-f",
      join(MANIFESTS, "rbac.yaml"),
    ]);
    kubeconfig = await tokenKubeconfig(dir, await serviceAccountToken("wasmlet-system", "wasmlet"));
  });
  after(async () => {
    await node?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it("is not cluster-admin", async () => {
    const sa = "system:serviceaccount:wasmlet-system:wasmlet";
    assert.equal(
      (await kubectl(["auth", "can-i", "create", "deployments", "--as", sa])).stdout.trim(),
      "no",
    );
    assert.equal(
      (await kubectl(["auth", "can-i", "delete", "nodes", "--as", sa])).stdout.trim(),
      "no",
    );
    assert.equal(
      (
        await kubectl(["auth", "can-i", "patch", "nodes", "--subresource=status", "--as", sa])
      ).stdout.trim(),
      "yes",
    );
  });

  it("registers, heartbeats, requests its certificate, records events and serves the kubelet API", async () => {
    const { caCertFile, caKeyFile } = testCluster();
    const ca = await loadCA(await readFile(caCertFile, "utf8"), await readFile(caKeyFile, "utf8"));
    const wasmlet = await Wasmlet.start({ kubeconfig, args: ["--allow-self-signed"] });
    node = wasmlet;
    await waitForReady(node.nodeName, "True", 20_000);
    await node.waitForLog(/"msg":"node is up"/);
    const lease = JSON.parse(
      await kubectlOk(["-n", "kube-node-lease", "get", "lease", node.nodeName, "-o", "json"]),
    );
    assert.equal(lease.spec.holderIdentity, node.nodeName);

    const command = await node.waitForLog(/kubectl certificate approve csr-[a-z0-9.-]+/);
    const csr = JSON.parse(
      await kubectlOk(["get", "csr", command.split(" ").at(-1) as string, "-o", "json"]),
    );
    assert.equal(csr.spec.username, "system:serviceaccount:wasmlet-system:wasmlet");

    await eventually(
      async () =>
        /Starting wasmlet\./.test(await kubectlOk(["describe", "node", wasmlet.nodeName])),
      "the Starting event (events are recorded)",
      10_000,
      250,
    );
    assert.doesNotMatch(
      node.output,
      /"level":"(warn|error)".*(Forbidden|403)/,
      "nothing was forbidden",
    );

    // TokenReview and SubjectAccessReview work under this identity.
    const base = `https://${nodeIP()}:${node.port}`;
    assert.equal((await httpsRequest(`${base}/healthz`)).status, 401);
    assert.equal(
      (await httpsRequest(`${base}/healthz`, { client: await issue(ca, "e2e-nobody") })).status,
      403,
    );
    const namespace = await createNamespace("rbac");
    try {
      const token = await serviceAccountToken(namespace.name, "nobody");
      assert.equal(
        (await httpsRequest(`${base}/healthz`, { token })).status,
        403,
        "TokenReview recognised the token",
      );
    } finally {
      await namespace.remove();
    }
    assert.equal(
      (
        await httpsRequest(`${base}/healthz`, {
          client: await issue(ca, "e2e-admin", { groups: ["system:masters"] }),
        })
      ).status,
      200,
    );
    assert.equal(
      await kubectlOk(["get", "--raw", `/api/v1/nodes/${node.nodeName}/proxy/healthz`]),
      "ok",
    );

    node.kill("SIGTERM");
    assert.equal((await node.exited).code, 0, node.output.slice(-2000));
    await waitForReady(node.nodeName, "False", 5_000);
  });
});

describe("bad input", () => {
  let dir: string;
  const started: Wasmlet[] = [];
  const start = async (options: Parameters<typeof Wasmlet.start>[0]) => {
    const node = await Wasmlet.start(options);
    started.push(node);
    return node;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "wasmlet-bad-"));
  });
  after(async () => {
    for (const node of started) await node.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it("exits non-zero naming the missing permission and the fix", async () => {
    const namespace = await createNamespace("norbac");
    try {
      const kubeconfig = await tokenKubeconfig(
        dir,
        await serviceAccountToken(namespace.name, "powerless"),
      );
      const node = await start({ kubeconfig, args: ["--allow-self-signed", "--no-tls-bootstrap"] });
      assert.equal((await node.exited).code, 1);
      assert.match(
        node.output,
        /wasmlet run: .*403 Forbidden: .*cannot get resource "leases".*\(bind the ClusterRole in manifests\/rbac\.yaml to wasmlet's identity\)/,
      );
    } finally {
      await namespace.remove();
    }
  });

  it("exits non-zero on wrong credentials", async () => {
    const kubeconfig = await tokenKubeconfig(dir, "definitely-not-a-token");
    const node = await start({ kubeconfig, args: ["--allow-self-signed", "--no-tls-bootstrap"] });
    assert.equal((await node.exited).code, 1);
    assert.match(
      node.output,
      /wasmlet run: .*401 Unauthorized.*\(the client certificate or token in the kubeconfig is wrong or expired\)/,
    );
  });

  it("keeps retrying while the API server is unreachable, saying so", async () => {
    const closed: Server = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", () => resolve()));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const kubeconfig = join(dir, "unreachable.kubeconfig");
    await writeFile(
      kubeconfig,
      `apiVersion: v1\nkind: Config\nclusters:\n- name: x\n  cluster:\n    server: https://127.0.0.1:${port}\n    insecure-skip-tls-verify: true\nusers:\n- name: x\n  user:\n    token: t\ncontexts:\n- name: x\n  context: {cluster: x, user: x}\ncurrent-context: x\n`,
    );
    const node = await start({ kubeconfig, args: ["--allow-self-signed", "--no-tls-bootstrap"] });
    await eventually(
      async () =>
        node.logs().filter((l) => l.msg === "registering the node failed; retrying").length >= 2
          ? true
          : undefined,
      "two retries",
      20_000,
    );
    const retry = node.logs().find((l) => l.msg === "registering the node failed; retrying");
    assert.match(
      String(retry?.err),
      /the API server did not answer: .*ECONNREFUSED.*wasmlet keeps retrying/,
    );
    assert.ok(node.running, "still running");
    node.kill("SIGTERM");
    assert.equal((await node.exited).code, 0, "SIGTERM during retries is a clean stop");
  });

  it("exits non-zero when the kubelet API port is taken", async () => {
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(0, "0.0.0.0", () => resolve()));
    try {
      const port = (holder.address() as { port: number }).port;
      const node = await start({ port, args: ["--allow-self-signed", "--no-tls-bootstrap"] });
      assert.equal((await node.exited).code, 1);
      assert.match(
        node.output,
        new RegExp(
          `wasmlet run: the kubelet API cannot listen on 0\\.0\\.0\\.0:${port}: the port is in use`,
        ),
      );
    } finally {
      holder.close();
    }
  });
});
