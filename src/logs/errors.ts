import { defineErrors } from "../errors.ts";

export const logsError = defineErrors({
  WASMLET_ERR_LOG_OPTIONS: {
    description:
      "A container log writer was given an impossible option (size, file count, line size).",
  },
  WASMLET_ERR_LOG_WRITE: {
    description:
      "Writing or rotating a container log file failed (disk full, permissions, path gone).",
    hint: "check free space and permissions of the node's log directory",
  },
});
