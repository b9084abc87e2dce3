// TLS bootstrapping for the nodes of a local cluster, as kubeadm sets it up: a bootstrap token
// (a Secret in kube-system that the API server's token authenticator accepts), and the bindings
// that let bootstrappers ask for node client certificates, have them approved by the
// controller-manager, and let nodes renew their own. Nodes then join with the kubeconfig written
// here and run as system:node:<name>, confined by the Node authorizer and NodeRestriction.
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { devclusterError } from "./errors.ts";
import { httpsPostJson, type TlsClientFiles } from "./https-probe.ts";
import { writeKubeconfig } from "./kubeconfig.ts";

const TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

function tokenPart(length: number): string {
  const bytes = randomBytes(length);
  return Array.from(bytes, (b) => TOKEN_ALPHABET[b % TOKEN_ALPHABET.length]).join("");
}

function binding(name: string, role: string, group: string): object {
  return {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
    subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: group }],
  };
}

/** The bindings of TLS bootstrapping: request, auto-approval, and renewal by nodes themselves. */
export const BOOTSTRAP_BINDINGS: readonly object[] = [
  binding("wasmlet:node-bootstrapper", "system:node-bootstrapper", "system:bootstrappers"),
  binding(
    "wasmlet:node-autoapprove-bootstrap",
    "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
    "system:bootstrappers",
  ),
  binding(
    "wasmlet:node-autoapprove-certificate-rotation",
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
    "system:nodes",
  ),
];

/**
 * Creates a bootstrap token and the bindings in the cluster at `server` (as its admin), and writes
 * `bootstrap.kubeconfig` into `dir`; returns its path.
 */
export async function prepareNodeBootstrap(options: {
  server: string;
  /** The admin's client certificate and the cluster CA. */
  admin: TlsClientFiles;
  dir: string;
  caFile: string;
}): Promise<string> {
  const create = async (path: string, body: object) => {
    const { status, body: answer } = await httpsPostJson(
      `${options.server}${path}`,
      options.admin,
      body,
    );
    if (status !== 201 && status !== 409) {
      throw devclusterError(
        "WASMLET_ERR_NODE_BOOTSTRAP",
        `setting up node bootstrapping: POST ${path} answered ${status}: ${answer.slice(0, 300)}`,
      );
    }
  };
  const id = tokenPart(6);
  const secret = tokenPart(16);
  await create("/api/v1/namespaces/kube-system/secrets", {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: `bootstrap-token-${id}`, namespace: "kube-system" },
    type: "bootstrap.kubernetes.io/token",
    stringData: {
      "token-id": id,
      "token-secret": secret,
      "usage-bootstrap-authentication": "true",
      description: "wasmlet nodes join with this token (TLS bootstrapping)",
    },
  });
  for (const body of BOOTSTRAP_BINDINGS)
    await create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", body);
  return writeKubeconfig(join(options.dir, "bootstrap.kubeconfig"), {
    server: options.server,
    caFile: options.caFile,
    user: { token: `${id}.${secret}` },
    userName: "kubelet-bootstrap",
  });
}
