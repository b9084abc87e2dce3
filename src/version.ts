import { readFileSync } from "node:fs";

/** wasmlet's version, from package.json (read once; works from src/ and from dist/). */
export const VERSION: string = JSON.parse(
  readFileSync(new URL("../package.json", import.meta.url), "utf8"),
).version;
