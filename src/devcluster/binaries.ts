// Finds the control-plane binaries, in this order: paths from the environment, the cache,
// a build from the Go module proxy, the official release download (checksums verified).
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { isWasmletError } from "../errors.ts";
import { buildControlPlane } from "./build-from-source.ts";
import { kubernetesCacheDir } from "./cache.ts";
import { downloadControlPlane } from "./download.ts";
import { devclusterError } from "./errors.ts";
import { isExecutable } from "./go-tool.ts";
import { CONTROL_PLANE_BINARIES, type ControlPlaneBinary, KUBERNETES_VERSION } from "./versions.ts";

export type ControlPlaneBinaries = Record<ControlPlaneBinary, string>;

/** `WASMLET_KUBE_APISERVER`, `WASMLET_ETCD`, … for one binary; `WASMLET_KUBE_BIN_DIR` for all. */
export function envVarFor(name: ControlPlaneBinary): string {
  return `WASMLET_${name.toUpperCase().replaceAll("-", "_")}`;
}

async function fromDir(dir: string): Promise<ControlPlaneBinaries | undefined> {
  const found = {} as ControlPlaneBinaries;
  for (const name of CONTROL_PLANE_BINARIES) {
    const path = join(dir, name);
    if (!(await isExecutable(path))) return undefined;
    found[name] = path;
  }
  return found;
}

async function complete(dir: string): Promise<ControlPlaneBinaries> {
  const found = await fromDir(dir);
  if (!found)
    throw devclusterError(
      "WASMLET_ERR_BUILD_FAILED",
      `the control-plane binaries are incomplete in ${dir}`,
    );
  return found;
}

export interface ObtainOptions {
  onProgress?: (line: string) => void;
  /** Try the official download when building is impossible (default true). */
  allowDownload?: boolean;
}

export type BinarySource = "environment" | "cache" | "built" | "downloaded";

export async function obtainControlPlaneBinaries(
  options: ObtainOptions = {},
): Promise<{ binaries: ControlPlaneBinaries; source: BinarySource; dir: string }> {
  const progress = options.onProgress ?? (() => {});
  const envDir = process.env.WASMLET_KUBE_BIN_DIR;
  const fromEnv = {} as Partial<ControlPlaneBinaries>;
  for (const name of CONTROL_PLANE_BINARIES) {
    const path = process.env[envVarFor(name)] ?? (envDir ? join(envDir, name) : undefined);
    if (path === undefined) continue;
    if (!(await isExecutable(path))) {
      throw devclusterError(
        "WASMLET_ERR_TOOL_MISSING",
        `${name} is not an executable file at ${path}`,
        {
          hint: `fix ${process.env[envVarFor(name)] ? envVarFor(name) : "WASMLET_KUBE_BIN_DIR"}`,
        },
      );
    }
    fromEnv[name] = path;
  }
  const cacheDir = kubernetesCacheDir();
  const cached = await fromDir(cacheDir);
  if (Object.keys(fromEnv).length === CONTROL_PLANE_BINARIES.length) {
    return {
      binaries: fromEnv as ControlPlaneBinaries,
      source: "environment",
      dir: envDir ?? cacheDir,
    };
  }
  if (cached) return { binaries: { ...cached, ...fromEnv }, source: "cache", dir: cacheDir };

  await mkdir(cacheDir, { recursive: true });
  progress(
    `control-plane binaries for Kubernetes ${KUBERNETES_VERSION} are not in ${cacheDir}; building them from the Go module proxy`,
  );
  try {
    await buildControlPlane(cacheDir, { onProgress: progress });
    return {
      binaries: { ...(await complete(cacheDir)), ...fromEnv },
      source: "built",
      dir: cacheDir,
    };
  } catch (error) {
    if (!(isWasmletError(error, "WASMLET_ERR_TOOL_MISSING") && options.allowDownload !== false))
      throw error;
    progress(`${(error as Error).message}; trying the official release binaries instead`);
    try {
      await downloadControlPlane(cacheDir, progress);
    } catch (downloadError) {
      throw devclusterError(
        "WASMLET_ERR_TOOL_MISSING",
        `cannot obtain the control plane: Go is not installed and the download failed (${(downloadError as Error).message})`,
        { hint: (error as { hint?: string }).hint, cause: downloadError },
      );
    }
    return {
      binaries: { ...(await complete(cacheDir)), ...fromEnv },
      source: "downloaded",
      dir: cacheDir,
    };
  }
}
