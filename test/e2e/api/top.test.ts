// `kubectl top` for a wasm node through a real metrics-server (built from the Go module proxy,
// registered with the API server's aggregation layer, scraping the node's /metrics/resource with a
// client certificate from the cluster CA), and the read endpoints it and older tools use, read
// directly: /metrics/resource, /stats/summary, /pods and /metrics.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { writeKubeconfig } from "../../../src/devcluster/kubeconfig.ts";
import {
  type ClusterObjects,
  type Manifest,
  MetricsServer,
  obtainMetricsServer,
} from "../../../src/devcluster/metrics-server.ts";
import { eventually, kubectl, kubectlOk, testCluster } from "../../support/cluster.ts";
import { nodeIP, sample } from "../../support/wasmlet.ts";
import { httpsRequest, type IssuedCert, issue, loadCA } from "../../unit/server/test-pki.ts";
import {
  applyJson,
  type PodTestBed,
  phaseIs,
  startPodTestBed,
  waitForPod,
} from "../pods/support.ts";

let bed: PodTestBed;
let metricsServer: MetricsServer | undefined;
let dir: string;
let admin: IssuedCert;

/** The cluster through kubectl, as an admin. */
const viaKubectl: ClusterObjects = {
  async apply(manifest: Manifest) {
    await kubectlOk(
      ["apply", "--server-side", "--force-conflicts", "--field-manager=e2e-top", "-f", "-"],
      { input: JSON.stringify(manifest) },
    );
  },
  async delete(manifest: Manifest) {
    await kubectlOk(["delete", "--ignore-not-found", "--wait=false", "-f", "-"], {
      input: JSON.stringify(manifest),
    });
  },
  async get(manifest: Manifest) {
    const result = await kubectl(["get", "-o", "json", "-f", "-"], {
      input: JSON.stringify(manifest),
    });
    if (result.code !== 0) return undefined;
    // Objects read with -f come as a List.
    const list = JSON.parse(result.stdout) as { items?: Array<Record<string, unknown>> };
    return list.items?.[0];
  },
};

function pod(name: string, container: Record<string, unknown>) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name },
    spec: {
      runtimeClassName: bed.runtimeClass,
      restartPolicy: "Never",
      containers: [{ name: "main", ...container }],
    },
  };
}

before(async () => {
  const cluster = testCluster();
  dir = await mkdtemp(join(tmpdir(), "wasmlet-e2e-top-"));
  const ca = await loadCA(
    await readFile(cluster.caCertFile, "utf8"),
    await readFile(cluster.caKeyFile, "utf8"),
  );
  admin = await issue(ca, "e2e-top-admin", { groups: ["system:masters"] });
  const [{ binary }, bedReady] = await Promise.all([
    obtainMetricsServer({ onProgress: (line) => process.stderr.write(`# ${line}\n`) }),
    startPodTestBed("top"),
  ]);
  bed = bedReady;
  await applyJson(bed.namespace, pod("busy", { image: await bed.image("cpuloop") }));
  await applyJson(
    bed.namespace,
    pod("idle", { image: await bed.image("ticker"), env: [{ name: "TICK_MS", value: "500" }] }),
  );
  // A busy loop held to a fifth of a core by its CPU limit.
  await applyJson(
    bed.namespace,
    pod("limited", {
      image: await bed.image("cpuloop"),
      resources: { limits: { cpu: "200m", memory: "64Mi" } },
    }),
  );

  // metrics-server's identity: a client certificate of the cluster CA, for the API server and
  // for the node; RBAC as the upstream manifest grants it (the starter applies it).
  const user = "e2e-metrics-server";
  const identity = await issue(ca, user);
  const certFile = join(dir, "metrics-server.crt");
  const keyFile = join(dir, "metrics-server.key");
  await writeFile(certFile, identity.cert);
  await writeFile(keyFile, identity.key, { mode: 0o600 });
  const kubeconfig = await writeKubeconfig(join(dir, "metrics-server.kubeconfig"), {
    server: cluster.apiServerUrl,
    caFile: cluster.caCertFile,
    user: { certFile, keyFile },
    userName: user,
  });
  metricsServer = await MetricsServer.start({
    binary,
    cluster: viaKubectl,
    kubeconfig,
    user,
    kubeletClient: { certFile, keyFile },
    // The API server reaches it through an EndpointSlice: the host's own address, not loopback.
    address: nodeIP(),
    dir: join(dir, "metrics-server"),
    metricResolution: "10s",
    nodeSelector: `kubernetes.io/hostname=${bed.wasmlet.nodeName}`,
    onProgress: (line) => process.stderr.write(`# ${line}\n`),
  });
  await Promise.all(
    ["busy", "idle", "limited"].map((name) =>
      waitForPod(bed.namespace, name, "Running", phaseIs("Running")),
    ),
  );
});

after(async () => {
  if (metricsServer && process.env.WASMLET_E2E_DEBUG)
    process.stderr.write(`${await metricsServer.logTail(40)}\n`);
  await metricsServer?.stop();
  await bed?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** kubectl's CPU column (`250m`, `1`) in millicores. */
function millicores(text: string): number {
  const match = /^(\d+)(m?)$/.exec(text);
  assert.ok(match, `a CPU quantity: ${text}`);
  return match[2] ? Number(match[1]) : Number(match[1]) * 1000;
}

/** A Kubernetes memory quantity (`123456`, `120Ki`, `3Mi`) in bytes. */
function bytes(text: string): number {
  const match = /^(\d+)(Ki|Mi|Gi)?$/.exec(text);
  assert.ok(match, `a memory quantity: ${text}`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 }[match[2] ?? ""] ?? 1;
  return Number(match[1]) * unit;
}

/** Rows of a `kubectl top … --no-headers` table, by name. */
function rows(output: string): Map<string, string[]> {
  return new Map(
    output
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((line) => {
        const [name, ...columns] = line.trim().split(/\s+/);
        return [name!, columns];
      }),
  );
}

test("kubectl top node shows the wasm node's CPU and memory", async () => {
  // The first numbers need two scrapes (a CPU rate), 10 s apart.
  const row = await eventually(
    async () => {
      const result = await kubectl(["top", "node", bed.wasmlet.nodeName, "--no-headers"]);
      return result.code === 0 ? rows(result.stdout).get(bed.wasmlet.nodeName) : undefined;
    },
    `kubectl top node ${bed.wasmlet.nodeName}`,
    60_000,
    1000,
  );
  const [cpu, cpuPercent, memory, memoryPercent] = row;
  // The busy pod burns a core in a worker thread of the node's process.
  assert.ok(millicores(cpu!) >= 300, `node CPU ${cpu}`);
  assert.match(cpuPercent!, /^\d+%$/);
  assert.ok(bytes(memory!) >= 20 * 2 ** 20, `node memory ${memory}`);
  assert.match(memoryPercent!, /^\d+%$/);
});

test("kubectl top pod shows CPU for the busy pod and memory for every pod", async () => {
  const table = await eventually(
    async () => {
      const result = await kubectl(["-n", bed.namespace, "top", "pod", "--no-headers"]);
      const found = result.code === 0 ? rows(result.stdout) : undefined;
      return found?.has("busy") && found.has("idle") ? found : undefined;
    },
    "kubectl top pod listing busy and idle",
    60_000,
    1000,
  );
  const [busyCpu] = table.get("busy")!;
  const [idleCpu] = table.get("idle")!;
  assert.ok(millicores(busyCpu!) >= 300, `busy CPU ${busyCpu}`);
  assert.ok(millicores(idleCpu!) < millicores(busyCpu!) / 4, `idle CPU ${idleCpu}`);

  // kubectl rounds memory to whole Mi; a small guest's linear memory can be below that, so the
  // exact numbers come from the metrics API that kubectl top reads.
  const list = JSON.parse(
    await kubectlOk([
      "get",
      "--raw",
      `/apis/metrics.k8s.io/v1beta1/namespaces/${bed.namespace}/pods`,
    ]),
  ) as {
    items: Array<{
      metadata: { name: string };
      timestamp: string;
      window: string;
      containers: Array<{ name: string; usage: { cpu: string; memory: string } }>;
    }>;
  };
  const byName = new Map(list.items.map((item) => [item.metadata.name, item]));
  for (const name of ["busy", "idle"]) {
    const metrics = byName.get(name);
    assert.ok(metrics, `PodMetrics for ${name}`);
    assert.deepEqual(
      metrics.containers.map((c) => c.name),
      ["main"],
    );
    assert.ok(bytes(metrics.containers[0]!.usage.memory) > 0, `${name} memory`);
    assert.ok(Math.abs(Date.parse(metrics.timestamp) - Date.now()) < 60_000);
  }
  const busyNano = /^(\d+)n$/.exec(byName.get("busy")!.containers[0]!.usage.cpu);
  assert.ok(busyNano && Number(busyNano[1]) >= 3e8, byName.get("busy")!.containers[0]!.usage.cpu);
});

test("a CPU limit holds a busy loop to it: limits.cpu 200m reads about 200m in the metrics API", async () => {
  /** The limited pod's CPU (millicores) in a metrics window newer than `after`. */
  const reading = async (after: number) =>
    await eventually(
      async () => {
        const metrics = JSON.parse(
          await kubectlOk([
            "get",
            "--raw",
            `/apis/metrics.k8s.io/v1beta1/namespaces/${bed.namespace}/pods/limited`,
          ]),
        ) as { timestamp: string; containers: Array<{ usage: { cpu: string } }> };
        const nano = /^(\d+)n$/.exec(metrics.containers[0]?.usage.cpu ?? "");
        return Date.parse(metrics.timestamp) > after && nano
          ? { at: Date.parse(metrics.timestamp), millicores: Number(nano[1]) / 1e6 }
          : undefined;
      },
      "a new PodMetrics window for the limited pod",
      60_000,
      1000,
    );
  // Three consecutive 10 s windows (metrics-server's resolution here).
  const windows: number[] = [];
  let after = 0;
  for (let i = 0; i < 3; i++) {
    const next = await reading(after);
    windows.push(next.millicores);
    after = next.at;
  }
  const mean = windows.reduce((a, b) => a + b, 0) / windows.length;
  const read = `limited pod: ${windows.map((w) => w.toFixed(0)).join(", ")}m`;
  // The limit is a ceiling: never above it (one period's slack).
  assert.ok(mean <= 210, read);
  for (const w of windows) assert.ok(w <= 230, read);
  // And a busy loop gets its quota when the machine has room for it (190-210m on an idle one;
  // a loaded 2-core CI machine may not give a thread a fifth of a core every period).
  assert.ok(mean >= 150, read);
});

/** Prometheus text lines of `name` (with or without labels). */
function samples(text: string, name: string): string[][] {
  return text
    .split("\n")
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .map((line) => {
      const close = line.lastIndexOf("}");
      const rest = (close >= 0 ? line.slice(close + 1) : line.slice(name.length)).trim();
      return [close >= 0 ? line.slice(name.length, close + 1) : "", ...rest.split(" ")];
    });
}

test("/metrics/resource has timestamped node, pod and container samples that grow with work", async () => {
  const base = `https://127.0.0.1:${bed.wasmlet.port}`;
  const read = async () => {
    const answer = await httpsRequest(`${base}/metrics/resource`, { client: admin });
    assert.equal(answer.status, 200);
    assert.match(String(answer.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
    return answer.body;
  };
  const first = await read();
  await new Promise((r) => setTimeout(r, 1000));
  const second = await read();
  const busy = `{container="main",namespace="${bed.namespace}",pod="busy"}`;
  const cpuOf = (text: string) =>
    samples(text, "container_cpu_usage_seconds_total").find(([labels]) => labels === busy);
  const [, before, beforeMs] = cpuOf(first)!;
  const [, after, afterMs] = cpuOf(second)!;
  const rate = (Number(after) - Number(before)) / ((Number(afterMs) - Number(beforeMs)) / 1000);
  assert.ok(rate > 0.3, `the busy container used ${rate.toFixed(2)} cores`);
  assert.ok(Math.abs(Number(afterMs) - Date.now()) < 10_000, "timestamps are epoch milliseconds");

  for (const name of [
    "node_cpu_usage_seconds_total",
    "node_memory_working_set_bytes",
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "container_start_time_seconds",
    "pod_cpu_usage_seconds_total",
    "pod_memory_working_set_bytes",
  ]) {
    const found = samples(second, name);
    assert.ok(found.length > 0, `${name} is there`);
    for (const [labels, value, time] of found) {
      assert.ok(Number(value) > 0, `${name}${labels} = ${value}`);
      assert.match(String(time), /^\d{13}$/, `${name}${labels} carries its own timestamp`);
    }
  }
  for (const pod of ["busy", "idle"]) {
    const labels = `{container="main",namespace="${bed.namespace}",pod="${pod}"}`;
    const start = samples(second, "container_start_time_seconds").find(([l]) => l === labels);
    assert.ok(start, `start time of ${pod}`);
    assert.ok(Math.abs(Number(start[1]) * 1000 - Date.now()) < 300_000, `${pod} started lately`);
  }
  assert.deepEqual(samples(second, "resource_scrape_error"), [["", "0"]]);
});

interface CpuStats {
  usageCoreNanoSeconds: number;
  usageNanoCores?: number;
}

interface Summary {
  node: { nodeName: string; cpu: CpuStats; memory: { workingSetBytes: number } };
  pods: Array<{
    podRef: { name: string; namespace: string; uid: string };
    cpu: CpuStats;
    containers: Array<{ name: string; cpu: CpuStats; memory: { workingSetBytes: number } }>;
  }>;
}

test("/stats/summary, /pods and /metrics describe the same node and pods", async () => {
  const base = `https://127.0.0.1:${bed.wasmlet.port}`;
  const readSummary = async () => {
    const answer = await httpsRequest(`${base}/stats/summary`, { client: admin });
    assert.equal(answer.status, 200);
    return JSON.parse(answer.body) as Summary;
  };
  // Like the kubelet's, CPU comes as a total and as a rate (usageNanoCores, what tools that
  // predate /metrics/resource show): a rate needs an earlier sample.
  await readSummary();
  await new Promise((r) => setTimeout(r, 1500));
  const summary = await readSummary();
  assert.equal(summary.node.nodeName, bed.wasmlet.nodeName);
  assert.ok(summary.node.cpu.usageCoreNanoSeconds > 0);
  assert.ok(summary.node.memory.workingSetBytes > 0);
  assert.ok(
    (summary.node.cpu.usageNanoCores ?? 0) >= 3e8,
    `node ${summary.node.cpu.usageNanoCores}`,
  );
  const ours = summary.pods.filter((p) => p.podRef.namespace === bed.namespace);
  assert.deepEqual(ours.map((p) => p.podRef.name).sort(), ["busy", "idle", "limited"]);
  for (const p of ours) {
    assert.equal(p.containers[0]?.name, "main");
    assert.ok(p.containers[0]!.cpu.usageCoreNanoSeconds > 0);
    assert.ok(p.containers[0]!.memory.workingSetBytes > 0);
    assert.equal(typeof p.containers[0]!.cpu.usageNanoCores, "number", `${p.podRef.name} rate`);
    assert.equal(p.cpu.usageNanoCores, p.containers[0]!.cpu.usageNanoCores);
  }
  const busy = ours.find((p) => p.podRef.name === "busy")!.containers[0]!.cpu.usageNanoCores!;
  const idle = ours.find((p) => p.podRef.name === "idle")!.containers[0]!.cpu.usageNanoCores!;
  assert.ok(busy >= 3e8, `busy uses ${busy} nanocores`);
  assert.ok(idle < busy / 4, `idle uses ${idle} nanocores`);

  const podsAnswer = await httpsRequest(`${base}/pods`, { client: admin });
  assert.equal(podsAnswer.status, 200);
  const podList = JSON.parse(podsAnswer.body) as {
    kind: string;
    items: Array<{ metadata: { name: string; namespace: string; uid: string } }>;
  };
  assert.equal(podList.kind, "PodList");
  const listed = podList.items.filter((p) => p.metadata.namespace === bed.namespace);
  assert.deepEqual(listed.map((p) => p.metadata.name).sort(), ["busy", "idle", "limited"]);
  for (const p of listed)
    assert.equal(p.metadata.uid, ours.find((s) => s.podRef.name === p.metadata.name)?.podRef.uid);

  const metrics = await httpsRequest(`${base}/metrics`, { client: admin });
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /^wasmlet_pods\{phase="Running"\} ([2-9]|\d{2,})$/m);
  assert.match(metrics.body, /^wasmlet_pod_start_duration_seconds_count \d+$/m);
  assert.match(metrics.body, /^wasmlet_image_pulls_total\{result="pulled"\} [1-9]\d*$/m);
  assert.ok(sample(metrics.body, "wasmlet_image_pull_bytes_total") > 1000, "pull bytes counted");
  assert.ok(sample(metrics.body, 'wasmlet_workers{state="busy"}') >= 2, "busy workers");
  assert.match(metrics.body, /^# TYPE wasmlet_kube_api_errors_total counter$/m);
  const busyCpu = new RegExp(
    `^wasmlet_container_cpu_usage_seconds\\{namespace="${bed.namespace}",pod="busy",container="main"\\} ([\\d.e+-]+)$`,
    "m",
  ).exec(metrics.body);
  assert.ok(busyCpu && Number(busyCpu[1]) > 1, `busy pod's CPU in /metrics: ${busyCpu?.[1]}`);
  assert.match(metrics.body, /^process_cpu_user_seconds_total [\d.e+-]+$/m);
});
