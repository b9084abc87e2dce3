import { defineErrors } from "../errors.ts";

export const quantityError = defineErrors({
  WASMLET_ERR_QUANTITY: {
    description: "A Kubernetes resource quantity (e.g. 100m, 1Gi) could not be parsed.",
  },
});
