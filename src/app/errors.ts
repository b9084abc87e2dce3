import { defineErrors } from "../errors.ts";

export const appError = defineErrors({
  WASMLET_ERR_CLIENT_CA: {
    description: "The CA bundle that verifies kubelet API client certificates cannot be read.",
  },
  WASMLET_ERR_DATA_DIR: {
    description: "The data directory cannot be created or written.",
    hint: "choose another --data-dir or fix its permissions",
  },
  WASMLET_ERR_BOOTSTRAP: {
    description:
      "TLS bootstrapping cannot start: --bootstrap-kubeconfig without --kubeconfig (where the node's own kubeconfig is written), or a bootstrap kubeconfig without a cluster.",
  },
  WASMLET_ERR_SERVICES_UNREAD: {
    description:
      "A container's service environment variables cannot be made yet: the cluster's Services have not been listed once. The container waits with CreateContainerConfigError and is started again.",
  },
  WASMLET_ERR_FILE_MOUNT: {
    description:
      "A single-file mount (a hostPath file, or a subPath naming a file) cannot be placed: the directory holding it is itself a volume mount (WASI mounts directories only), two files are mounted at one path, or a file that cannot be copied (a device, FIFO or socket) is mounted read-only beside a writable file mount, or cannot be linked.",
  },
});
