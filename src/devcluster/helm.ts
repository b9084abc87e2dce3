// helm v4, to lint, render and check charts/wasmlet with the real tool: built from the Go module
// proxy the way `go install helm.sh/helm/v4/cmd/helm@<version>` builds it (helm's own go.mod, no
// throw-away module), stamped with its version as helm's Makefile does, and cached under
// `$XDG_CACHE_HOME/wasmlet/helm/<version>/`. A cold build takes a few minutes on 2 cores; the Go
// build cache makes a rebuild fast.
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { access, constants, mkdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { GO_HINT } from "./build-from-source.ts";
import { wasmletCacheDir } from "./cache.ts";
import { devclusterError } from "./errors.ts";
import { findExecutable } from "./tools.ts";

/** The helm release the machine's Go module list names. */
export const HELM_VERSION = "v4.3.2";
const MODULE = "helm.sh/helm/v4";
const COMMAND = `${MODULE}/cmd/helm`;

/** Where the helm binary of `version` is cached. */
export function helmCacheDir(version = HELM_VERSION): string {
  return join(wasmletCacheDir(), "helm", version);
}

const isExecutable = (path: string) =>
  access(path, constants.X_OK).then(
    () => true,
    () => false,
  );

/** `helm version` as the release's Makefile stamps it (`-X …/internal/version.version=…`). */
function ldflags(version: string): string {
  const pkg = `${MODULE}/internal/version`;
  return `-s -w -X ${pkg}.version=${version} -X ${pkg}.gitTreeState=clean`;
}

/** Runs `command args…` in `cwd` with `env` added, its output appended to `log`. */
function runLogged(
  command: string,
  args: string[],
  cwd: string,
  env: Record<string, string>,
  log: NodeJS.WritableStream,
): Promise<string> {
  log.write(`$ ${command} ${args.join(" ")}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env } });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
    });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0
        ? resolve(stdout)
        : reject(new Error(`${command} ${args[0]} exited with code ${code}`)),
    );
  });
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
  const logFile = join(binDir, "build.log");
  await rm(gobin, { recursive: true, force: true });
  await mkdir(gobin, { recursive: true });
  const log = createWriteStream(logFile, { flags: "w" });
  const target = join(binDir, "helm");
  const started = Date.now();
  try {
    progress(
      `building ${MODULE} ${version} from the Go module proxy (a first build takes a few minutes on 2 cores)`,
    );
    await runLogged(
      go,
      ["install", "-trimpath", `-ldflags=${ldflags(version)}`, `${COMMAND}@${version}`],
      binDir,
      // helm's releases are static builds (its Makefile's CGO_ENABLED=0).
      { GOBIN: gobin, GOFLAGS: "-mod=mod", CGO_ENABLED: "0" },
      log,
    );
    const reported = (
      await runLogged(join(gobin, "helm"), ["version", "--template={{.Version}}"], binDir, {}, log)
    ).trim();
    if (reported !== version) {
      throw new Error(`the built helm reports version ${reported || "(none)"}, not ${version}`);
    }
    await rename(join(gobin, "helm"), target);
  } catch (error) {
    await new Promise((r) => log.end(r));
    const tail = (await readFile(logFile, "utf8").catch(() => ""))
      .trimEnd()
      .split("\n")
      .slice(-15)
      .join("\n");
    throw devclusterError(
      "WASMLET_ERR_BUILD_FAILED",
      `building helm ${version} failed: ${(error as Error).message}; see ${logFile}:\n${tail}`,
      { cause: error },
    );
  }
  await new Promise((r) => log.end(r));
  await rm(gobin, { recursive: true, force: true });
  progress(`built helm ${version} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return target;
}

/**
 * The helm binary: `WASMLET_HELM` when set, else the cache, else a build from the Go module proxy
 * into the cache.
 */
export async function obtainHelm(
  options: { onProgress?: (line: string) => void } = {},
): Promise<{ binary: string; source: "environment" | "cache" | "built" }> {
  const fromEnv = process.env.WASMLET_HELM;
  if (fromEnv) {
    if (!(await isExecutable(fromEnv))) {
      throw devclusterError(
        "WASMLET_ERR_TOOL_MISSING",
        `helm is not an executable file at ${fromEnv}`,
        {
          hint: "fix WASMLET_HELM or unset it to build helm",
        },
      );
    }
    return { binary: fromEnv, source: "environment" };
  }
  const dir = helmCacheDir();
  const cached = join(dir, "helm");
  if (await isExecutable(cached)) return { binary: cached, source: "cache" };
  await mkdir(dir, { recursive: true });
  return { binary: await buildHelm(dir, options), source: "built" };
}
