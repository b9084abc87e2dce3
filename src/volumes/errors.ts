import { defineErrors } from "../errors.ts";

export const volumeError = defineErrors({
  WASMLET_ERR_VOLUME_SETUP: {
    description:
      "A pod volume could not be materialised (a ConfigMap or Secret is missing, a key is absent, a hostPath check failed).",
    hint: "kubectl describe pod shows a FailedMount event with the volume's name; wasmlet retries until it succeeds",
  },
  WASMLET_ERR_VOLUME_PATH: {
    description:
      "A volume item path, subPath or subPathExpr is absolute, contains '..', or escapes its volume.",
  },
});
