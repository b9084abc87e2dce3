// Certificates for tests: a CA, client certificates it signs, and HTTPS requests that present
// them. Used by the kubelet API unit tests and the node e2e tests (signing with the cluster CA).
import { createPrivateKey, webcrypto } from "node:crypto";
import { request } from "node:https";
import * as x509 from "@peculiar/x509";

const EC = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

export interface TestCA {
  cert: string;
  key: CryptoKey;
}

export async function createTestCA(name = "wasmlet-test-ca"): Promise<TestCA> {
  const keys = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${name}`,
    keys,
    signingAlgorithm: EC,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ],
  });
  return { cert: cert.toString("pem"), key: keys.privateKey };
}

/** A CA from PEM files (the test cluster's), whatever its key type. */
export async function loadCA(certPem: string, keyPem: string): Promise<TestCA> {
  const der = createPrivateKey(keyPem).export({ format: "der", type: "pkcs8" });
  const cert = new x509.X509Certificate(certPem);
  const algorithm = cert.publicKey.algorithm as RsaHashedKeyAlgorithm | EcKeyAlgorithm;
  const importAlgorithm =
    algorithm.name === "ECDSA"
      ? { name: "ECDSA", namedCurve: (algorithm as EcKeyAlgorithm).namedCurve }
      : { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  const key = (await webcrypto.subtle.importKey("pkcs8", der, importAlgorithm, false, [
    "sign",
  ])) as CryptoKey;
  return { cert: certPem, key };
}

export interface IssuedCert {
  cert: string;
  key: string;
}

/** A certificate signed by `ca` for `cn` in `groups` (client auth, or server auth with SANs). */
export async function issue(
  ca: TestCA,
  cn: string,
  options: {
    groups?: string[];
    server?: { dns: string[]; ips: string[] };
    notAfter?: Date;
    notBefore?: Date;
  } = {},
): Promise<IssuedCert> {
  const keys = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
  const caCert = new x509.X509Certificate(ca.cert);
  const signingAlgorithm =
    ca.key.algorithm.name === "ECDSA" ? EC : { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  const name: x509.JsonName = [
    { CN: [cn] },
    ...(options.groups?.length ? [{ O: options.groups }] : []),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    subject: name,
    issuer: caCert.subject,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm,
    notBefore: options.notBefore ?? new Date(Date.now() - 60_000),
    notAfter: options.notAfter ?? new Date(Date.now() + 3_600_000),
    extensions: [
      new x509.ExtendedKeyUsageExtension([
        options.server ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth,
      ]),
      ...(options.server
        ? [
            new x509.SubjectAlternativeNameExtension([
              ...options.server.dns.map((value) => ({ type: "dns" as const, value })),
              ...options.server.ips.map((value) => ({ type: "ip" as const, value })),
            ]),
          ]
        : []),
    ],
  });
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return { cert: cert.toString("pem"), key: x509.PemConverter.encode(pkcs8, "PRIVATE KEY") };
}

export interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  /** The serving certificate's PEM. */
  peerCert: string;
}

const WEBSOCKET_UPGRADE = {
  connection: "Upgrade",
  upgrade: "websocket",
  "sec-websocket-version": "13",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
  "sec-websocket-protocol": "v5.channel.k8s.io",
};

/**
 * One HTTPS request; `client` presents a certificate, `token` a bearer token. With `websocket`
 * it asks to upgrade to a `v5.channel.k8s.io` WebSocket: an upgrade granted answers status 101
 * (its socket is closed at once), a refusal answers as any response.
 */
export function httpsRequest(
  url: string,
  options: {
    client?: IssuedCert;
    token?: string;
    method?: string;
    ca?: string;
    headers?: Record<string, string>;
    websocket?: boolean;
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? "GET",
        ...(options.ca
          ? { ca: options.ca, rejectUnauthorized: true }
          : { rejectUnauthorized: false }),
        ...(options.client ? { cert: options.client.cert, key: options.client.key } : {}),
        headers: {
          ...(options.websocket ? WEBSOCKET_UPGRADE : {}),
          ...options.headers,
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        const socket = res.socket as import("node:tls").TLSSocket;
        const raw = socket.getPeerCertificate()?.raw;
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString("utf8"),
            headers: res.headers,
            peerCert: raw ? new x509.X509Certificate(raw).toString("pem") : "",
          }),
        );
      },
    );
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, body: "", headers: res.headers, peerCert: "" });
    });
    req.on("error", reject);
    req.end();
  });
}
