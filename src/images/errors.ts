// Error codes of src/images/. Messages name the image and the registry; hints say what to do.
import { defineErrors } from "../errors.ts";

export const imageError = defineErrors({
  WASMLET_ERR_IMAGE_REFERENCE_INVALID: {
    description: "An image reference does not parse (Docker/containerd reference grammar).",
    hint: "references look like registry.example.com:5000/team/app:1.0 or app@sha256:<64 hex>",
  },
  WASMLET_ERR_IMAGE_AUTH_FAILED: {
    description:
      "The registry refused the credentials, or asked for credentials wasmlet does not have.",
    hint: "check the pod's imagePullSecrets or the node's docker config for this registry",
  },
  WASMLET_ERR_IMAGE_NOT_FOUND: {
    description: "The registry has no such repository, tag or digest.",
  },
  WASMLET_ERR_IMAGE_REGISTRY_UNAVAILABLE: {
    description:
      "The registry could not be reached or kept failing (connection errors, 5xx) after retries.",
  },
  WASMLET_ERR_IMAGE_REGISTRY_ERROR: {
    description: "The registry answered a request with an unexpected status.",
  },
  WASMLET_ERR_IMAGE_DIGEST_MISMATCH: {
    description:
      "Downloaded content does not match its digest (corruption or a tampering registry/proxy).",
  },
  WASMLET_ERR_IMAGE_TOO_LARGE: {
    description: "A manifest, config, layer or module exceeds wasmlet's size limits.",
    hint: "the limits protect the node from hostile registries; raise them in the image service options",
  },
  WASMLET_ERR_IMAGE_MANIFEST_INVALID: {
    description: "A manifest, index or image config is malformed or of an unsupported type.",
  },
  WASMLET_ERR_IMAGE_NOT_WASM: {
    description:
      "The image is an ordinary container image (no wasm platform in its index, or an entrypoint that is not WebAssembly).",
    hint: "this is an ordinary container image; wasmlet runs WebAssembly",
  },
  WASMLET_ERR_IMAGE_COMPONENT: {
    description:
      "The image holds a WebAssembly component; wasmlet runs core modules (WASI preview1).",
    hint: "build for wasm32-wasip1 (a core module), not a component",
  },
  WASMLET_ERR_IMAGE_INVALID_WASM: {
    description: "The image's module fails WebAssembly validation.",
  },
  WASMLET_ERR_IMAGE_ENTRYPOINT_MISSING: {
    description: "The file the image's entrypoint names is not in its layers.",
  },
  WASMLET_ERR_IMAGE_NEVER_PULL: {
    description:
      'The image is not present on the node and the pull policy is "Never" (kubelet: ErrImageNeverPull).',
    hint: 'pull it first or use imagePullPolicy "IfNotPresent"',
  },
  WASMLET_ERR_IMAGE_UNSUPPORTED_IMPORTS: {
    description: "The module imports functions the runtime does not provide.",
    hint: "wasmlet provides WASI preview1 (wasi_snapshot_preview1); rebuild for wasm32-wasip1",
  },
  WASMLET_ERR_IMAGE_CREDENTIALS_INVALID: {
    description:
      "A docker config (pull secret or node-level file) is not valid JSON of a known shape.",
  },
  WASMLET_ERR_REGISTRY_HOSTS_INVALID: {
    description:
      "A registry hosts configuration (--registry-config-dir: containerd's certs.d layout, <dir>/<host>/hosts.toml) cannot be read or is invalid, or names certificate files that cannot be read or do not match.",
    hint: "the message names the file and the key; see containerd's docs/hosts.md for the format",
  },
  WASMLET_ERR_IMAGE_NO_REGISTRY_HOST: {
    description:
      "The registry's hosts.toml leaves no host with the capability a request needs: resolve for tags, pull for digests and blobs, push for pushes.",
    hint: 'give the server or a [host."…"] the capability (capabilities = ["pull", "resolve", "push"])',
  },
  WASMLET_ERR_CREDENTIAL_PROVIDER_CONFIG: {
    description:
      "The credential-provider configuration (--image-credential-provider-config, the kubelet's CredentialProviderConfig) cannot be read or is invalid.",
  },
});
