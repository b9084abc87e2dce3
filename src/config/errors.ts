import { defineErrors } from "../errors.ts";

export const configError = defineErrors({
  WASMLET_ERR_CONFIG_INVALID: {
    description:
      "A configuration value (flag, WASMLET_* environment variable or config file key) is invalid.",
    hint: "run `wasmlet run --help` for every option and its format",
  },
  WASMLET_ERR_CONFIG_FILE: {
    description: "The configuration file cannot be read or is not a YAML mapping of known options.",
  },
});
