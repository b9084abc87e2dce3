// The node's own identity toward the API server, obtained as the kubelet's TLS bootstrapping
// does it: with a bootstrap kubeconfig (a bootstrap token, say), wasmlet asks for a client
// certificate for `system:node:<name>` in `system:nodes` (a CertificateSigningRequest with signer
// `kubernetes.io/kube-apiserver-client-kubelet`, which the controller-manager's csrapproving
// controller approves for bootstrappers), keeps certificate and key in one file in the data
// directory and writes the kubeconfig it then runs with. As that identity, the Node authorizer
// and NodeRestriction confine it to its own Node, its pods and what they reference.
//
// Before the certificate expires (at 70–90 % of its life, like the kubelet's rotation) it asks
// again with the identity it has, and replaces the file; the API client reads the file for every
// new connection, so nothing restarts.
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdir, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { stringify } from "yaml";
import type { Config } from "../config/config.ts";
import { describeError } from "../errors.ts";
import { sleep } from "../kube/backoff.ts";
import { KubeClient } from "../kube/client.ts";
import { awaitCertificate, createCertificateRequest } from "../kube/csr.ts";
import { createClientCsr, generateKeys, privateKeyPem } from "../server/x509.ts";
import type { AppContext, Component } from "./app.ts";
import { appError } from "./errors.ts";

export const KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet";
const USAGES = ["digital signature", "client auth"];
const POLL_MS = 1_000;
const RETRY_MS = 10_000;

type Options = Pick<
  Config,
  "kubeconfig" | "bootstrapKubeconfig" | "dataDir" | "nodeName" | "apiRequestTimeoutMs"
>;

/** The file that holds the current certificate and key. */
export function clientCertificateFile(dataDir: string): string {
  return join(dataDir, "pki", "kubelet-client-current.pem");
}

/** Validity of the certificate in a PEM file, when it is this node's and not expired. */
export function usableCertificate(
  pem: string,
  nodeName: string,
  now: number,
): { notBefore: number; notAfter: number } | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch {
    return undefined;
  }
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (!cert.subject.split("\n").includes(`CN=system:node:${nodeName}`)) return undefined;
  if (!(now < notAfter)) return undefined;
  return { notBefore, notAfter };
}

/** When to renew: a random point between 70 % and 90 % of the certificate's life. */
export function renewalTime(
  validity: { notBefore: number; notAfter: number },
  random = Math.random(),
): number {
  const life = validity.notAfter - validity.notBefore;
  return validity.notBefore + life * (0.7 + 0.2 * random);
}

/** The client certificate the kubeconfig names, if it is there and still good. */
function currentCertificate(options: Options): string | undefined {
  const file = clientCertificateFile(options.dataDir);
  if (!options.kubeconfig || !existsSync(options.kubeconfig) || !existsSync(file)) return undefined;
  const pem = readFileSync(file, "utf8");
  return usableCertificate(pem, options.nodeName, Date.now()) ? pem : undefined;
}

async function writePrivate(file: string, content: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, content, { mode: 0o600 });
  await chmod(temporary, 0o600);
  await rename(temporary, file);
}

/** Asks the cluster for a client certificate as `kube`; returns certificate + key PEM. */
async function requestCertificate(
  kube: KubeClient,
  nodeName: string,
  signal: AbortSignal,
  log: Logger,
): Promise<string | undefined> {
  const keys = await generateKeys();
  const name = await createCertificateRequest(kube, {
    csrPem: await createClientCsr(keys, nodeName),
    generateName: `node-csr-${nodeName.slice(0, 200)}-`,
    signerName: KUBELET_CLIENT_SIGNER,
    usages: USAGES,
  });
  log.info({ csr: name }, "requested a client certificate; waiting for it to be issued");
  const cert = await awaitCertificate(kube, name, {
    signal,
    pollMs: POLL_MS,
    onReadError: (error) =>
      log.warn({ csr: name, err: describeError(error) }, "cannot read the request; retrying"),
  });
  if (cert === undefined) return undefined;
  return `${cert.trim()}\n${(await privateKeyPem(keys)).trim()}\n`;
}

/** Writes the node's kubeconfig: the bootstrap kubeconfig's cluster, the certificate file. */
async function writeNodeKubeconfig(options: Options, certificateFile: string): Promise<void> {
  const bootstrap = new KubeConfig();
  bootstrap.loadFromFile(options.bootstrapKubeconfig!);
  const cluster = bootstrap.getCurrentCluster();
  if (!cluster)
    throw appError("WASMLET_ERR_BOOTSTRAP", "the bootstrap kubeconfig names no cluster");
  const ca = cluster.caData
    ? { "certificate-authority-data": cluster.caData }
    : cluster.caFile
      ? { "certificate-authority": cluster.caFile }
      : {};
  const user = `system:node:${options.nodeName}`;
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "default", cluster: { server: cluster.server, ...ca } }],
    users: [
      {
        name: user,
        user: { "client-certificate": certificateFile, "client-key": certificateFile },
      },
    ],
    contexts: [{ name: "default", context: { cluster: "default", user } }],
    "current-context": "default",
  };
  await writePrivate(options.kubeconfig!, stringify(config));
}

/**
 * Makes sure `--kubeconfig` gives this node a valid client certificate, bootstrapping one with
 * `--bootstrap-kubeconfig` when it does not. Call before the API client is made.
 */
export async function bootstrapNodeCredentials(options: Options, log: Logger): Promise<void> {
  if (!options.bootstrapKubeconfig) return;
  if (!options.kubeconfig) {
    throw appError(
      "WASMLET_ERR_BOOTSTRAP",
      "--bootstrap-kubeconfig needs --kubeconfig: the path where wasmlet writes the node's own kubeconfig",
    );
  }
  if (currentCertificate(options)) return;
  const bootstrap = KubeClient.create({
    kubeconfig: options.bootstrapKubeconfig,
    apiRequestTimeoutMs: options.apiRequestTimeoutMs,
  });
  log.info(
    { bootstrapKubeconfig: options.bootstrapKubeconfig },
    "no client certificate yet: bootstrapping one",
  );
  const pem = await requestCertificate(
    bootstrap,
    options.nodeName,
    new AbortController().signal,
    log,
  );
  const file = clientCertificateFile(options.dataDir);
  await writePrivate(file, pem!);
  await writeNodeKubeconfig(options, file);
  log.info({ kubeconfig: options.kubeconfig }, "client certificate issued; kubeconfig written");
}

/**
 * Asks for a new client certificate as the node itself (`kube` uses the current one) and replaces
 * the file; false when `signal` ended the wait.
 */
export async function renewClientCertificate(
  kube: KubeClient,
  options: Pick<Config, "dataDir" | "nodeName">,
  signal: AbortSignal,
  log: Logger,
): Promise<boolean> {
  const pem = await requestCertificate(kube, options.nodeName, signal, log);
  if (pem === undefined) return false;
  await writePrivate(clientCertificateFile(options.dataDir), pem);
  log.info("client certificate renewed");
  return true;
}

/** Renews the bootstrapped client certificate before it expires. */
export function clientCertificateRotation(): (context: AppContext) => Component {
  return (context) => new ClientCertificateRotation(context);
}

class ClientCertificateRotation implements Component {
  readonly name = "client-certificate-rotation";
  readonly #context: AppContext;
  readonly #log: Logger;
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(context: AppContext) {
    this.#context = context;
    this.#log = context.logger.child({ component: "client-certificate" });
  }

  async start(): Promise<void> {
    if (this.#context.config.bootstrapKubeconfig) this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    const { config, kube } = this.#context;
    const file = clientCertificateFile(config.dataDir);
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      const validity = usableCertificate(readFileSync(file, "utf8"), config.nodeName, Date.now());
      const at = validity ? renewalTime(validity) : Date.now();
      // setTimeout holds at most 2^31 ms: wake up at least every 24 days to look again.
      await sleep(Math.min(Math.max(0, at - Date.now()), 2 ** 31 - 1), signal);
      if (signal.aborted || Date.now() < at) continue;
      try {
        if (!(await renewClientCertificate(kube, config, signal, this.#log))) return;
      } catch (error) {
        this.#log.error(
          { err: describeError(error), retryInMs: RETRY_MS },
          "could not renew the client certificate",
        );
        await sleep(RETRY_MS, signal);
      }
    }
  }

  async close(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  async destroy(): Promise<void> {
    await this.close();
  }
}
