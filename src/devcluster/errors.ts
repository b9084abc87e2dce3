import { defineErrors } from "../errors.ts";

export const devclusterError = defineErrors({
  WASMLET_ERR_TOOL_MISSING: {
    description:
      "A program the local cluster needs (go, docker-registry, htpasswd) is not installed.",
  },
  WASMLET_ERR_BUILD_FAILED: {
    description: "Building a control-plane binary from the Go module proxy failed.",
    hint: "the build log named in the message has the compiler's output",
  },
  WASMLET_ERR_DOWNLOAD_FAILED: {
    description: "Downloading or verifying an official release binary failed.",
  },
  WASMLET_ERR_PORT_IN_USE: {
    description: "A port the local cluster was told to use is already taken.",
    hint: "stop whatever listens there or choose another port",
  },
  WASMLET_ERR_COMPONENT_NOT_READY: {
    description: "A control-plane component or the registry did not become ready in time.",
  },
  WASMLET_ERR_NODE_BOOTSTRAP: {
    description:
      "The local cluster could not be set up for node TLS bootstrapping (bootstrap token, approval bindings).",
  },
  WASMLET_ERR_COMPONENT_EXITED: {
    description: "A control-plane component or the registry exited on its own.",
  },
});
