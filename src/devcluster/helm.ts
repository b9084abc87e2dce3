// helm v4, to lint, render and check charts/wasmlet with the real tool: built from the Go module
// proxy the way `go install helm.sh/helm/v4/cmd/helm@<version>` builds it (helm's own go.mod, no
// throw-away module), stamped with its version as helm's Makefile does, and cached under
// `$XDG_CACHE_HOME/wasmlet/helm/<version>/`. A cold build takes a few minutes on 2 cores; the Go
// build cache makes a rebuild fast.
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { GO_HINT } from "./build-from-source.ts";
import { wasmletCacheDir } from "./cache.ts";
import { BuildLog, obtainGoTool } from "./go-tool.ts";
import { findExecutable } from "./tools.ts";

/** The helm release the machine's Go module list names. */
export const HELM_VERSION = "v4.3.2";
const MODULE = "helm.sh/helm/v4";
const COMMAND = `${MODULE}/cmd/helm`;

/** Where the helm binary of `version` is cached. */
export function helmCacheDir(version = HELM_VERSION): string {
  return join(wasmletCacheDir(), "helm", version);
}

/** `helm version` as the release's Makefile stamps it (`-X …/internal/version.version=…`). */
function ldflags(version: string): string {
  const pkg = `${MODULE}/internal/version`;
  return `-s -w -X ${pkg}.version=${version} -X ${pkg}.gitTreeState=clean`;
}

/**
 * Builds `helm` into `binDir` with `go install …@version`; the compiler output goes to
 * `<binDir>/build.log`. Checks that the binary reports the version it was built from.
 */
export async function buildHelm(
  binDir: string,
  options: { onProgress?: (line: string) => void; version?: string } = {},
): Promise<string> {
  const go = await findExecutable("go", GO_HINT);
  const version = options.version ?? HELM_VERSION;
  const progress = options.onProgress ?? (() => {});
  const gobin = join(binDir, "build");
  await rm(gobin, { recursive: true, force: true });
  await mkdir(gobin, { recursive: true });
  const log = new BuildLog(join(binDir, "build.log"));
  const target = join(binDir, "helm");
  const started = Date.now();
  try {
    progress(
      `building ${MODULE} ${version} from the Go module proxy (a first build takes a few minutes on 2 cores)`,
    );
    await log.run(
      go,
      ["install", "-trimpath", `-ldflags=${ldflags(version)}`, `${COMMAND}@${version}`],
      binDir,
      // helm's releases are static builds (its Makefile's CGO_ENABLED=0).
      { GOBIN: gobin, GOFLAGS: "-mod=mod", CGO_ENABLED: "0" },
    );
    const reported = (
      await log.run(join(gobin, "helm"), ["version", "--template={{.Version}}"], binDir)
    ).trim();
    if (reported !== version) {
      throw new Error(`the built helm reports version ${reported || "(none)"}, not ${version}`);
    }
    await rename(join(gobin, "helm"), target);
  } catch (error) {
    return log.fail(`building helm ${version}`, error);
  }
  await log.close();
  await rm(gobin, { recursive: true, force: true });
  progress(`built helm ${version} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return target;
}

/**
 * The helm binary: `WASMLET_HELM` when set, else the cache, else a build from the Go module proxy
 * into the cache.
 */
export function obtainHelm(
  options: { onProgress?: (line: string) => void } = {},
): Promise<{ binary: string; source: "environment" | "cache" | "built" }> {
  return obtainGoTool({
    name: "helm",
    envVar: "WASMLET_HELM",
    cacheDir: helmCacheDir(),
    build: (dir) => buildHelm(dir, options),
  });
}
