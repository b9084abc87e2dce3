// Runs `wasmlet run` as a child process against the test cluster, the way a user would: its own
// data directory, a unique node name, free ports. Collects its output, and cleans up (the process,
// the Node object, the data directory).
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Node } from "@kubernetes/client-node";
import { hostDefaults } from "../../src/config/host-defaults.ts";
import { freePort } from "../../src/devcluster/ports.ts";
import { httpsRequest, type IssuedCert, issue, loadCA } from "../unit/server/test-pki.ts";
import { eventually, kubectl, kubectlOk, testCluster } from "./cluster.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const NODE = join(ROOT, "node_modules/.bin/node");
const MAIN = join(ROOT, "src/cli/main.ts");

export function uniqueNodeName(prefix = "e2e-node"): string {
  return `${prefix}-${randomBytes(3).toString("hex")}`;
}

/** The host address the API server reaches nodes at (loopback is refused by its node proxy). */
export function nodeIP(): string {
  const ip = hostDefaults.primaryIP();
  if (!ip) throw new Error("this host has no non-loopback address for the test node");
  return ip;
}

export interface StartOptions {
  nodeName?: string;
  /** Flags after the defaults below (later flags of the same name are refused: pass overrides here). */
  args?: string[];
  kubeconfig?: string;
  /** Reuse a data directory (a restart). */
  dataDir?: string;
  port?: number;
  /** InternalIP to register; default the host's address (the API server's node proxy refuses loopback). */
  nodeIP?: string;
  env?: NodeJS.ProcessEnv;
}

export class Wasmlet {
  readonly nodeName: string;
  readonly dataDir: string;
  readonly port: number;
  readonly healthzPort: number;
  readonly #child: ChildProcess;
  #output = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    nodeName: string,
    dataDir: string,
    port: number,
    healthzPort: number,
    child: ChildProcess,
  ) {
    this.nodeName = nodeName;
    this.dataDir = dataDir;
    this.port = port;
    this.healthzPort = healthzPort;
    this.#child = child;
    child.stdout?.on("data", (chunk: Buffer) => {
      this.#output += chunk.toString("utf8");
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      this.#output += chunk.toString("utf8");
    });
    this.exited = new Promise((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal })),
    );
  }

  static async start(options: StartOptions = {}): Promise<Wasmlet> {
    const nodeName = options.nodeName ?? uniqueNodeName();
    const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), `wasmlet-${nodeName}-`)));
    const port = options.port ?? (await freePort());
    const healthzPort = await freePort();
    // Like a real node: it joins with the bootstrap token and runs as system:node:<name>, which
    // the Node authorizer and NodeRestriction confine. A test may give other credentials.
    const credentials = options.kubeconfig
      ? ["--kubeconfig", options.kubeconfig]
      : [
          "--kubeconfig",
          join(dataDir, "kubeconfig"),
          "--bootstrap-kubeconfig",
          testCluster().bootstrapKubeconfig,
        ];
    const args = [
      MAIN,
      "run",
      ...credentials,
      "--node-name",
      nodeName,
      "--node-ip",
      options.nodeIP ?? nodeIP(),
      "--data-dir",
      dataDir,
      "--port",
      String(port),
      "--healthz-port",
      String(healthzPort),
      "--node-lease-renew-interval",
      "1s",
      "--node-status-update-frequency",
      "2s",
      ...(options.args ?? []),
    ];
    const child = spawn(NODE, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...options.env },
    });
    return new Wasmlet(nodeName, dataDir, port, healthzPort, child);
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get running(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Everything it printed so far. */
  get output(): string {
    return this.#output;
  }

  /** Its JSON log lines so far. */
  logs(): Array<Record<string, unknown>> {
    return this.#output
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  async waitForLog(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    return eventually(
      async () => {
        if (!this.running && !pattern.test(this.#output)) {
          throw new Error(
            `wasmlet exited before logging ${pattern}:\n${this.#output.slice(-3000)}`,
          );
        }
        return pattern.exec(this.#output)?.[0];
      },
      `wasmlet to log ${pattern}`,
      timeoutMs,
    );
  }

  kill(signal: NodeJS.Signals): void {
    this.#child.kill(signal);
  }

  /** Its own metrics (`/metrics` on the kubelet API), read as a cluster admin. */
  async metrics(): Promise<string> {
    const answer = await httpsRequest(`https://127.0.0.1:${this.port}/metrics`, {
      client: await clusterAdmin(),
    });
    if (answer.status !== 200)
      throw new Error(`/metrics answered ${answer.status}: ${answer.body}`);
    return answer.body;
  }

  /** Kills the process (if still running), deletes its Node and data directory. */
  async cleanup(options: { keepNode?: boolean; keepDataDir?: boolean } = {}): Promise<void> {
    if (this.running) {
      this.#child.kill("SIGKILL");
      await this.exited;
    }
    if (!options.keepNode) {
      await kubectl(["delete", "node", this.nodeName, "--ignore-not-found", "--wait=false"]);
      const csrs = (await kubectl(["get", "csr", "-o", "name"])).stdout
        .split("\n")
        .filter((name) =>
          name.startsWith(`certificatesigningrequest.certificates.k8s.io/csr-${this.nodeName}-`),
        );
      if (csrs.length > 0) await kubectl(["delete", ...csrs, "--ignore-not-found"]);
    }
    if (!options.keepDataDir) await rm(this.dataDir, { recursive: true, force: true });
  }
}

let admin: Promise<IssuedCert> | undefined;

/** A client certificate in system:masters from the test cluster's CA (one per test process). */
export function clusterAdmin(): Promise<IssuedCert> {
  admin ??= (async () => {
    const cluster = testCluster();
    const ca = await loadCA(
      await readFile(cluster.caCertFile, "utf8"),
      await readFile(cluster.caKeyFile, "utf8"),
    );
    return issue(ca, "e2e-cluster-admin", { groups: ["system:masters"] });
  })();
  return admin;
}

/** The value of one sample in Prometheus text (`name{labels}` exactly as rendered), 0 when absent. */
export function sample(metrics: string, series: string): number {
  const line = metrics.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

export interface NodeCondition {
  type: string;
  status: string;
  reason: string;
  message: string;
  lastHeartbeatTime: string;
  lastTransitionTime: string;
}

/** The Node as kubectl prints it (JSON: timestamps are strings). */
export async function getNode(name: string): Promise<V1Node | undefined> {
  const result = await kubectl(["get", "node", name, "-o", "json"]);
  return result.code === 0 ? JSON.parse(result.stdout) : undefined;
}

export async function readyCondition(name: string): Promise<NodeCondition | undefined> {
  const node = await getNode(name);
  return node?.status?.conditions?.find((c) => c.type === "Ready") as NodeCondition | undefined;
}

export async function waitForReady(
  name: string,
  status = "True",
  timeoutMs = 30_000,
): Promise<NodeCondition> {
  return eventually(
    async () => {
      const ready = await readyCondition(name);
      return ready?.status === status ? ready : undefined;
    },
    `node ${name} Ready=${status}`,
    timeoutMs,
    250,
  );
}

/** A kubeconfig for the test cluster that authenticates with `token`. */
export async function tokenKubeconfig(dir: string, token: string): Promise<string> {
  const { apiServerUrl, caCertFile } = testCluster();
  const file = join(dir, "token.kubeconfig");
  await writeFile(
    file,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      `- name: e2e\n  cluster:\n    server: ${apiServerUrl}\n    certificate-authority: ${caCertFile}`,
      "users:",
      `- name: e2e\n  user:\n    token: ${token}`,
      "contexts:",
      "- name: e2e\n  context:\n    cluster: e2e\n    user: e2e",
      "current-context: e2e",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  return file;
}

/** A short-lived token for a ServiceAccount (created if missing). */
export async function serviceAccountToken(namespace: string, name: string): Promise<string> {
  await kubectl(["-n", namespace, "create", "serviceaccount", name]);
  return (await kubectlOk(["-n", namespace, "create", "token", name, "--duration=1h"])).trim();
}
