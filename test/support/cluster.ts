// What end-to-end tests share: one control plane and one registry per test run, started by
// test/e2e/global-setup.ts and described to every test file through WASMLET_TEST_CLUSTER (the
// path of a JSON file). Each test works in a namespace of its own.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

export interface TestCluster {
  /** Admin kubeconfig (cluster-admin client certificate). */
  kubeconfig: string;
  /** Bootstrap-token kubeconfig: nodes join with it and run as system:node:<name>. */
  bootstrapKubeconfig: string;
  apiServerUrl: string;
  /** Directory holding the throw-away PKI: ca.crt/ca.key (cluster CA, also the client CA), and more. */
  pkiDir: string;
  caCertFile: string;
  caKeyFile: string;
  /** host:port of an anonymous plain-HTTP registry. */
  registry: string;
  /** The directory with etcd, kube-apiserver, kube-scheduler, kube-controller-manager. */
  binDir: string;
  /** Kubernetes version of the control plane, e.g. v1.37.2. */
  kubernetesVersion: string;
}

let cached: TestCluster | undefined;

export function testCluster(): TestCluster {
  if (cached) return cached;
  const file = process.env.WASMLET_TEST_CLUSTER;
  if (!file) {
    throw new Error(
      "WASMLET_TEST_CLUSTER is not set: run end-to-end tests through `npm test` or `npm run test:e2e` (they start the shared control plane)",
    );
  }
  cached = JSON.parse(readFileSync(file, "utf8")) as TestCluster;
  return cached;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the machine's real kubectl against the test cluster (or `kubeconfig`). Never throws on non-zero exit. */
export function kubectl(
  args: string[],
  options: { kubeconfig?: string; input?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  const kubeconfig = options.kubeconfig ?? testCluster().kubeconfig;
  return new Promise((resolve) => {
    const child = execFile(
      process.env.KUBECTL ?? "kubectl",
      ["--kubeconfig", kubeconfig, ...args],
      { timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Like kubectl() but throws with kubectl's stderr when it fails. */
export async function kubectlOk(
  args: string[],
  options: Parameters<typeof kubectl>[1] = {},
): Promise<string> {
  const result = await kubectl(args, options);
  if (result.code !== 0)
    throw new Error(`kubectl ${args.join(" ")} failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}

/**
 * Creates a fresh namespace and waits until pods can be created in it (they are refused until its
 * default ServiceAccount exists); the returned function deletes it (without waiting).
 */
export async function createNamespace(
  prefix = "e2e",
): Promise<{ name: string; remove: () => Promise<void> }> {
  const name = `${prefix}-${randomBytes(3).toString("hex")}`;
  await kubectlOk(["create", "namespace", name]);
  await eventually(
    async () =>
      (await kubectl(["-n", name, "run", "admission-probe", "--image=probe", "--restart=Never"]))
        .code === 0,
    `pods to be admitted in namespace ${name}`,
  );
  await kubectlOk(["-n", name, "delete", "pod", "admission-probe", "--grace-period=0", "--force"]);
  return {
    name,
    remove: async () => {
      await kubectl(["delete", "namespace", name, "--wait=false"]);
    },
  };
}

/** Polls `probe` until it returns a truthy value or `timeoutMs` passes (then throws with `what`). */
export async function eventually<T>(
  probe: () => Promise<T | undefined | false>,
  what: string,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError}` : ""}`,
  );
}
