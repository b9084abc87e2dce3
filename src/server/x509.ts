// Keys, certificate signing requests and self-signed certificates for the kubelet API, made with
// WebCrypto through @peculiar/x509 (ECDSA P-256), and reading certificates with node:crypto.
import { createPrivateKey, X509Certificate as NodeX509 } from "node:crypto";
import { isIP } from "node:net";
import * as x509 from "@peculiar/x509";
import { serverError } from "./errors.ts";

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

export interface KeyPair {
  /** PEM certificate chain, leaf first. */
  cert: string;
  /** PEM private key (PKCS #8). */
  key: string;
}

export interface CertificateInfo {
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  dnsNames: string[];
  ipAddresses: string[];
}

export interface ServingIdentity {
  nodeName: string;
  dnsNames: string[];
  ipAddresses: string[];
}

export async function generateKeys(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"])) as CryptoKeyPair;
}

export async function privateKeyPem(keys: CryptoKeyPair): Promise<string> {
  const der = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

function sanExtension(identity: ServingIdentity): x509.SubjectAlternativeNameExtension {
  return new x509.SubjectAlternativeNameExtension([
    ...[...new Set(identity.dnsNames)].map((value) => ({ type: "dns" as const, value })),
    ...[...new Set(identity.ipAddresses)].map((value) => ({ type: "ip" as const, value })),
  ]);
}

/** A PKCS #10 request for `system:node:<name>` in `system:nodes`, with DNS and IP SANs. */
export async function createServingCsr(
  keys: CryptoKeyPair,
  identity: ServingIdentity,
): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [`system:node:${identity.nodeName}`] }, { O: ["system:nodes"] }],
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [sanExtension(identity)],
  });
  return csr.toString("pem");
}

/** A PKCS #10 request for a client certificate of `system:node:<name>` in `system:nodes`. */
export async function createClientCsr(keys: CryptoKeyPair, nodeName: string): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [`system:node:${nodeName}`] }, { O: ["system:nodes"] }],
    keys,
    signingAlgorithm: ALGORITHM,
  });
  return csr.toString("pem");
}

export async function createSelfSigned(
  keys: CryptoKeyPair,
  identity: ServingIdentity,
  lifetimeMs: number,
): Promise<string> {
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: [{ CN: [`${identity.nodeName}@${Math.floor(now / 1000)}`] }],
    keys,
    signingAlgorithm: ALGORITHM,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + lifetimeMs),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      sanExtension(identity),
    ],
  });
  return cert.toString("pem");
}

/** Reads the leaf of a PEM chain. */
export function certificateInfo(pem: string): CertificateInfo {
  let cert: NodeX509;
  try {
    cert = new NodeX509(pem);
  } catch (error) {
    throw serverError(
      "WASMLET_ERR_CERTIFICATE",
      `not a PEM certificate: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const names = (cert.subjectAltName ?? "").split(", ").filter(Boolean);
  return {
    subject: cert.subject.replace(/\n/g, ", "),
    issuer: cert.issuer.replace(/\n/g, ", "),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    dnsNames: names.filter((n) => n.startsWith("DNS:")).map((n) => n.slice(4)),
    ipAddresses: names.filter((n) => n.startsWith("IP Address:")).map((n) => n.slice(11)),
  };
}

/** Throws WASMLET_ERR_CERTIFICATE unless `key` is the private key of the chain's leaf. */
export function checkKeyPair(pair: KeyPair, what: string): CertificateInfo {
  const info = certificateInfo(pair.cert);
  let matches = false;
  try {
    matches = new NodeX509(pair.cert).checkPrivateKey(createPrivateKey(pair.key));
  } catch (error) {
    throw serverError(
      "WASMLET_ERR_CERTIFICATE",
      `${what}: the private key cannot be read: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  if (!matches)
    throw serverError(
      "WASMLET_ERR_CERTIFICATE",
      `${what}: the private key does not belong to the certificate`,
    );
  return info;
}

/** One spelling per address (IPv6 compressed, lower case), so addresses compare as strings. */
export function normalizeIP(ip: string): string {
  return isIP(ip) === 6 ? new URL(`http://[${ip}]`).hostname.slice(1, -1) : ip;
}

/** Whether a certificate covers these names and addresses. */
export function covers(info: CertificateInfo, identity: ServingIdentity): boolean {
  const ips = info.ipAddresses.map(normalizeIP);
  return (
    identity.dnsNames.every((name) => info.dnsNames.includes(name)) &&
    identity.ipAddresses.every((ip) => ips.includes(normalizeIP(ip)))
  );
}

/** The addresses worth naming in a serving certificate (not the wildcard ones). */
export function specificAddresses(addresses: string[]): string[] {
  return [...new Set(addresses.filter((a) => isIP(a) !== 0 && a !== "0.0.0.0" && a !== "::"))];
}
