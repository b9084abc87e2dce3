// A throw-away PKI for the local control plane: one cluster CA (which also signs client
// certificates and kubelet CSRs), the API server's serving certificate, client certificates for
// the admin, the components and the API server's calls to kubelets, a front-proxy CA for the
// aggregation layer, and the service-account signing key. ECDSA P-256 throughout.
import { webcrypto } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY_MS = 86_400_000;

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

interface Issuer {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith("\n") ? "" : "\n"}-----END ${label}-----\n`;
}

async function keyPem(keys: CryptoKeyPair): Promise<string> {
  return pem(
    "PRIVATE KEY",
    await webcrypto.subtle.exportKey("pkcs8", keys.privateKey as webcrypto.CryptoKey),
  );
}

function generateKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(algorithm, true, [
    "sign",
    "verify",
  ]) as Promise<CryptoKeyPair>;
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
    .toString("hex")
    .replace(/^[89a-f]/, "1");
}

function escapeDn(value: string): string {
  return value.replace(/([,+="\\<>;])/g, "\\$1");
}

async function createCa(commonName: string, validDays: number): Promise<Issuer> {
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${escapeDn(commonName)}`,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + validDays * DAY_MS),
    keys,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys };
}

export interface LeafOptions {
  commonName: string;
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  server?: boolean;
  client?: boolean;
  validDays?: number;
}

async function issue(issuer: Issuer, options: LeafOptions): Promise<KeyPairPem> {
  const keys = await generateKeys();
  const subject = [
    ...(options.organizations ?? []).map((o) => `O=${escapeDn(o)}`),
    `CN=${escapeDn(options.commonName)}`,
  ].join(", ");
  const usages = [
    ...(options.server ? [x509.ExtendedKeyUsage.serverAuth] : []),
    ...(options.client ? [x509.ExtendedKeyUsage.clientAuth] : []),
  ];
  const names = [
    ...(options.dnsNames ?? []).map((value) => ({ type: "dns" as const, value })),
    ...(options.ipAddresses ?? []).map((value) => ({ type: "ip" as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject,
    issuer: issuer.cert.subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + (options.validDays ?? 365) * DAY_MS),
    signingKey: issuer.keys.privateKey,
    publicKey: keys.publicKey,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension(usages),
      await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey),
      ...(names.length ? [new x509.SubjectAlternativeNameExtension(names)] : []),
    ],
  });
  return { certPem: cert.toString("pem"), keyPem: await keyPem(keys) };
}

/** File paths of the generated PKI. */
export interface ClusterPki {
  dir: string;
  caCert: string;
  caKey: string;
  apiserverCert: string;
  apiserverKey: string;
  adminCert: string;
  adminKey: string;
  controllerManagerCert: string;
  controllerManagerKey: string;
  schedulerCert: string;
  schedulerKey: string;
  kubeletClientCert: string;
  kubeletClientKey: string;
  frontProxyCaCert: string;
  frontProxyClientCert: string;
  frontProxyClientKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

export async function generateClusterPki(
  dir: string,
  apiserverIps: string[] = ["127.0.0.1"],
): Promise<ClusterPki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = await createCa("wasmlet-dev-ca", 3650);
  const frontProxyCa = await createCa("wasmlet-dev-front-proxy-ca", 3650);
  const write = async (name: string, content: string, mode = 0o644) => {
    const path = join(dir, name);
    await writeFile(path, content, { mode });
    return path;
  };
  const pair = async (name: string, keyPair: KeyPairPem) =>
    [
      await write(`${name}.crt`, keyPair.certPem),
      await write(`${name}.key`, keyPair.keyPem, 0o600),
    ] as const;

  const [apiserverCert, apiserverKey] = await pair(
    "apiserver",
    await issue(ca, {
      commonName: "kube-apiserver",
      server: true,
      dnsNames: [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
      ],
      ipAddresses: [...new Set([...apiserverIps, "127.0.0.1", "10.0.0.1"])],
    }),
  );
  const [adminCert, adminKey] = await pair(
    "admin",
    await issue(ca, {
      commonName: "wasmlet-admin",
      organizations: ["system:masters"],
      client: true,
    }),
  );
  const [controllerManagerCert, controllerManagerKey] = await pair(
    "controller-manager",
    await issue(ca, { commonName: "system:kube-controller-manager", client: true }),
  );
  const [schedulerCert, schedulerKey] = await pair(
    "scheduler",
    await issue(ca, { commonName: "system:kube-scheduler", client: true }),
  );
  const [kubeletClientCert, kubeletClientKey] = await pair(
    "apiserver-kubelet-client",
    await issue(ca, {
      commonName: "kube-apiserver-kubelet-client",
      organizations: ["system:masters"],
      client: true,
    }),
  );
  const [frontProxyClientCert, frontProxyClientKey] = await pair(
    "front-proxy-client",
    await issue(frontProxyCa, { commonName: "front-proxy-client", client: true }),
  );
  const saKeys = await generateKeys();
  return {
    dir,
    caCert: await write("ca.crt", ca.cert.toString("pem")),
    caKey: await write("ca.key", await keyPem(ca.keys), 0o600),
    apiserverCert,
    apiserverKey,
    adminCert,
    adminKey,
    controllerManagerCert,
    controllerManagerKey,
    schedulerCert,
    schedulerKey,
    kubeletClientCert,
    kubeletClientKey,
    frontProxyCaCert: await write("front-proxy-ca.crt", frontProxyCa.cert.toString("pem")),
    frontProxyClientCert,
    frontProxyClientKey,
    serviceAccountKey: await write("sa.key", await keyPem(saKeys), 0o600),
    serviceAccountPub: await write(
      "sa.pub",
      pem(
        "PUBLIC KEY",
        await webcrypto.subtle.exportKey("spki", saKeys.publicKey as webcrypto.CryptoKey),
      ),
    ),
  };
}
