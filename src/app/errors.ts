import { defineErrors } from "../errors.ts";

export const appError = defineErrors({
  WASMLET_ERR_CLIENT_CA: {
    description: "The CA bundle that verifies kubelet API client certificates cannot be read.",
  },
  WASMLET_ERR_DATA_DIR: {
    description: "The data directory cannot be created or written.",
    hint: "choose another --data-dir or fix its permissions",
  },
  WASMLET_ERR_FILE_MOUNT: {
    description:
      "A single-file mount (a subPath naming a file) cannot be placed: the directory holding it is itself a volume mount, and WASI mounts directories only.",
  },
});
