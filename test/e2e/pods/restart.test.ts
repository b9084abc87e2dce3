// The node going away under running pods (SIGKILL, then a restart on the same data directory), and
// pods going away under the node: graceful deletion within a shortened grace period, and force
// deletion, after which nothing of the pod runs on the node.
import assert from "node:assert/strict";
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { eventually, kubectl, kubectlOk } from "../../support/cluster.ts";
import { getNode, waitForReady } from "../../support/wasmlet.ts";
import {
  applyJson,
  getPod,
  kubectlStatus,
  logsOf,
  type PodTestBed,
  phaseIs,
  podManifest,
  startPodTestBed,
  waitForLogs,
  waitForPod,
} from "./support.ts";

let bed: PodTestBed;
before(async () => {
  bed = await startPodTestBed("restart");
});
after(async () => {
  await bed?.cleanup();
});

/** The numbers of the `tick N` lines, in log order. */
function ticks(log: string): number[] {
  return [...log.matchAll(/^tick (\d+)$/gm)].map((m) => Number(m[1]));
}

test("after a SIGKILL and restart of wasmlet, a running pod runs again once, with its previous log kept", async () => {
  await applyJson(
    bed.namespace,
    podManifest(bed, "survivor", { image: await bed.image("ticker") }, { restartPolicy: "Always" }),
  );
  await applyJson(bed.namespace, podManifest(bed, "finished", { image: await bed.image("hello") }));
  const before = await waitForPod(bed.namespace, "survivor", "Running", phaseIs("Running"));
  await waitForPod(bed.namespace, "finished", "Succeeded", phaseIs("Succeeded"));
  await waitForLogs(bed.namespace, "survivor", /^tick 5$/m);
  const beforeStatus = before.status?.containerStatuses?.[0];
  assert.equal(beforeStatus?.restartCount, 0);

  const killedAt = Date.now();
  const restarted = await bed.restartWasmlet();
  await waitForReady(restarted.nodeName);
  const after = await waitForPod(
    bed.namespace,
    "survivor",
    "running again with a new instance",
    (p) =>
      p.status?.containerStatuses?.[0]?.state?.running !== undefined &&
      p.status.containerStatuses[0].containerID !== beforeStatus?.containerID,
  );
  assert.equal(after.metadata?.uid, before.metadata?.uid, "the same pod");
  assert.equal(after.spec?.nodeName, bed.wasmlet.nodeName);
  assert.equal(after.status?.phase, "Running");
  const status = after.status?.containerStatuses?.[0];
  assert.equal(status?.restartCount, 1);
  assert.equal(status?.lastState?.terminated?.reason, "ContainerStatusUnknown");
  assert.ok(
    new Date(String(status?.state?.running?.startedAt)).getTime() >= killedAt - 1000,
    "the running instance started after the kill",
  );

  const previous = await logsOf(bed.namespace, "survivor", ["--previous"]);
  const old = ticks(previous);
  assert.ok(old.length >= 5, `the old instance's ticks:\n${previous}`);
  assert.deepEqual(
    old,
    old.map((_, i) => i + 1),
    "the previous log is the old instance's alone",
  );

  // One instance writes the current log: ticks 1, 2, 3, … with no repeats or interleaving.
  const current = await waitForLogs(bed.namespace, "survivor", /^tick 15$/m);
  const now = ticks(current);
  assert.deepEqual(
    now,
    now.map((_, i) => i + 1),
    `one writer in the current log:\n${current}`,
  );
  // A pod applied now runs only once the node has handled what came before it (the relist after
  // the restart, the watch events, the survivor's own start): a second start of the survivor
  // would have happened by then, and shown in its status and its log.
  await applyJson(bed.namespace, podManifest(bed, "marker", { image: await bed.image("hello") }));
  await waitForPod(bed.namespace, "marker", "Succeeded", phaseIs("Succeeded"));
  const later = await getPod(bed.namespace, "survivor");
  assert.equal(later?.status?.containerStatuses?.[0]?.restartCount, 1, "restarted once only");
  assert.equal(later?.status?.containerStatuses?.[0]?.containerID, status?.containerID);
  const still = ticks(await logsOf(bed.namespace, "survivor"));
  assert.deepEqual(
    still,
    still.map((_, i) => i + 1),
    "still one writer",
  );

  // A pod that had finished is left as it was: not run again.
  const finished = await getPod(bed.namespace, "finished");
  assert.equal(finished?.status?.phase, "Succeeded");
  assert.equal(finished?.status?.containerStatuses?.[0]?.restartCount, 0);
  assert.equal((await logsOf(bed.namespace, "finished")).match(/^hello from wasm$/gm)?.length, 1);
  assert.ok(
    !restarted.output.includes("WASMLET_ERR_DUPLICATE_INSTANCE"),
    "no second instance was refused",
  );
  await kubectlOk([
    "-n",
    bed.namespace,
    "delete",
    "pod",
    "survivor",
    "finished",
    "marker",
    "--wait=true",
  ]);
});

/** Polls the pod until `probe` holds; returns how long that took from `since`. */
async function msUntil(
  name: string,
  since: number,
  probe: (pod: V1Pod) => boolean,
): Promise<{ ms: number; pod: V1Pod }> {
  const pod = await waitForPod(bed.namespace, name, "to match", probe, 20_000);
  return { ms: Date.now() - since, pod };
}

test("graceful deletion with a shortened grace period: a cooperative guest stops at once, a busy one is killed when it ends", async (t) => {
  // A finalizer keeps the pod object after wasmlet's final DELETE, so its last status can be read.
  const held = { finalizers: ["e2e.wasmlet.io/hold"] };
  const spec = { restartPolicy: "Always", terminationGracePeriodSeconds: 30 };
  await applyJson(
    bed.namespace,
    podManifest(bed, "polite", { image: await bed.image("ticker") }, spec, held),
  );
  await applyJson(
    bed.namespace,
    podManifest(bed, "busy", { image: await bed.image("cpuloop") }, spec, held),
  );
  await waitForPod(bed.namespace, "polite", "Running", phaseIs("Running"));
  await waitForPod(bed.namespace, "busy", "Running", phaseIs("Running"));
  await waitForLogs(bed.namespace, "polite", /^tick 2$/m);

  const deleted = Date.now();
  await kubectlOk([
    "-n",
    bed.namespace,
    "delete",
    "pod",
    "polite",
    "busy",
    "--grace-period=3",
    "--wait=false",
  ]);
  assert.equal(await kubectlStatus(bed.namespace, "busy"), "Terminating");
  const terminated = (p: V1Pod) =>
    p.status?.containerStatuses?.[0]?.state?.terminated !== undefined;
  const [polite, busy] = await Promise.all([
    msUntil("polite", deleted, terminated),
    msUntil("busy", deleted, terminated),
  ]);
  t.diagnostic(`terminated after ${polite.ms} ms (cooperative) and ${busy.ms} ms (busy)`);
  assert.equal(polite.pod.metadata?.deletionGracePeriodSeconds, 0, "wasmlet deleted it");
  const politeExit = polite.pod.status?.containerStatuses?.[0]?.state?.terminated;
  assert.equal(politeExit?.exitCode, 143, "stopped on request");
  const busyExit = busy.pod.status?.containerStatuses?.[0]?.state?.terminated;
  assert.equal(busyExit?.exitCode, 137, "killed when its grace period ended");
  assert.ok(busy.ms >= 2800, `the busy guest was given its 3 s, not ${busy.ms} ms`);
  assert.ok(busy.ms < 8000, `the busy guest was killed after ${busy.ms} ms, not 30 s`);
  // The cooperative guest did not wait for the grace period: by the guests' own finish times
  // (whole seconds), it ended at least 2 s before the busy one was killed.
  const finished = (exit: typeof politeExit) => new Date(String(exit?.finishedAt)).getTime();
  assert.ok(
    finished(busyExit) - finished(politeExit) >= 2000,
    `finished at ${politeExit?.finishedAt} (cooperative) and ${busyExit?.finishedAt} (busy)`,
  );
  assert.ok(polite.ms < busy.ms - 1500, "the cooperative guest was seen stopped well before");
  for (const pod of [polite.pod, busy.pod])
    assert.equal(pod.status?.conditions?.find((c) => c.type === "Ready")?.status, "False");

  for (const name of ["polite", "busy"]) {
    await kubectlOk([
      "-n",
      bed.namespace,
      "patch",
      "pod",
      name,
      "--type=json",
      "-p",
      '[{"op":"remove","path":"/metadata/finalizers"}]',
    ]);
  }
  await eventually(
    async () =>
      (await getPod(bed.namespace, "polite")) === undefined &&
      (await getPod(bed.namespace, "busy")) === undefined,
    "both pods to be gone",
  );
});

test("force deletion leaves nothing running: the pod is gone and its guest's log stops growing", async () => {
  const fastTicker = async (name: string) =>
    applyJson(
      bed.namespace,
      podManifest(
        bed,
        name,
        { image: await bed.image("ticker"), env: [{ name: "TICK_MS", value: "50" }] },
        { restartPolicy: "Always", terminationGracePeriodSeconds: 30 },
      ),
    );
  await fastTicker("forced");
  // Ticks as fast as the forced pod did, and goes on: the yardstick for "it would have written".
  await fastTicker("witness");
  const running = await waitForPod(bed.namespace, "forced", "Running", phaseIs("Running"));
  const uid = running.metadata?.uid ?? "";
  const logDir = join(bed.wasmlet.dataDir, "logs", `${bed.namespace}_forced_${uid}`);
  // Held open, the log file can still be measured after the node removes the deleted pod's logs.
  const log = await eventually(async () => open(join(logDir, "main", "0.log"), "r"), "a log file");
  const size = async () => (await log.stat()).size;
  await eventually(async () => (await size()) > 0, "a first line");
  const first = await size();
  await eventually(async () => (await size()) > first, "the guest to write while it runs");

  const started = Date.now();
  const result = await kubectl([
    "-n",
    bed.namespace,
    "delete",
    "pod",
    "forced",
    "--grace-period=0",
    "--force",
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.ok(Date.now() - started < 5000);
  assert.equal(await getPod(bed.namespace, "forced"), undefined);
  // The node stops the guest on the DELETED event and removes the pod's directories once it has
  // exited.
  for (const dir of [join(bed.wasmlet.dataDir, "pods", uid), logDir]) {
    await eventually(
      async () => (await stat(dir).catch(() => undefined)) === undefined,
      `${dir} to be removed`,
      10_000,
    );
  }
  const settled = await size();
  // Ten more ticks of the witness: time for ten of the forced guest's, were it still running.
  await waitForLogs(bed.namespace, "witness", /^tick \d+$/m);
  const seen = Math.max(...ticks(await logsOf(bed.namespace, "witness")));
  await waitForLogs(bed.namespace, "witness", new RegExp(`^tick ${seen + 10}$`, "m"));
  assert.equal(await size(), settled, "nothing writes the log after the force deletion");
  await log.close();
  await kubectlOk(["-n", bed.namespace, "delete", "pod", "witness", "--grace-period=0", "--force"]);
});

test("SIGTERM stops each pod within its own grace period (at most the shutdown grace), exits 0, and the pods run again when the node returns", async () => {
  await applyJson(
    bed.namespace,
    podManifest(
      bed,
      "term-polite",
      { image: await bed.image("ticker") },
      { restartPolicy: "Always" },
    ),
  );
  await applyJson(
    bed.namespace,
    podManifest(
      bed,
      "term-busy",
      { image: await bed.image("cpuloop") },
      { restartPolicy: "Always", terminationGracePeriodSeconds: 2 },
    ),
  );
  await waitForPod(bed.namespace, "term-polite", "Running", phaseIs("Running"));
  await waitForPod(bed.namespace, "term-busy", "Running", phaseIs("Running"));
  await waitForLogs(bed.namespace, "term-polite", /^tick 2$/m);

  const node = bed.wasmlet;
  const signalled = Date.now();
  node.kill("SIGTERM");
  const { code } = await node.exited;
  const took = Date.now() - signalled;
  assert.equal(code, 0, node.output.slice(-2000));
  // The busy guest ignores the stop and is killed after its 2 s, well before the 30 s shutdown grace.
  assert.ok(took >= 1500 && took < 8000, `wasmlet exited ${took} ms after SIGTERM`);
  const ready = (await getNode(node.nodeName))?.status?.conditions?.find((c) => c.type === "Ready");
  assert.equal(ready?.status, "False");
  assert.equal(ready?.message, "wasmlet stopped (SIGTERM)");

  const restarted = await bed.restartWasmlet();
  await waitForReady(restarted.nodeName);
  for (const name of ["term-polite", "term-busy"]) {
    const again = await waitForPod(
      bed.namespace,
      name,
      "running again",
      (p) =>
        p.status?.containerStatuses?.[0]?.state?.running !== undefined &&
        (p.status.containerStatuses[0].restartCount ?? 0) >= 1,
    );
    assert.equal(again.status?.phase, "Running");
  }
  await kubectlOk([
    "-n",
    bed.namespace,
    "delete",
    "pod",
    "term-polite",
    "term-busy",
    "--wait=true",
  ]);
});
