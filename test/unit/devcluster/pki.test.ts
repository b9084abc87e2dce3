import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type ClusterPki, generateClusterPki } from "../../../src/devcluster/pki.ts";

let dir: string;
let pki: ClusterPki;
const cert = async (file: string) => new X509Certificate(await readFile(file));

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wasmlet-pki-"));
  pki = await generateClusterPki(join(dir, "pki"), ["127.0.0.2"]);
});
after(() => rm(dir, { recursive: true, force: true }));

test("every leaf certificate is signed by the cluster CA", async () => {
  const ca = await cert(pki.caCert);
  assert.equal(ca.ca, true);
  for (const file of [
    pki.apiserverCert,
    pki.adminCert,
    pki.controllerManagerCert,
    pki.schedulerCert,
    pki.kubeletClientCert,
  ]) {
    const leaf = await cert(file);
    assert.ok(leaf.verify(ca.publicKey), `${file} is not signed by the CA`);
    assert.ok(leaf.checkIssued(ca), file);
    assert.equal(leaf.ca, false);
  }
  const frontProxy = await cert(pki.frontProxyCaCert);
  assert.ok((await cert(pki.frontProxyClientCert)).verify(frontProxy.publicKey));
  assert.ok(!(await cert(pki.frontProxyClientCert)).verify(ca.publicKey));
});

test("the API server certificate names loopback, the requested IP and the in-cluster names", async () => {
  const apiserver = await cert(pki.apiserverCert);
  assert.ok(apiserver.checkIP("127.0.0.1"));
  assert.ok(apiserver.checkIP("127.0.0.2"));
  assert.ok(apiserver.checkHost("kubernetes.default.svc"));
  assert.equal(apiserver.checkHost("example.com"), undefined);
});

test("client certificates carry the identities Kubernetes authorizes", async () => {
  assert.match((await cert(pki.adminCert)).subject, /O=system:masters/);
  assert.match(
    (await cert(pki.controllerManagerCert)).subject,
    /CN=system:kube-controller-manager/,
  );
  assert.match((await cert(pki.schedulerCert)).subject, /CN=system:kube-scheduler/);
  assert.match((await cert(pki.kubeletClientCert)).subject, /O=system:masters/);
});

test("private keys are readable by the owner only", async () => {
  for (const file of [pki.caKey, pki.adminKey, pki.serviceAccountKey]) {
    assert.equal((await stat(file)).mode & 0o077, 0, file);
  }
});
