// Builds the control plane from the Go module proxy: a throw-away module requires
// k8s.io/kubernetes at the pinned release and replaces each k8s.io staging module (which the
// release's go.mod points at ./staging/…) with its published v0.X.Y twin; etcd builds from
// go.etcd.io/etcd/server/v3 the same way. The Go build cache keeps rebuilds fast.
import { execFile } from "node:child_process";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { BuildLog } from "./go-tool.ts";
import { findExecutable } from "./tools.ts";
import {
  type ControlPlaneBinary,
  ETCD_VERSION,
  KUBERNETES_VERSION,
  STAGING_VERSION,
} from "./versions.ts";

const run = promisify(execFile);
export const GO_HINT =
  "install Go 1.26 or newer (Debian: the golang package is too old; use the official toolchain) or set WASMLET_KUBE_BIN_DIR to a directory holding etcd, kube-apiserver, kube-controller-manager and kube-scheduler";

export interface BuildOptions {
  /** Receives one line per step, for progress output. */
  onProgress?: (line: string) => void;
}

/** The k8s.io modules that the release's go.mod replaces with ./staging directories. */
async function stagingModules(workDir: string): Promise<string[]> {
  const { stdout } = await run(
    "go",
    ["mod", "download", "-json", `k8s.io/kubernetes@${KUBERNETES_VERSION}`],
    {
      cwd: workDir,
      maxBuffer: 16 << 20,
    },
  );
  const goMod = await readFile(JSON.parse(stdout).GoMod as string, "utf8");
  const modules = [...goMod.matchAll(/^\s*(k8s\.io\/[\w.-]+)\s+=>\s+\.\/staging\//gm)].map(
    (m) => m[1]!,
  );
  if (modules.length === 0)
    throw new Error(
      `no staging replacements found in k8s.io/kubernetes@${KUBERNETES_VERSION}'s go.mod`,
    );
  return modules;
}

function versionLdflags(): string {
  const [major, minor] = KUBERNETES_VERSION.slice(1).split(".");
  const stamp = (pkg: string) =>
    [
      `-X ${pkg}.gitVersion=${KUBERNETES_VERSION}`,
      `-X ${pkg}.gitMajor=${major}`,
      `-X ${pkg}.gitMinor=${minor}`,
      `-X ${pkg}.gitTreeState=clean`,
      `-X ${pkg}.buildDate=1970-01-01T00:00:00Z`,
    ].join(" ");
  return `-s -w ${stamp("k8s.io/component-base/version")} ${stamp("k8s.io/client-go/pkg/version")}`;
}

/**
 * Builds the four control-plane binaries into `binDir`. Writes the compiler output to
 * `<binDir>/build.log` and names it in the error when a step fails.
 */
export async function buildControlPlane(binDir: string, options: BuildOptions = {}): Promise<void> {
  await findExecutable("go", GO_HINT);
  const progress = options.onProgress ?? (() => {});
  const buildDir = join(binDir, "build");
  await mkdir(buildDir, { recursive: true });
  const log = new BuildLog(join(binDir, "build.log"));

  const k8sDir = join(buildDir, "kubernetes");
  const etcdDir = join(buildDir, "etcd");
  await mkdir(k8sDir, { recursive: true });
  await mkdir(etcdDir, { recursive: true });
  try {
    progress(`resolving k8s.io/kubernetes ${KUBERNETES_VERSION} from the Go module proxy`);
    await writeFile(join(k8sDir, "go.mod"), "module wasmlet.local/controlplane\n\ngo 1.26.0\n");
    const replaces = (await stagingModules(k8sDir))
      .map((m) => `\t${m} => ${m} ${STAGING_VERSION}`)
      .join("\n");
    await writeFile(
      join(k8sDir, "go.mod"),
      `module wasmlet.local/controlplane\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes ${KUBERNETES_VERSION}\n\nreplace (\n${replaces}\n)\n`,
    );
    await writeFile(
      join(k8sDir, "tools.go"),
      '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n\t_ "k8s.io/kubernetes/cmd/kube-scheduler"\n\t_ "k8s.io/kubernetes/cmd/kubectl"\n)\n',
    );
    await log.go(["mod", "tidy"], k8sDir);
  } catch (error) {
    return log.fail(`resolving k8s.io/kubernetes ${KUBERNETES_VERSION}`, error);
  }
  try {
    progress(
      "compiling kube-apiserver, kube-controller-manager and kube-scheduler (a first build takes 15–40 minutes on 2 cores)",
    );
    const out = join(buildDir, "out");
    await mkdir(out, { recursive: true });
    await log.go(
      [
        "build",
        `-ldflags=${versionLdflags()}`,
        "-o",
        `${out}/`,
        "k8s.io/kubernetes/cmd/kube-apiserver",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
        "k8s.io/kubernetes/cmd/kube-scheduler",
      ],
      k8sDir,
    );
    for (const name of [
      "kube-apiserver",
      "kube-controller-manager",
      "kube-scheduler",
    ] satisfies ControlPlaneBinary[]) {
      await rename(join(out, name), join(binDir, name));
    }
  } catch (error) {
    return log.fail("building the Kubernetes control plane", error);
  }
  try {
    progress(`building etcd ${ETCD_VERSION}`);
    await writeFile(
      join(etcdDir, "go.mod"),
      `module wasmlet.local/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 ${ETCD_VERSION}\n`,
    );
    await writeFile(
      join(etcdDir, "tools.go"),
      '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n',
    );
    await log.go(["mod", "tidy"], etcdDir);
    await log.go(
      ["build", "-ldflags=-s -w", "-o", join(binDir, "etcd"), "go.etcd.io/etcd/server/v3"],
      etcdDir,
    );
  } catch (error) {
    return log.fail(`building etcd ${ETCD_VERSION}`, error);
  }
  await log.close();
  await rm(join(buildDir, "out"), { recursive: true, force: true });
}

/**
 * Builds kubectl of the same release into `binDir` (for machines without one; the module that
 * `buildControlPlane` left in `<binDir>/build/kubernetes` already resolves it).
 */
export async function buildKubectl(binDir: string): Promise<string> {
  const log = new BuildLog(join(binDir, "build-kubectl.log"));
  const target = join(binDir, "kubectl");
  try {
    await log.go(
      ["build", `-ldflags=${versionLdflags()}`, "-o", target, "k8s.io/kubernetes/cmd/kubectl"],
      join(binDir, "build", "kubernetes"),
    );
  } catch (error) {
    return log.fail("building kubectl", error);
  }
  await log.close();
  return target;
}
