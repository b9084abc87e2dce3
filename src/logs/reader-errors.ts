import { defineErrors } from "../errors.ts";

export const readerError = defineErrors({
  WASMLET_ERR_LOG_READ_OPTIONS: {
    description:
      "A container log reader was given an impossible option (negative tailLines, limitBytes below 1, poll interval).",
  },
  WASMLET_ERR_LOG_READ: {
    description:
      "Reading a container log file failed for a reason other than its absence (permissions, I/O error).",
    hint: "check permissions of the node's log directory",
  },
});
