// Starts one control plane and one registry for the whole test run (node --test
// --test-global-setup) and tells every test file where they are through WASMLET_TEST_CLUSTER.
// Test files run in child processes, which inherit the environment set here.
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { obtainControlPlaneBinaries } from "../../src/devcluster/binaries.ts";
import { ControlPlane } from "../../src/devcluster/control-plane.ts";
import { LocalRegistry } from "../../src/devcluster/registry.ts";
import { KUBERNETES_VERSION } from "../../src/devcluster/versions.ts";
import type { TestCluster } from "../support/cluster.ts";

let plane: ControlPlane | undefined;
let registry: LocalRegistry | undefined;
let dir: string | undefined;

export async function globalSetup(): Promise<void> {
  const started = Date.now();
  const log = (line: string) =>
    process.stderr.write(`# e2e setup [${Date.now() - started} ms] ${line}\n`);
  dir = await mkdtemp(join(tmpdir(), "wasmlet-e2e-"));
  const { binaries, dir: binDir } = await obtainControlPlaneBinaries({ onProgress: log });
  [plane, registry] = await Promise.all([
    ControlPlane.start({
      binaries,
      dir: join(dir, "cluster"),
      nodeMonitorGracePeriod: "8s",
      evictionTolerationSeconds: 30,
      onProgress: log,
    }),
    LocalRegistry.start({ dir: join(dir, "registry") }),
  ]);
  const info: TestCluster = {
    kubeconfig: plane.kubeconfig,
    bootstrapKubeconfig: plane.bootstrapKubeconfig,
    apiServerUrl: plane.apiServerUrl,
    pkiDir: plane.pki.dir,
    caCertFile: plane.pki.caCert,
    caKeyFile: plane.pki.caKey,
    registry: registry.address,
    binDir,
    kubernetesVersion: KUBERNETES_VERSION,
  };
  // As a cluster admin installs it (nodes, as system:node, may only read RuntimeClasses).
  execFileSync(process.env.KUBECTL ?? "kubectl", [
    "--kubeconfig",
    plane.kubeconfig,
    "apply",
    "-f",
    new URL("../../manifests/runtimeclass.yaml", import.meta.url).pathname,
  ]);
  const file = join(dir, "cluster.json");
  await writeFile(file, JSON.stringify(info, null, 2));
  process.env.WASMLET_TEST_CLUSTER = file;
  log(`cluster ready: ${plane.apiServerUrl}, registry ${registry.address}`);
}

export async function globalTeardown(): Promise<void> {
  await Promise.allSettled([plane?.stop(), registry?.stop()]);
  if (dir && !process.env.WASMLET_KEEP_E2E) await rm(dir, { recursive: true, force: true });
}
