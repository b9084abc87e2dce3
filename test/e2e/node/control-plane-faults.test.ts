// Faults of the control plane, on a private one: the shared control plane serves every test file
// at once, so it is never restarted. The API server crashes and comes back, then etcd does, each in
// the middle of a burst of pod creations; a node freezes (SIGSTOP) past its grace period and
// resumes; then a node is lost under a Deployment and the real controller-manager (node grace
// period 8 s, eviction after 30 s, as in global-setup.ts) brings its pods back on the other nodes.
// Three wasmlet nodes join the private control plane by TLS bootstrapping, as system:node, like
// every e2e node.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import { obtainControlPlaneBinaries } from "../../../src/devcluster/binaries.ts";
import { ControlPlane, type ControlPlaneComponent } from "../../../src/devcluster/control-plane.ts";
import { pushWasmArtifact, RegistryClient } from "../../../src/images/index.ts";
import { type CommandResult, eventually, kubectl, testCluster } from "../../support/cluster.ts";
import { buildGuest } from "../../support/guests.ts";
import { uniqueNodeName, Wasmlet } from "../../support/wasmlet.ts";
import { runtimeClassManifest } from "../pods/support.ts";

const NAMESPACE = "faults";
const RUNTIME_CLASS = "wasmlet";
/** Each burst: half long-running pods, half pods that finish after JOB_TICKS ticks. */
const BURST = 20;
const JOB_TICKS = 32;

let dir: string;
let plane: ControlPlane;
let image: string;
const nodes: Wasmlet[] = [];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function k(args: string[], options: { input?: string; timeoutMs?: number } = {}) {
  return kubectl(args, { kubeconfig: plane.kubeconfig, ...options });
}

async function kOk(args: string[], options: { input?: string } = {}): Promise<string> {
  const result = await k(args, options);
  if (result.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

async function pods(selector: string): Promise<V1Pod[]> {
  const out = await kOk(["-n", NAMESPACE, "get", "pods", "-l", selector, "-o", "json"]);
  return (JSON.parse(out) as { items: V1Pod[] }).items;
}

async function getNode(name: string): Promise<V1Node | undefined> {
  const result = await k(["get", "node", name, "-o", "json"]);
  return result.code === 0 ? (JSON.parse(result.stdout) as V1Node) : undefined;
}

const readyOf = (node: V1Node | undefined) =>
  node?.status?.conditions?.find((c) => c.type === "Ready");

function waitForNodeReady(name: string, status: string, timeoutMs = 30_000): Promise<V1Node> {
  return eventually(
    async () => {
      const node = await getNode(name);
      return readyOf(node)?.status === status ? node : undefined;
    },
    `node ${name} Ready=${status}`,
    timeoutMs,
    250,
  );
}

interface Lease {
  metadata: { uid: string };
  spec: { holderIdentity?: string; renewTime?: string };
}

async function lease(name: string): Promise<Lease> {
  return JSON.parse(await kOk(["-n", "kube-node-lease", "get", "lease", name, "-o", "json"]));
}

/** A node of the private control plane: bootstrap token, system:node, its own data directory. */
async function startNode(
  nodeName: string,
  restart?: { dataDir: string; port: number; args?: string[] },
): Promise<Wasmlet> {
  const dataDir = restart?.dataDir ?? (await mkdtemp(join(dir, `${nodeName}-`)));
  return Wasmlet.start({
    nodeName,
    dataDir,
    ...(restart ? { port: restart.port } : {}),
    nodeIP: "127.0.0.1",
    kubeconfig: join(dataDir, "kubeconfig"),
    args: [
      "--bootstrap-kubeconfig",
      plane.bootstrapKubeconfig,
      "--allow-self-signed",
      "--no-tls-bootstrap",
      "--api-request-timeout",
      "3s",
      ...(restart?.args ?? []),
    ],
  });
}

async function pushTicker(): Promise<string> {
  const reference = `${testCluster().registry}/e2e/ticker:v1`;
  await pushWasmArtifact(await readFile(await buildGuest("ticker")), reference, {
    client: new RegistryClient(),
  });
  return reference;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wasmlet-cp-faults-"));
  const { binaries } = await obtainControlPlaneBinaries();
  [plane, image] = await Promise.all([
    ControlPlane.start({
      binaries,
      dir: join(dir, "cluster"),
      nodeMonitorGracePeriod: "8s",
      evictionTolerationSeconds: 30,
    }),
    pushTicker(),
  ]);
  for (let i = 0; i < 3; i++) nodes.push(await startNode(uniqueNodeName("cp-faults")));
  await kOk(["create", "namespace", NAMESPACE]);
  await kOk(["apply", "-f", "-"], {
    input: runtimeClassManifest(RUNTIME_CLASS),
  });
  await Promise.all(nodes.map((n) => waitForNodeReady(n.nodeName, "True", 60_000)));
  // Pods are refused until the namespace's default ServiceAccount exists.
  await eventually(
    async () => (await k(["-n", NAMESPACE, "get", "serviceaccount", "default"])).code === 0,
    "the default ServiceAccount",
  );
});

after(async () => {
  for (const node of nodes) await node.cleanup({ keepNode: true });
  await plane?.stop();
  if (dir && !process.env.WASMLET_KEEP_E2E) await rm(dir, { recursive: true, force: true });
});

/** The tick numbers of a log, in order. */
function ticks(log: string): number[] {
  return [...log.matchAll(/^tick (\d+)$/gm)].map((m) => Number(m[1]));
}

const oneToN = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

function burstPod(tag: string, index: number): { name: string; job: boolean; manifest: object } {
  const job = index % 2 === 1;
  const name = `${tag}-${job ? "job" : "run"}-${index}`;
  const env = job
    ? [
        { name: "COUNT", value: String(JOB_TICKS) },
        { name: "TICK_MS", value: "250" },
      ]
    : [{ name: "TICK_MS", value: "500" }];
  return {
    name,
    job,
    manifest: {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: NAMESPACE, labels: { burst: tag } },
      spec: {
        runtimeClassName: RUNTIME_CLASS,
        restartPolicy: job ? "Never" : "Always",
        terminationGracePeriodSeconds: 2,
        containers: [{ name: "main", image, env }],
      },
    },
  };
}

/**
 * Creates the pods `concurrency` at a time, each retried until the API server has it (as a
 * controller would): an AlreadyExists answer means an earlier attempt got through.
 */
async function createAll(
  manifests: object[],
  concurrency: number,
  attempts: { failed: number },
): Promise<void> {
  const queue = [...manifests];
  const deadline = Date.now() + 120_000;
  const worker = async () => {
    for (let manifest = queue.shift(); manifest; manifest = queue.shift()) {
      for (;;) {
        const result: CommandResult = await k(["create", "-f", "-", "--request-timeout=5s"], {
          input: JSON.stringify(manifest),
          timeoutMs: 15_000,
        });
        if (result.code === 0 || /AlreadyExists/.test(result.stderr)) break;
        attempts.failed++;
        if (Date.now() > deadline) throw new Error(`cannot create a pod: ${result.stderr}`);
        await sleep(250); // a client's retry interval
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

const isRunningReady = (pod: V1Pod) =>
  pod.status?.phase === "Running" &&
  pod.status.containerStatuses?.[0]?.state?.running !== undefined &&
  pod.status.containerStatuses[0].ready === true;

const mainOf = (pod: V1Pod | undefined) => pod?.status?.containerStatuses?.[0];

const condition = (pod: V1Pod, type: string) =>
  pod.status?.conditions?.find((c) => c.type === type);

/**
 * A burst of pod creations with `component` crashing (SIGKILL) in its middle: the first half is
 * created and a finishing pod runs, the component is killed, the second half is being created
 * (failing) while every node misses lease renewals and a pod's final status waits; then the
 * component returns. Every pod must end as it would have without the fault.
 */
async function burstThroughOutage(
  component: ControlPlaneComponent,
  tag: string,
  t: TestContext,
): Promise<void> {
  const diagnostic = (line: string) => t.diagnostic(line);
  const burst = Array.from({ length: BURST }, (_, i) => burstPod(tag, i));
  const leasesBefore = await Promise.all(nodes.map((n) => lease(n.nodeName)));
  const nodeUids = await Promise.all(
    nodes.map(async (n) => (await getNode(n.nodeName))?.metadata?.uid),
  );
  const attempts = { failed: 0 };

  await createAll(
    burst.slice(0, BURST / 2).map((p) => p.manifest),
    3,
    attempts,
  );
  assert.equal(attempts.failed, 0, "the first half was created with the control plane up");
  // A finishing pod is running: it ends during the outage, so its final status has to wait.
  await eventually(
    async () =>
      (await pods(`burst=${tag}`)).some(
        (p) =>
          p.metadata?.name?.includes("-job-") &&
          p.status?.containerStatuses?.[0]?.state?.running !== undefined,
      ),
    "a finishing pod to run",
    60_000,
    200,
  );

  const marks = nodes.map((n) => n.output.length);
  const down = Date.now();
  await plane.stopComponent(component, { kill: true });
  const creating = createAll(
    burst.slice(BURST / 2).map((p) => p.manifest),
    3,
    attempts,
  );
  // The outage lasts until wasmlet has felt it: every node failed to renew its lease, and a pod's
  // status change could not be written.
  await eventually(
    async () =>
      nodes.every((n, i) =>
        n.output.slice(marks[i]).includes("cannot renew the node lease; retrying"),
      ) && nodes.some((n, i) => n.output.slice(marks[i]).includes("status patch failed; retrying")),
    "every node to miss lease renewals and a pod status to wait for the API",
    60_000,
    200,
  );
  assert.ok(attempts.failed > 0, "pod creations failed during the outage");
  await plane.startComponent(component);
  const back = Date.now();
  diagnostic(`${component} was down for ${back - down} ms`);
  await creating;
  diagnostic(`${attempts.failed} creation attempts failed during the outage`);

  const settled = await eventually(
    async () => {
      const items = await pods(`burst=${tag}`);
      if (items.length !== BURST) return undefined;
      const done = items.every((p) =>
        p.metadata?.name?.includes("-job-") ? p.status?.phase === "Succeeded" : isRunningReady(p),
      );
      return done ? items : undefined;
    },
    "every pod of the burst to be Running and ready, or Succeeded",
    120_000,
    1000,
  );
  diagnostic(`all ${BURST} pods settled ${Date.now() - back} ms after ${component} returned`);

  const nodeNames = new Set(nodes.map((n) => n.nodeName));
  const stale: string[] = [];
  for (const pod of settled) {
    const name = pod.metadata?.name ?? "";
    const what = `${name}: ${JSON.stringify(pod.status)}`;
    const status = pod.status?.containerStatuses?.[0];
    assert.ok(nodeNames.has(pod.spec?.nodeName ?? ""), what);
    assert.equal(pod.status?.hostIP, "127.0.0.1", what);
    assert.ok(pod.status?.podIP, what);
    assert.ok(pod.status?.startTime, what);
    assert.equal(status?.restartCount, 0, `never restarted: ${what}`);
    assert.match(status?.containerID ?? "", /^wasmlet:\/\/[0-9a-f]{64}$/, what);
    assert.ok(status?.imageID, what);
    assert.equal(condition(pod, "PodScheduled")?.status, "True", what);
    assert.equal(condition(pod, "Initialized")?.status, "True", what);
    for (const type of ["Ready", "ContainersReady"]) {
      const c = condition(pod, type);
      const reason = name.includes("-job-") ? "PodCompleted" : undefined;
      if (c?.reason !== reason || c?.message !== undefined)
        stale.push(`${name} ${type}=${c?.status} reason=${c?.reason} message=${c?.message}`);
    }
    if (name.includes("-job-")) {
      assert.equal(status?.state?.terminated?.exitCode, 0, what);
      assert.equal(status?.state?.terminated?.reason, "Completed", what);
      assert.equal(status?.ready, false, what);
      assert.equal(condition(pod, "Ready")?.status, "False", what);
      assert.equal(condition(pod, "Ready")?.reason, "PodCompleted", what);
    } else {
      assert.equal(status?.started, true, what);
    }
  }
  // A running pod's Ready and ContainersReady conditions say what its container status says.
  const disagreeing = async () =>
    (await pods(`burst=${tag}`))
      .filter((p) => p.metadata?.name?.includes("-run-"))
      .filter(
        (p) =>
          condition(p, "Ready")?.status !== "True" ||
          condition(p, "ContainersReady")?.status !== "True",
      )
      .map(
        (p) =>
          `${p.metadata?.name}: container ready=${p.status?.containerStatuses?.[0]?.ready}, ${JSON.stringify(p.status?.conditions)}; outage ${new Date(down).toISOString()}..${new Date(back).toISOString()}`,
      );
  let wrong = await disagreeing();
  for (const until = Date.now() + 10_000; wrong.length > 0 && Date.now() < until; ) {
    await sleep(500);
    wrong = await disagreeing();
  }
  await t.test("every running pod's Ready condition agrees with its container", () => {
    assert.deepEqual(wrong, []);
  });
  await t.test("no condition keeps the reason or message of an earlier state", () => {
    assert.deepEqual(stale, []);
  });
  // One instance of each container wrote its log, from its first line: every tick of a finished
  // pod exactly once, and a running pod's ticks counting up from 1 without a repeat.
  for (const { name, job } of burst) {
    const log = (await kOk(["-n", NAMESPACE, "logs", name])).trim();
    const seen = ticks(log);
    if (job) assert.deepEqual(seen, oneToN(JOB_TICKS), `${name}:\n${log}`);
    else {
      assert.ok(seen.length >= 1, `${name} logged:\n${log}`);
      assert.deepEqual(seen, oneToN(seen.length), `${name}:\n${log}`);
    }
  }

  // Each node kept its Lease (the same object, still held by it, renewed since the return) and
  // its Node object, and is Ready.
  for (const [i, node] of nodes.entries()) {
    assert.ok(node.running, `${node.nodeName} kept running:\n${node.output.slice(-2000)}`);
    await eventually(
      async () => {
        const now = await lease(node.nodeName);
        return Date.parse(now.spec.renewTime ?? "") > back ? now : undefined;
      },
      `the lease of ${node.nodeName} to be renewed after the return`,
      20_000,
      250,
    ).then((now) => {
      assert.equal(now.metadata.uid, leasesBefore[i]?.metadata.uid, "the same Lease object");
      assert.equal(now.spec.holderIdentity, node.nodeName);
    });
    // (The Lease is the heartbeat: the Node's status is posted again only if it changed, e.g.
    // when the controller-manager marked it Unknown meanwhile.)
    const ready = await waitForNodeReady(node.nodeName, "True", 20_000);
    assert.equal(ready.metadata?.uid, nodeUids[i], "the same Node object");
    assert.equal(readyOf(ready)?.reason, "KubeletReady");
    assert.ok(
      node.output.slice(marks[i]).includes("node lease renewed again"),
      `${node.nodeName} recovered its lease renewals`,
    );
  }
  await k(["-n", NAMESPACE, "delete", "pods", "-l", `burst=${tag}`, "--wait=false"]);
}

describe("control-plane faults", () => {
  it("the API server crashes and restarts during a burst of pod creations: every pod ends right, the nodes keep their Leases and are Ready", async (t) => {
    await burstThroughOutage("kube-apiserver", "api", t);
  });

  it("etcd crashes and restarts during a burst of pod creations: every pod ends right, the nodes keep their Leases and are Ready", async (t) => {
    await burstThroughOutage("etcd", "etcd", t);
  });

  it("a node frozen past its grace period (SIGSTOP) is marked Unknown and its pods NotReady; resumed, it is Ready, its pods run on as they were", async (t) => {
    const node = nodes[0]!;
    await kOk(["-n", NAMESPACE, "apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "frozen" },
        spec: {
          runtimeClassName: RUNTIME_CLASS,
          nodeSelector: { "kubernetes.io/hostname": node.nodeName },
          containers: [{ name: "main", image, env: [{ name: "TICK_MS", value: "200" }] }],
        },
      }),
    });
    const getFrozen = async () =>
      JSON.parse(await kOk(["-n", NAMESPACE, "get", "pod", "frozen", "-o", "json"])) as V1Pod;
    const before = await eventually(
      async () => {
        const pod = await getFrozen();
        return isRunningReady(pod) && condition(pod, "Ready")?.status === "True" ? pod : undefined;
      },
      "the pod to be Running and Ready",
      30_000,
      250,
    );
    const stopped = Date.now();
    node.kill("SIGSTOP");
    try {
      await waitForNodeReady(node.nodeName, "Unknown", 30_000);
      // The controller-manager marks the pods of a node it lost NotReady.
      await eventually(
        async () => condition(await getFrozen(), "Ready")?.status === "False",
        "the pod to be marked NotReady",
        20_000,
        250,
      );
    } finally {
      node.kill("SIGCONT");
    }
    t.diagnostic(`frozen for ${Date.now() - stopped} ms`);
    await waitForNodeReady(node.nodeName, "True", 20_000);
    // It runs on: the same instance (its count goes on), not evicted (resumed well within the 30 s
    // the unreachable taint is tolerated).
    const resumedTick = Math.max(0, ...ticks(await kOk(["-n", NAMESPACE, "logs", "frozen"])));
    await eventually(
      async () =>
        Math.max(0, ...ticks(await kOk(["-n", NAMESPACE, "logs", "frozen"]))) >= resumedTick + 5,
      "the pod to tick on",
      20_000,
      250,
    );
    const after = await getFrozen();
    assert.equal(after.metadata?.uid, before.metadata?.uid);
    assert.equal(after.metadata?.deletionTimestamp, undefined, "not evicted");
    assert.equal(after.status?.phase, "Running");
    assert.equal(mainOf(after)?.restartCount, 0);
    assert.equal(mainOf(after)?.containerID, mainOf(before)?.containerID);
    const log = ticks(await kOk(["-n", NAMESPACE, "logs", "frozen"]));
    assert.deepEqual(log, oneToN(log.length), "one instance, nothing lost");
    // And Ready again, as the kubelet would set it once it is back.
    let ready = condition(after, "Ready")?.status;
    for (const until = Date.now() + 10_000; ready !== "True" && Date.now() < until; ) {
      await sleep(500);
      ready = condition(await getFrozen(), "Ready")?.status;
    }
    await t.test("the pod is Ready again", () => {
      assert.equal(ready, "True");
    });
    await k(["-n", NAMESPACE, "delete", "pod", "frozen", "--wait=false"]);
  });

  it("a lost node's Deployment pods come back on the other nodes through the controller-manager, and the node, back, runs none of them again", async (t) => {
    const replicas = 6;
    await kOk(["-n", NAMESPACE, "apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "spread" },
        spec: {
          replicas,
          selector: { matchLabels: { app: "spread" } },
          template: {
            metadata: { labels: { app: "spread" } },
            spec: {
              runtimeClassName: RUNTIME_CLASS,
              terminationGracePeriodSeconds: 2,
              topologySpreadConstraints: [
                {
                  maxSkew: 1,
                  topologyKey: "kubernetes.io/hostname",
                  whenUnsatisfiable: "ScheduleAnyway",
                  labelSelector: { matchLabels: { app: "spread" } },
                },
              ],
              containers: [{ name: "main", image, env: [{ name: "TICK_MS", value: "1000" }] }],
            },
          },
        },
      }),
    });
    const live = (items: V1Pod[]) => items.filter((p) => !p.metadata?.deletionTimestamp);
    const first = await eventually(
      async () => {
        const items = live(await pods("app=spread"));
        return items.length === replicas && items.every(isRunningReady) ? items : undefined;
      },
      `${replicas} replicas running`,
      90_000,
      500,
    );
    // The node with the most replicas is lost (SIGKILL: no goodbye, nothing posted).
    const perNode = new Map<string, V1Pod[]>();
    for (const pod of first) {
      const node = pod.spec?.nodeName ?? "";
      perNode.set(node, [...(perNode.get(node) ?? []), pod]);
    }
    const [victimName, victimPods] = [...perNode].sort((a, b) => b[1].length - a[1].length)[0]!;
    t.diagnostic(
      `replicas per node: ${[...perNode].map(([n, p]) => `${n}=${p.length}`).join(", ")}`,
    );
    const victimIndex = nodes.findIndex((n) => n.nodeName === victimName);
    const victim = nodes[victimIndex]!;
    const survivors = nodes.filter((n) => n !== victim).map((n) => n.nodeName);
    const victimUids = new Set(victimPods.map((p) => p.metadata?.uid));
    const keptPods = first.filter((p) => !victimUids.has(p.metadata?.uid));

    const lost = Date.now();
    victim.kill("SIGKILL");
    await victim.exited;
    const unknown = await waitForNodeReady(victimName, "Unknown", 40_000);
    assert.equal(readyOf(unknown)?.reason, "NodeStatusUnknown");
    t.diagnostic(`node Unknown ${Date.now() - lost} ms after its loss`);
    await eventually(
      async () =>
        (await getNode(victimName))?.spec?.taints?.some(
          (taint) => taint.key === "node.kubernetes.io/unreachable" && taint.effect === "NoExecute",
        ),
      "the unreachable NoExecute taint",
      20_000,
      250,
    );

    const replaced = await eventually(
      async () => {
        const items = await pods("app=spread");
        const evicted = items.filter((p) => victimUids.has(p.metadata?.uid));
        const running = live(items).filter(isRunningReady);
        return evicted.every((p) => p.metadata?.deletionTimestamp) &&
          running.length === replicas &&
          running.every((p) => survivors.includes(p.spec?.nodeName ?? ""))
          ? { evicted, running }
          : undefined;
      },
      `${replicas} replicas running on the remaining nodes`,
      90_000,
      1000,
    );
    t.diagnostic(`replicas back on the other nodes ${Date.now() - lost} ms after the loss`);
    assert.equal(replaced.evicted.length, victimPods.length, "the lost node's pods were evicted");
    for (const pod of replaced.evicted) {
      const disruption = condition(pod, "DisruptionTarget");
      assert.equal(disruption?.status, "True", JSON.stringify(pod.status));
      assert.equal(disruption?.reason, "DeletionByTaintManager");
    }
    const newcomers = replaced.running.filter(
      (p) => !keptPods.some((k) => k.metadata?.uid === p.metadata?.uid),
    );
    assert.equal(newcomers.length, victimPods.length, "one replacement per lost pod");
    for (const pod of keptPods) {
      const still = replaced.running.find((p) => p.metadata?.uid === pod.metadata?.uid);
      assert.ok(still, `${pod.metadata?.name} on a remaining node kept running`);
      assert.equal(still.status?.containerStatuses?.[0]?.restartCount, 0);
    }
    const deployment = JSON.parse(
      await kOk(["-n", NAMESPACE, "get", "deployment", "spread", "-o", "json"]),
    );
    assert.equal(deployment.status.availableReplicas, replicas);

    // The node comes back (same name, data directory and port): it finishes the deletion of the
    // evicted pods without running any of them again, and is Ready and schedulable again.
    const returned = await startNode(victimName, {
      dataDir: victim.dataDir,
      port: victim.port,
      args: ["--log-level", "debug"],
    });
    nodes[victimIndex] = returned;
    await waitForNodeReady(victimName, "True", 30_000);
    await eventually(
      async () => {
        const items = await pods("app=spread");
        return !items.some((p) => victimUids.has(p.metadata?.uid));
      },
      "the evicted pods to be gone",
      30_000,
      500,
    );
    await eventually(
      async () =>
        !(await getNode(victimName))?.spec?.taints?.some(
          (taint) => taint.key === "node.kubernetes.io/unreachable",
        ),
      "the unreachable taint to be removed",
      20_000,
      250,
    );
    const states = returned
      .logs()
      .filter((l) => l.msg === "pod state" && victimUids.has(l.uid as string));
    for (const uid of victimUids) {
      const mine = states.filter((l) => l.uid === uid).map((l) => `${l.from}->${l.to}`);
      assert.ok(mine.length > 0, `the returned node handled pod ${uid}`);
      assert.ok(
        !mine.some((s) => /->(Pulling|Preparing|Initializing|Running)$/.test(s)),
        `pod ${uid} was not started again: ${mine.join(", ")}`,
      );
    }
    const after = live(await pods("app=spread"));
    assert.equal(after.length, replicas, "still exactly the Deployment's replicas");
    assert.ok(after.every(isRunningReady));
    await k(["-n", NAMESPACE, "delete", "deployment", "spread", "--wait=false"]);
  });
});
