import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as x509 from "@peculiar/x509";
import {
  certificateInfo,
  checkKeyPair,
  covers,
  createSelfSigned,
  createServingCsr,
  generateKeys,
  normalizeIP,
  privateKeyPem,
  specificAddresses,
} from "../../../src/server/x509.ts";

const identity = {
  nodeName: "n1",
  dnsNames: ["n1", "n1.example"],
  ipAddresses: ["10.0.0.5", "fd00::2"],
};

describe("serving certificate material", () => {
  it("requests system:node:<name> in system:nodes with DNS and IP SANs", async () => {
    const keys = await generateKeys();
    const csr = new x509.Pkcs10CertificateRequest(await createServingCsr(keys, identity));
    assert.ok(await csr.verify());
    assert.equal(csr.subject, "CN=system:node:n1, O=system:nodes");
    const raw = csr.extensions.find((e) => e.type === "2.5.29.17");
    assert.ok(raw, "the request carries a subjectAltName extension");
    const san = new x509.SubjectAlternativeNameExtension(raw.rawData);
    assert.deepEqual(
      san.names.items.map((n) => `${n.type}:${n.value}`),
      ["dns:n1", "dns:n1.example", "ip:10.0.0.5", "ip:fd00::2"],
    );
  });

  it("makes a self-signed server certificate whose key checks out", async () => {
    const keys = await generateKeys();
    const pair = {
      cert: await createSelfSigned(keys, identity, 3_600_000),
      key: await privateKeyPem(keys),
    };
    const info = checkKeyPair(pair, "test");
    assert.deepEqual(info.dnsNames, ["n1", "n1.example"]);
    assert.ok(
      covers(info, identity),
      "covers its own identity (IPv6 spelled differently by OpenSSL)",
    );
    assert.ok(!covers(info, { ...identity, ipAddresses: ["10.0.0.6"] }));
    assert.ok(info.notAfter.getTime() - Date.now() > 3_500_000);
    const otherKey = await privateKeyPem(await generateKeys());
    assert.throws(
      () => checkKeyPair({ cert: pair.cert, key: otherKey }, "mismatch"),
      /does not belong/,
    );
  });

  it("reads certificates and addresses", () => {
    assert.throws(() => certificateInfo("not a cert"), /not a PEM certificate/);
    assert.equal(normalizeIP("FD00:0:0:0:0:0:0:2"), "fd00::2");
    assert.equal(normalizeIP("10.0.0.1"), "10.0.0.1");
    assert.deepEqual(specificAddresses(["10.0.0.5", "0.0.0.0", "::", "10.0.0.5"]), ["10.0.0.5"]);
  });
});
