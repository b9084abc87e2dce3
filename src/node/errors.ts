import { defineErrors } from "../errors.ts";

export const nodeError = defineErrors({
  WASMLET_ERR_NODE_NAME_TAKEN: {
    description:
      "Another live process holds the Node name (its Lease in kube-node-lease is being renewed by someone else).",
    hint: "give this wasmlet another --node-name, or stop the other holder",
  },
  WASMLET_ERR_NODE_REGISTRATION: {
    description: "The Node object could not be created or adopted.",
  },
  WASMLET_ERR_HOST_MEASUREMENT: {
    description:
      "The host's resources could not be measured (CPU, memory, disk of the data directory, process IDs).",
  },
});
