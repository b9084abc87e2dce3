import { defineErrors } from "../errors.ts";

export const podError = defineErrors({
  WASMLET_ERR_CONTAINER_CONFIG: {
    description:
      "A container's environment or mounts could not be resolved (a required ConfigMap/Secret or key is missing, a fieldRef is unsupported, a subPath is invalid): the container waits with CreateContainerConfigError.",
    hint: "create the missing object or key; wasmlet retries on its own",
  },
  WASMLET_ERR_PROBE_PORT: {
    description:
      "A probe's or lifecycle hook's port names no port of the container, or is not a number from 1 to 65535 (the kubelet's words in the probe's message).",
  },
  WASMLET_ERR_ILLEGAL_TRANSITION: {
    description:
      "A pod lifecycle state named a next state that is not among its declared transitions (a wasmlet bug).",
  },
  WASMLET_ERR_LIFECYCLE_STATE: {
    description:
      "A pod lifecycle met a state it cannot be in: a container without its spec or image at start, or a step past Terminated (a wasmlet bug).",
  },
  WASMLET_ERR_CONTROLLER_CLOSED: {
    description: "The pod controller was given work after close() or destroy().",
  },
  WASMLET_ERR_DUPLICATE_INSTANCE: {
    description:
      "A second instance of one container was about to start while the first still runs (a wasmlet bug; the start is refused).",
  },
});
