import { homedir } from "node:os";
import { join } from "node:path";
import { KUBERNETES_VERSION } from "./versions.ts";

/** `$XDG_CACHE_HOME/wasmlet` (default `~/.cache/wasmlet`). */
export function wasmletCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "wasmlet");
}

/** Where the control-plane binaries of `version` are cached. */
export function kubernetesCacheDir(version = KUBERNETES_VERSION): string {
  return join(wasmletCacheDir(), "kubernetes", version);
}
