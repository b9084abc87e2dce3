// A CertificateSigningRequest's round trip: create it, then read it until the signer issues the
// certificate (or it is denied, fails or disappears). Used for the kubelet-serving certificate
// and for the node's own client certificate (kube-apiserver-client-kubelet).
import type { V1CertificateSigningRequest } from "@kubernetes/client-node";
import { apiError, isNotFound } from "./api-error.ts";
import { sleep } from "./backoff.ts";
import type { KubeClient } from "./client.ts";
import { kubeError } from "./errors.ts";

export interface CertificateRequest {
  /** PEM of the PKCS #10 request. */
  csrPem: string;
  signerName: string;
  usages: string[];
  expirationSeconds?: number;
  /** Name prefix; the API server adds a random suffix. */
  generateName: string;
}

/** Creates the CSR; returns its name. */
export async function createCertificateRequest(
  kube: KubeClient,
  request: CertificateRequest,
): Promise<string> {
  const body: V1CertificateSigningRequest = {
    apiVersion: "certificates.k8s.io/v1",
    kind: "CertificateSigningRequest",
    metadata: {
      generateName: request.generateName,
      labels: { "node.kubernetes.io/wasmlet": "true" },
    },
    spec: {
      request: Buffer.from(request.csrPem).toString("base64"),
      signerName: request.signerName,
      usages: request.usages,
      ...(request.expirationSeconds ? { expirationSeconds: request.expirationSeconds } : {}),
    },
  };
  try {
    const created = await kube.certificates.createCertificateSigningRequest({ body });
    return created.metadata?.name as string;
  } catch (error) {
    throw apiError(error, `creating a ${request.signerName} CertificateSigningRequest`);
  }
}

export interface AwaitOptions {
  signal: AbortSignal;
  pollMs: number;
  /** A read failed (the API server is away): it is retried. */
  onReadError?(error: unknown): void;
  /** Called after every poll that found the request still pending. */
  onPending?(): void;
}

/**
 * The issued certificate's PEM; undefined when `signal` ends the wait. Throws
 * WASMLET_ERR_CSR_DENIED when the request is denied, fails or is deleted.
 */
export async function awaitCertificate(
  kube: KubeClient,
  name: string,
  options: AwaitOptions,
): Promise<string | undefined> {
  while (!options.signal.aborted) {
    let csr: V1CertificateSigningRequest;
    try {
      csr = await kube.certificates.readCertificateSigningRequest({ name });
    } catch (error) {
      if (isNotFound(error))
        throw kubeError(
          "WASMLET_ERR_CSR_DENIED",
          `the CertificateSigningRequest ${name} was deleted before it was issued`,
        );
      options.onReadError?.(apiError(error, `reading CSR ${name}`));
      await sleep(options.pollMs, options.signal);
      continue;
    }
    const refused = csr.status?.conditions?.find(
      (c) => (c.type === "Denied" || c.type === "Failed") && c.status !== "False",
    );
    if (refused) {
      throw kubeError(
        "WASMLET_ERR_CSR_DENIED",
        `the CertificateSigningRequest ${name} was ${refused.type.toLowerCase()}${refused.reason ? ` (${refused.reason})` : ""}${refused.message ? `: ${refused.message}` : ""}`,
      );
    }
    if (csr.status?.certificate)
      return Buffer.from(csr.status.certificate, "base64").toString("utf8");
    options.onPending?.();
    await sleep(options.pollMs, options.signal);
  }
  return undefined;
}
