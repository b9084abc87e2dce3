import { defineErrors } from "../errors.ts";

export const networkError = defineErrors({
  WASMLET_ERR_POD_CIDR: {
    description:
      "The pod-cidr network mode has no pod CIDR: neither --pod-cidr nor the Node's spec.podCIDR gives one.",
    hint: "pass --pod-cidr, or run kube-controller-manager with --allocate-node-cidrs",
  },
  WASMLET_ERR_CIDR: {
    description:
      "A CIDR is not an IPv4 block (a.b.c.d/n), has host bits set, or, as a pod CIDR, is smaller than /29.",
  },
});
