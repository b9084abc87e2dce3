// Pods as the controllers make them: a Deployment rolls out and scales away, Jobs complete or fail,
// and init containers run in order before the app — with the real controller-manager, scheduler
// and kubectl.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import { eventually, kubectl, kubectlOk } from "../../support/cluster.ts";
import {
  applyJson,
  getPod,
  kubectlStatus,
  listPods,
  logsOf,
  type PodTestBed,
  phaseIs,
  podManifest,
  startPodTestBed,
  waitForPod,
} from "./support.ts";

let bed: PodTestBed;
before(async () => {
  bed = await startPodTestBed("workloads");
});
after(async () => {
  await bed?.cleanup();
});

const isReady = (pod: V1Pod) =>
  pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

test("a Deployment of 20 replicas becomes Ready on the node, then scales to 0 cleanly", async () => {
  await applyJson(bed.namespace, {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "web" },
    spec: {
      replicas: 20,
      selector: { matchLabels: { app: "web" } },
      template: {
        metadata: { labels: { app: "web" } },
        spec: {
          runtimeClassName: bed.runtimeClass,
          terminationGracePeriodSeconds: 5,
          containers: [
            {
              name: "ticker",
              image: await bed.image("ticker"),
              env: [{ name: "TICK_MS", value: "1000" }],
            },
          ],
        },
      },
    },
  });
  const rollout = await kubectl(
    ["-n", bed.namespace, "rollout", "status", "deployment/web", "--timeout=90s"],
    { timeoutMs: 100_000 },
  );
  assert.equal(rollout.code, 0, rollout.stderr);
  assert.match(rollout.stdout, /successfully rolled out/);
  const pods = await listPods(bed.namespace, "app=web");
  assert.equal(pods.length, 20);
  for (const pod of pods) {
    assert.equal(pod.spec?.nodeName, bed.wasmlet.nodeName);
    assert.equal(pod.status?.phase, "Running", pod.metadata?.name);
    assert.ok(isReady(pod), `${pod.metadata?.name} is Ready`);
    assert.ok(pod.status?.containerStatuses?.[0]?.state?.running, pod.metadata?.name);
  }
  const deployment = JSON.parse(
    await kubectlOk(["-n", bed.namespace, "get", "deployment", "web", "-o", "json"]),
  );
  assert.equal(deployment.status.readyReplicas, 20);
  assert.equal(deployment.status.availableReplicas, 20);

  await kubectlOk(["-n", bed.namespace, "scale", "deployment/web", "--replicas=0"]);
  await eventually(
    async () => (await listPods(bed.namespace, "app=web")).length === 0,
    "every pod of the Deployment to be gone",
    45_000,
    500,
  );
  const scaled = JSON.parse(
    await kubectlOk(["-n", bed.namespace, "get", "deployment", "web", "-o", "json"]),
  );
  assert.equal(scaled.status.replicas ?? 0, 0);
  // Nothing of the 20 pods keeps running on the node.
  for (const pod of pods) {
    const name = pod.metadata?.name ?? "";
    assert.equal(await getPod(bed.namespace, name), undefined, `${name} is gone`);
  }
  await kubectl(["-n", bed.namespace, "delete", "deployment", "web", "--wait=false"]);
});

/** Creates a Job (one try, pods on this bed's RuntimeClass, restartPolicy Never) and waits for `condition`. */
async function runJob(
  name: string,
  podSpec: Record<string, unknown>,
  condition: "Complete" | "Failed",
  jobSpec: Record<string, unknown> = {},
): Promise<void> {
  await applyJson(bed.namespace, {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name },
    spec: {
      backoffLimit: 0,
      ...jobSpec,
      template: {
        spec: { runtimeClassName: bed.runtimeClass, restartPolicy: "Never", ...podSpec },
      },
    },
  });
  const wait = await kubectl(
    ["-n", bed.namespace, "wait", `--for=condition=${condition}`, `job/${name}`, "--timeout=60s"],
    { timeoutMs: 70_000 },
  );
  assert.equal(wait.code, 0, wait.stderr);
}

test("a Job with 2 completions runs 2 pods in parallel and completes", async () => {
  await runJob(
    "twice",
    { containers: [{ name: "hello", image: await bed.image("hello"), args: ["job"] }] },
    "Complete",
    { completions: 2, parallelism: 2 },
  );
  const job = JSON.parse(
    await kubectlOk(["-n", bed.namespace, "get", "job", "twice", "-o", "json"]),
  );
  assert.equal(job.status.succeeded, 2);
  assert.equal(job.status.failed ?? 0, 0);
  const pods = await listPods(bed.namespace, "job-name=twice");
  assert.equal(pods.length, 2);
  for (const pod of pods) {
    assert.equal(pod.spec?.nodeName, bed.wasmlet.nodeName);
    assert.equal(pod.status?.phase, "Succeeded");
    assert.equal(pod.status?.containerStatuses?.[0]?.state?.terminated?.reason, "Completed");
    assert.match(await logsOf(bed.namespace, pod.metadata?.name ?? ""), /^arg\[1\]=job$/m);
  }
});

test("a Job whose pod fails with backoffLimit 0 ends Failed", async () => {
  await runJob(
    "doomed",
    {
      containers: [
        {
          name: "hello",
          image: await bed.image("hello"),
          env: [{ name: "EXIT_CODE", value: "1" }],
        },
      ],
    },
    "Failed",
  );
  const job = JSON.parse(
    await kubectlOk(["-n", bed.namespace, "get", "job", "doomed", "-o", "json"]),
  );
  const failed = job.status.conditions.find((c: { type: string }) => c.type === "Failed");
  assert.equal(failed.reason, "BackoffLimitExceeded");
  assert.ok(!job.status.conditions.some((c: { type: string }) => c.type === "Complete"));
  const pods = await listPods(bed.namespace, "job-name=doomed");
  assert.equal(pods.length, 1);
  assert.equal(pods[0]?.status?.phase, "Failed");
  const terminated = pods[0]?.status?.containerStatuses?.[0]?.state?.terminated;
  assert.equal(terminated?.exitCode, 1);
  assert.equal(terminated?.reason, "Error");
});

test("a Job whose pod has a sidecar completes: the sidecar runs beside the app, then is stopped", async () => {
  await runJob(
    "with-sidecar",
    {
      terminationGracePeriodSeconds: 2,
      initContainers: [
        {
          name: "logger",
          image: await bed.image("ticker"),
          restartPolicy: "Always",
          env: [{ name: "TICK_MS", value: "50" }],
        },
      ],
      containers: [{ name: "hello", image: await bed.image("hello"), args: ["job"] }],
    },
    "Complete",
  );
  const [pod] = await listPods(bed.namespace, "job-name=with-sidecar");
  assert.equal(pod?.status?.phase, "Succeeded");
  const logger = pod?.status?.initContainerStatuses?.find((c) => c.name === "logger");
  assert.ok(logger?.state?.terminated, "the sidecar was stopped");
  const hello = pod?.status?.containerStatuses?.find((c) => c.name === "hello");
  assert.equal(hello?.state?.terminated?.exitCode, 0);
  const logs = await kubectlOk(["-n", bed.namespace, "logs", pod!.metadata!.name!, "-c", "logger"]);
  assert.match(logs, /tick/);
});

test("init containers run one after the other, before the app container", async () => {
  const reader = await bed.image("reader");
  await applyJson(
    bed.namespace,
    podManifest(
      bed,
      "init-order",
      {
        image: reader,
        args: ["/shared/msg"],
        volumeMounts: [{ name: "shared", mountPath: "/shared" }],
      },
      {
        initContainers: [
          {
            name: "slow",
            image: await bed.image("ticker"),
            env: [{ name: "COUNT", value: "40" }],
          },
          {
            name: "write",
            image: reader,
            args: ["--write", "/shared/msg", "written by the second init container"],
            volumeMounts: [{ name: "shared", mountPath: "/shared" }],
          },
        ],
        volumes: [{ name: "shared", emptyDir: {} }],
      },
    ),
  );
  // While the first init container runs, the others wait and kubectl shows Init:0/2.
  const seen = new Set<string>();
  const states: string[] = [];
  const describe = (s: V1ContainerStatus | undefined) =>
    s?.state?.running ? "running" : s?.state?.terminated ? "terminated" : "waiting";
  const final = await eventually(
    async () => {
      const [status, pod] = await Promise.all([
        kubectlStatus(bed.namespace, "init-order"),
        getPod(bed.namespace, "init-order"),
      ]);
      seen.add(status);
      const [slow, write] = pod?.status?.initContainerStatuses ?? [];
      const main = pod?.status?.containerStatuses?.[0];
      states.push(`${describe(slow)}/${describe(write)}/${describe(main)}`);
      return pod?.status?.phase === "Succeeded" ? pod : undefined;
    },
    "init-order to succeed",
    40_000,
    150,
  );
  assert.ok(seen.has("Init:0/2"), `kubectl STATUS went through ${[...seen].join(", ")}`);
  assert.ok(states.includes("running/waiting/waiting"), states.join(" "));
  for (const state of states) {
    const [slow, write, main] = state.split("/");
    if (slow !== "terminated") assert.equal(write, "waiting", state);
    if (write !== "terminated") assert.equal(main, "waiting", state);
  }
  const [slow, write] = final.status?.initContainerStatuses ?? [];
  const main = final.status?.containerStatuses?.[0];
  assert.equal(slow?.state?.terminated?.reason, "Completed");
  assert.equal(write?.state?.terminated?.reason, "Completed");
  const at = (value: unknown) => new Date(value as string).getTime();
  assert.ok(at(slow?.state?.terminated?.finishedAt) <= at(write?.state?.terminated?.startedAt));
  assert.ok(at(write?.state?.terminated?.finishedAt) <= at(main?.state?.terminated?.startedAt));
  assert.match(await logsOf(bed.namespace, "init-order", ["-c", "slow"]), /^tick 40$/m);
  assert.match(
    await logsOf(bed.namespace, "init-order"),
    /^\/shared\/msg: written by the second init container$/m,
  );
});

test("a failing init container with restartPolicy Never fails the pod before the app starts", async () => {
  await applyJson(
    bed.namespace,
    podManifest(
      bed,
      "init-fails",
      { image: await bed.image("ticker") },
      {
        initContainers: [
          {
            name: "check",
            image: await bed.image("hello"),
            env: [{ name: "EXIT_CODE", value: "2" }],
          },
        ],
      },
    ),
  );
  // The final status (every container accounted for) may follow the phase; it is the one that
  // also turns PodReadyToStartContainers False (the pod will start nothing more).
  const failed = await waitForPod(
    bed.namespace,
    "init-fails",
    "Failed, with its final status",
    (pod) =>
      phaseIs("Failed")(pod) &&
      pod.status?.conditions?.find((c) => c.type === "PodReadyToStartContainers")?.status ===
        "False",
  );
  const init = failed.status?.initContainerStatuses?.[0];
  assert.equal(init?.state?.terminated?.exitCode, 2);
  assert.equal(init?.state?.terminated?.reason, "Error");
  assert.equal(init?.restartCount, 0);
  const main = failed.status?.containerStatuses?.[0];
  assert.equal(main?.state?.running, undefined);
  assert.ok(!main?.state?.terminated?.startedAt, "the app container never started");
  assert.equal(main?.restartCount, 0);
  assert.equal(failed.status?.conditions?.find((c) => c.type === "Initialized")?.status, "False");
  assert.equal(await kubectlStatus(bed.namespace, "init-fails"), "Init:Error");
  const appLogs = await kubectl(["-n", bed.namespace, "logs", "init-fails", "-c", "main"]);
  assert.doesNotMatch(appLogs.stdout, /tick/);
});
