// What volumes/ needs from the Kubernetes API. Kept narrow so the integrator can back it with the
// kube/ client (or a watch cache) and unit tests with an in-memory fake.
import type { V1ConfigMap, V1Secret } from "@kubernetes/client-node";

export interface ServiceAccountTokenRequest {
  /** Empty means the API server's default audience. */
  audiences: string[];
  expirationSeconds: number;
  /** The token is bound to this pod (TokenRequest boundObjectRef, kind Pod). */
  boundPod: { name: string; uid: string };
}

export interface ServiceAccountToken {
  token: string;
  expirationTimestamp: Date;
}

export interface VolumeSourcePort {
  /** The ConfigMap, or `undefined` when it does not exist (404). Other failures throw. */
  getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined>;
  /** The Secret, or `undefined` when it does not exist (404). Other failures throw. `data` is base64. */
  getSecret(namespace: string, name: string): Promise<V1Secret | undefined>;
  /** POST serviceaccounts/{name}/token. */
  createServiceAccountToken(
    namespace: string,
    serviceAccountName: string,
    request: ServiceAccountTokenRequest,
  ): Promise<ServiceAccountToken>;
}
