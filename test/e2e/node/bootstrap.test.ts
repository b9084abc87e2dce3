// TLS bootstrapping end to end: a node joins with a bootstrap token, the controller-manager
// approves its client certificate request, and from then on it is system:node:<name>, which the
// Node authorizer and NodeRestriction confine to its own Node, its pods and what they reference.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import pino from "pino";
import {
  clientCertificateFile,
  renewClientCertificate,
} from "../../../src/app/node-credentials.ts";
import { KubeClient } from "../../../src/kube/client.ts";
import { createNamespace, kubectl, kubectlOk } from "../../support/cluster.ts";
import { Wasmlet, waitForReady } from "../../support/wasmlet.ts";

let node: Wasmlet;
let namespace: Awaited<ReturnType<typeof createNamespace>>;
const asNode = () => join(node.dataDir, "kubeconfig");

before(async () => {
  namespace = await createNamespace("bootstrap");
  node = await Wasmlet.start({
    nodeIP: "127.0.0.1",
    args: ["--allow-self-signed", "--no-tls-bootstrap"],
  });
  await waitForReady(node.nodeName);
});
after(async () => {
  await namespace?.remove();
  await node?.cleanup();
});

test("the node joins with a bootstrap token and gets an auto-approved client certificate", async () => {
  const cert = new X509Certificate(readFileSync(clientCertificateFile(node.dataDir)));
  assert.match(cert.subject, new RegExp(`CN=system:node:${node.nodeName}`));
  assert.match(cert.subject, /O=system:nodes/);
  const csrs = JSON.parse(await kubectlOk(["get", "csr", "-o", "json"])).items as {
    spec: { signerName: string; username: string };
    status: { conditions?: { type: string; reason?: string }[] };
  }[];
  const mine = csrs.filter(
    (c) =>
      c.spec.signerName === "kubernetes.io/kube-apiserver-client-kubelet" &&
      c.spec.username.startsWith("system:bootstrap:"),
  );
  assert.ok(
    mine.some((c) =>
      c.status.conditions?.some((k) => k.type === "Approved" && k.reason === "AutoApproved"),
    ),
    JSON.stringify(mine),
  );
  const whoami = JSON.parse(
    await kubectlOk(["auth", "whoami", "-o", "json"], { kubeconfig: asNode() }),
  );
  assert.equal(whoami.status.userInfo.username, `system:node:${node.nodeName}`);
});

test("as system:node it reaches only what its own pods reference, and only its own Node", async () => {
  await kubectlOk([
    "-n",
    namespace.name,
    "create",
    "secret",
    "generic",
    "unrelated",
    "--from-literal=k=v",
  ]);
  const secret = await kubectl(["-n", namespace.name, "get", "secret", "unrelated"], {
    kubeconfig: asNode(),
  });
  assert.notEqual(secret.code, 0);
  assert.match(secret.stderr, /forbidden/i);
  // NodeRestriction: a node may not give itself labels reserved for administrators…
  const label = await kubectl(
    ["label", "node", node.nodeName, "node-restriction.kubernetes.io/trusted=yes"],
    { kubeconfig: asNode() },
  );
  assert.notEqual(label.code, 0);
  assert.match(label.stderr, /node-restriction\.kubernetes\.io/);
  // …nor touch another Node.
  const other = await kubectl(["create", "-f", "-"], {
    kubeconfig: asNode(),
    input: JSON.stringify({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: `${node.nodeName}-other` },
    }),
  });
  assert.notEqual(other.code, 0);
  assert.match(other.stderr, /forbidden/i);
});

test("the node renews its certificate with its own identity and goes on with the new one", async () => {
  const file = clientCertificateFile(node.dataDir);
  const before = new X509Certificate(readFileSync(file));
  const kube = KubeClient.create({ kubeconfig: asNode(), apiRequestTimeoutMs: 10_000 });
  const renewed = await renewClientCertificate(
    kube,
    { dataDir: node.dataDir, nodeName: node.nodeName },
    AbortSignal.timeout(60_000),
    pino({ level: "silent" }),
  );
  assert.equal(renewed, true);
  const afterRenewal = new X509Certificate(readFileSync(file));
  assert.notEqual(afterRenewal.serialNumber, before.serialNumber);
  assert.match(afterRenewal.subject, new RegExp(`CN=system:node:${node.nodeName}`));
  // The running node goes on with the new certificate (read for every new connection).
  await waitForReady(node.nodeName);
  const whoami = JSON.parse(
    await kubectlOk(["auth", "whoami", "-o", "json"], { kubeconfig: asNode() }),
  );
  assert.equal(whoami.status.userInfo.username, `system:node:${node.nodeName}`);
});
