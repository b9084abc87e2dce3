import { defineErrors } from "../errors.ts";

export const serverError = defineErrors({
  WASMLET_ERR_SERVER_ADDRESS_IN_USE: {
    description: "The kubelet API port is already taken by another process.",
    hint: "stop whatever listens there, or choose another --port",
  },
  WASMLET_ERR_SERVER_LISTEN: {
    description: "The kubelet API could not listen on its address (permission, unknown address).",
  },
  WASMLET_ERR_SERVER_ROUTE: {
    description: "A kubelet API route was registered wrongly (after start, or twice).",
  },
  WASMLET_ERR_UNAUTHENTICATED: {
    description:
      "A kubelet API request carried no valid client certificate or bearer token (HTTP 401).",
  },
  WASMLET_ERR_FORBIDDEN: {
    description:
      "A kubelet API request's user may not do what it asked (HTTP 403, from a SubjectAccessReview).",
  },
  WASMLET_ERR_NOT_FOUND: {
    description: "A kubelet API request named something that does not exist (HTTP 404).",
  },
  WASMLET_ERR_BAD_REQUEST: {
    description: "A kubelet API request's parameters are invalid (HTTP 400).",
  },
  WASMLET_ERR_CERTIFICATE: {
    description: "The serving certificate or key cannot be loaded, or they do not match.",
  },
  WASMLET_ERR_CSR_DENIED: {
    description:
      "The kubelet-serving CertificateSigningRequest was denied or failed; wasmlet requests again later.",
    hint: "see `kubectl describe csr` for who denied it and why",
  },
});
