// The kubelet API as the cluster sees it: a serving certificate issued through a
// kubernetes.io/kubelet-serving CSR approved with the exact command wasmlet logs; requests from
// anonymous, unauthorized and authorized callers (client certificates from the cluster CA, bearer
// tokens through TokenReview, authorization through SubjectAccessReview); and the API server's
// own calls through the node proxy.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { createNamespace, kubectl, kubectlOk, testCluster } from "../../support/cluster.ts";
import { nodeIP, serviceAccountToken, Wasmlet, waitForReady } from "../../support/wasmlet.ts";
import { httpsRequest, type IssuedCert, issue, loadCA } from "../../unit/server/test-pki.ts";

describe("the kubelet API", () => {
  let node: Wasmlet;
  let namespace: Awaited<ReturnType<typeof createNamespace>>;
  let clusterCA: string;
  let base: string;
  let admin: IssuedCert;
  let nobody: IssuedCert;
  const roleName = `e2e-node-healthz-${Math.random().toString(16).slice(2, 8)}`;

  before(async () => {
    const cluster = testCluster();
    clusterCA = await readFile(cluster.caCertFile, "utf8");
    const ca = await loadCA(clusterCA, await readFile(cluster.caKeyFile, "utf8"));
    admin = await issue(ca, "e2e-admin", { groups: ["system:masters"] });
    nobody = await issue(ca, "e2e-nobody");
    namespace = await createNamespace("kubelet-api");
    // The default: request a kubelet-serving certificate, no self-signed fallback.
    node = await Wasmlet.start();
    base = `https://${nodeIP()}:${node.port}`;
  });
  after(async () => {
    await node?.cleanup();
    await kubectl(["delete", "clusterrole,clusterrolebinding", roleName, "--ignore-not-found"]);
    await namespace?.remove();
  });

  it("asks for a kubelet-serving certificate, names the approve command, and serves it once approved", async () => {
    await waitForReady(node.nodeName, "True", 20_000);
    const command = await node.waitForLog(/kubectl certificate approve csr-[a-z0-9.-]+/);
    const csrName = command.split(" ").at(-1) as string;
    const csr = JSON.parse(await kubectlOk(["get", "csr", csrName, "-o", "json"]));
    assert.equal(csr.spec.signerName, "kubernetes.io/kubelet-serving");
    assert.deepEqual(csr.spec.usages, ["digital signature", "server auth"]);
    await assert.rejects(
      httpsRequest(`${base}/healthz`, { client: admin }),
      "no certificate, no handshake, before approval",
    );

    await kubectlOk(command.replace(/^kubectl /, "").split(" "));
    await node.waitForLog(/"source":"csr".*"msg":"serving certificate in use"/);
    const answer = await httpsRequest(`${base}/healthz`, { client: admin, ca: clusterCA });
    assert.equal(answer.status, 200, "the served certificate verifies against the cluster CA");
    const served = new X509Certificate(answer.peerCert);
    assert.match(served.subject, new RegExp(`CN=system:node:${node.nodeName}`));
    assert.match(served.subject, /O=system:nodes/);
    assert.ok(served.checkIP(nodeIP()), "its IP SAN is the node's InternalIP");
    assert.ok(served.checkHost(node.nodeName), "its DNS SAN is the node name");
  });

  it("answers 401 to anonymous callers and to unknown tokens", async () => {
    const anonymous = await httpsRequest(`${base}/healthz`);
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.body, "Unauthorized");
    assert.equal(
      (await httpsRequest(`${base}/healthz`, { token: "not-a-real-token" })).status,
      401,
    );
  });

  it("answers 403 to callers the cluster does not authorize", async () => {
    const byCert = await httpsRequest(`${base}/healthz`, { client: nobody });
    assert.equal(byCert.status, 403);
    assert.match(byCert.body, /^Forbidden \(user=e2e-nobody, verb=get, resource=nodes/);
    const token = await serviceAccountToken(namespace.name, "reader");
    const byToken = await httpsRequest(`${base}/healthz`, { token });
    assert.equal(byToken.status, 403);
    assert.match(byToken.body, new RegExp(`user=system:serviceaccount:${namespace.name}:reader`));
  });

  it("answers 200 to authorized callers, mapping paths to nodes subresources", async () => {
    assert.equal((await httpsRequest(`${base}/healthz`, { client: admin })).body, "ok");
    await kubectlOk(["create", "clusterrole", roleName, "--verb=get", "--resource=nodes/healthz"]);
    await kubectlOk([
      "create",
      "clusterrolebinding",
      roleName,
      `--clusterrole=${roleName}`,
      `--serviceaccount=${namespace.name}:reader`,
    ]);
    const token = await serviceAccountToken(namespace.name, "reader");
    // Denials are cached for 30 s like the kubelet's (per user, groups and extra, and a new token
    // carries a new credential id): retry until the new binding counts.
    let answer = await httpsRequest(`${base}/healthz`, { token });
    for (let i = 0; i < 40 && answer.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      answer = await httpsRequest(`${base}/healthz`, { token });
    }
    assert.equal(answer.status, 200, "nodes/healthz allows /healthz");
    assert.equal(answer.body, "ok");
    const stats = await httpsRequest(`${base}/stats/summary`, { token });
    assert.equal(stats.status, 403, "but not /stats (nodes/stats)");
    assert.match(stats.body, /subresource\(s\)=\[stats\]/);
  });

  it("serves the API server's own calls through the node proxy", async () => {
    assert.equal(
      await kubectlOk(["get", "--raw", `/api/v1/nodes/${node.nodeName}/proxy/healthz`]),
      "ok",
    );
    const verbose = await kubectlOk([
      "get",
      "--raw",
      `/api/v1/nodes/${node.nodeName}/proxy/healthz?verbose`,
    ]);
    assert.match(verbose, /\[\+\]heartbeat ok/);
  });
});
