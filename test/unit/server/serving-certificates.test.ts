import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import * as x509 from "@peculiar/x509";
import { pino } from "pino";
import { KubeClient } from "../../../src/kube/client.ts";
import {
  type CurrentCertificate,
  ServingCertificates,
} from "../../../src/server/serving-certificates.ts";
import { FakeApiServer, json } from "../kube/fake-api-server.ts";
import { createTestCA, type TestCA } from "./test-pki.ts";

const CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

interface FakeCsr {
  metadata: { name: string; generateName: string };
  spec: { request: string; signerName: string; usages: string[] };
  status: { conditions?: Array<Record<string, string>>; certificate?: string };
}

/** Signs a PKCS #10 request the way the cluster's signer would (subject and SANs kept). */
async function sign(ca: TestCA, requestPem: string): Promise<string> {
  const csr = new x509.Pkcs10CertificateRequest(requestPem);
  const san = csr.extensions.find((e) => e.type === "2.5.29.17");
  const cert = await x509.X509CertificateGenerator.create({
    subject: csr.subject,
    issuer: new x509.X509Certificate(ca.cert).subject,
    publicKey: await csr.publicKey.export(),
    signingKey: ca.key,
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    extensions: san
      ? [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]), san]
      : [],
  });
  return cert.toString("pem");
}

function logCapture(): { logger: pino.Logger; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return {
    logger: pino({ level: "info" }, stream),
    lines: () =>
      chunks
        .join("")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe("ServingCertificates (kubelet-serving CSR)", () => {
  const api = new FakeApiServer();
  let dir: string;
  let ca: TestCA;
  const csrs = new Map<string, FakeCsr>();
  let counter = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "wasmlet-csr-"));
    ca = await createTestCA();
    await api.start();
    api.handler = (request, response) => {
      if (request.method === "POST" && request.path === CSR_PATH) {
        const body = JSON.parse(request.body);
        const name = `${body.metadata.generateName}${++counter}`;
        const created = { ...body, metadata: { ...body.metadata, name }, status: {} };
        csrs.set(name, created);
        return json(response, 201, created);
      }
      const name = request.path.slice(CSR_PATH.length + 1);
      const csr = csrs.get(name);
      if (request.method === "GET" && csr) return json(response, 200, csr);
      return json(response, 404, { kind: "Status", code: 404, message: "not found" });
    };
  });
  after(async () => {
    await api.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const options = (logger: pino.Logger, allowSelfSigned = false) => ({
    config: {
      tlsCertFile: undefined,
      tlsPrivateKeyFile: undefined,
      tlsBootstrap: true,
      allowSelfSigned,
      dataDir: dir,
    },
    identity: { nodeName: "n1", dnsNames: ["n1"], ipAddresses: ["10.0.0.5"] },
    kube: new KubeClient(api.kubeConfig()),
    logger,
    csrPollIntervalMs: 20,
    csrReminderIntervalMs: 100,
  });

  it("requests a certificate, logs how to approve it, serves it once issued, and keeps it", async (t) => {
    const log = logCapture();
    const certificates = new ServingCertificates(options(log.logger));
    t.after(() => certificates.close());
    assert.equal(certificates.mode, "csr");
    const changes: CurrentCertificate[] = [];
    certificates.onChange((c) => changes.push(c));
    await certificates.load();
    assert.equal(certificates.current(), undefined, "nothing to serve before approval");
    certificates.start();

    while (!certificates.pendingRequest) await new Promise((r) => setTimeout(r, 10));
    const name = certificates.pendingRequest;
    const csr = csrs.get(name) as FakeCsr;
    assert.equal(csr.spec.signerName, "kubernetes.io/kubelet-serving");
    assert.deepEqual(csr.spec.usages, ["digital signature", "server auth"]);
    const request = Buffer.from(csr.spec.request, "base64").toString("utf8");
    assert.equal(
      new x509.Pkcs10CertificateRequest(request).subject,
      "CN=system:node:n1, O=system:nodes",
    );
    await new Promise((r) => setTimeout(r, 150));
    const asks = log
      .lines()
      .filter((l) => String(l.msg).includes(`kubectl certificate approve ${name}`));
    assert.ok(asks.length >= 2, "the approval command is logged, and repeated while waiting");

    csr.status = {
      conditions: [{ type: "Approved", status: "True" }],
      certificate: Buffer.from(await sign(ca, request)).toString("base64"),
    };
    while (changes.length === 0) await new Promise((r) => setTimeout(r, 10));
    const issued = certificates.current();
    assert.equal(issued?.source, "csr");
    assert.match(issued?.info.subject ?? "", /CN=system:node:n1/);
    assert.match(issued?.info.subject ?? "", /O=system:nodes/);
    assert.deepEqual(issued?.info.ipAddresses, ["10.0.0.5"]);
    assert.equal(certificates.pendingRequest, undefined);
    const keyMode = (await stat(join(dir, "pki", "kubelet-server.key"))).mode & 0o777;
    assert.equal(keyMode, 0o600);

    // A restart reuses the kept certificate: no new request, nothing to approve.
    const requestsBefore = api.requests.filter((r) => r.method === "POST").length;
    const again = new ServingCertificates(options(pino({ level: "silent" })));
    t.after(() => again.close());
    await again.load();
    assert.equal(again.current()?.cert, issued?.cert);
    const renewal = again.renewalTime(issued!.info);
    const life = issued!.info.notAfter.getTime() - issued!.info.notBefore.getTime();
    assert.ok(
      renewal >= issued!.info.notBefore.getTime() + 0.7 * life &&
        renewal <= issued!.info.notBefore.getTime() + 0.9 * life,
    );
    again.start();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(api.requests.filter((r) => r.method === "POST").length, requestsBefore);
  });

  it("serves self-signed while waiting when allowed, and says when a request is denied", async (t) => {
    const fresh = await mkdtemp(join(tmpdir(), "wasmlet-csr-"));
    t.after(() => rm(fresh, { recursive: true, force: true }));
    const log = logCapture();
    const certificates = new ServingCertificates({
      ...options(log.logger, true),
      config: { ...options(log.logger, true).config, dataDir: fresh },
    });
    t.after(() => certificates.close());
    await certificates.load();
    assert.equal(certificates.current()?.source, "self-signed");
    certificates.start();
    while (!certificates.pendingRequest) await new Promise((r) => setTimeout(r, 10));
    const csr = csrs.get(certificates.pendingRequest) as FakeCsr;
    csr.status = {
      conditions: [{ type: "Denied", status: "True", reason: "NotOurs", message: "unknown node" }],
    };
    const denial = async () => log.lines().find((l) => String(l.err ?? "").includes("was denied"));
    while (!(await denial())) await new Promise((r) => setTimeout(r, 10));
    assert.match(
      String((await denial())?.err),
      /the CertificateSigningRequest csr-n1-\d+ was denied \(NotOurs\): unknown node/,
    );
    assert.equal(certificates.current()?.source, "self-signed", "keeps serving what it has");
  });
});
