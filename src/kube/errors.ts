import { defineErrors } from "../errors.ts";

export const kubeError = defineErrors({
  WASMLET_ERR_CSR_DENIED: {
    description:
      "A CertificateSigningRequest of the node (its kubelet-serving or client certificate) was denied, failed or deleted; wasmlet requests again later.",
    hint: "see `kubectl describe csr` for who denied it and why",
  },
  WASMLET_ERR_KUBECONFIG: {
    description: "The kubeconfig (or the in-cluster service-account files) cannot be loaded.",
  },
  WASMLET_ERR_KUBE_UNREACHABLE: {
    description: "The API server did not answer (connection refused, DNS, TLS or timeout).",
    hint: "check the server address in the kubeconfig and that the API server runs; wasmlet keeps retrying",
  },
  WASMLET_ERR_KUBE_UNAUTHORIZED: {
    description: "The API server rejected wasmlet's credentials (HTTP 401).",
    hint: "the client certificate or token in the kubeconfig is wrong or expired",
  },
  WASMLET_ERR_KUBE_FORBIDDEN: {
    description: "wasmlet's identity may not do what it tried (HTTP 403).",
    hint: "bind the ClusterRole in manifests/rbac.yaml to wasmlet's identity",
  },
  WASMLET_ERR_KUBE_NOT_FOUND: {
    description: "The object does not exist (HTTP 404).",
  },
  WASMLET_ERR_KUBE_CONFLICT: {
    description: "The object changed or exists already (HTTP 409).",
  },
  WASMLET_ERR_KUBE_GONE: {
    description:
      "The resourceVersion a watch resumed from is too old (HTTP 410); the watch relists.",
  },
  WASMLET_ERR_KUBE_INVALID: {
    description: "The API server refused the request as invalid (HTTP 400 or 422).",
  },
  WASMLET_ERR_KUBE_API: {
    description: "The API server failed the request (HTTP 429 or 5xx, or an unexpected answer).",
  },
});
