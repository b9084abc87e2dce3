import { access, constants } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { devclusterError } from "./errors.ts";

/** The absolute path of `name` on PATH, or a WASMLET_ERR_TOOL_MISSING naming how to install it. */
export async function findExecutable(name: string, installHint: string): Promise<string> {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (
      await access(candidate, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return candidate;
  }
  throw devclusterError("WASMLET_ERR_TOOL_MISSING", `${name} is not installed or not on PATH`, {
    hint: installHint,
  });
}
