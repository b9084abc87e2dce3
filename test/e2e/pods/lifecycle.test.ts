// What a Kubernetes user does with pods on a wasm node: run them, read their output, see them
// crash, restart, run out of memory and get deleted — through the real scheduler, controllers,
// API server and kubectl.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { eventually, kubectl, kubectlOk } from "../../support/cluster.ts";
import { sample } from "../../support/wasmlet.ts";
import {
  applyJson,
  getPod,
  kubectlStatus,
  logsOf,
  type PodTestBed,
  phaseIs,
  podManifest,
  startPodTestBed,
  waitForPod,
} from "./support.ts";

let bed: PodTestBed;
before(async () => {
  bed = await startPodTestBed("pods");
});
after(async () => {
  await bed?.cleanup();
});

const pod = (
  name: string,
  container: Record<string, unknown>,
  spec: Record<string, unknown> = {},
) => podManifest(bed, name, container, spec);

test("a pod that names only a RuntimeClass lands on the wasm node, runs and succeeds with its args and env", async () => {
  await applyJson(
    bed.namespace,
    pod("hello", {
      image: await bed.image("hello"),
      args: ["one", "$(GREETING) two"],
      env: [{ name: "GREETING", value: "hi" }],
    }),
  );
  const done = await waitForPod(bed.namespace, "hello", "Succeeded", phaseIs("Succeeded"));
  assert.equal(done.spec?.nodeName, bed.wasmlet.nodeName);
  const status = done.status?.containerStatuses?.[0];
  assert.equal(status?.state?.terminated?.reason, "Completed");
  assert.equal(status?.state?.terminated?.exitCode, 0);
  assert.match(status?.containerID ?? "", /^wasmlet:\/\//);
  assert.match(status?.imageID ?? "", /@sha256:[0-9a-f]{64}$/);
  const logs = await logsOf(bed.namespace, "hello");
  assert.match(logs, /^hello from wasm$/m);
  assert.match(logs, /^arg\[1\]=one$/m);
  assert.match(logs, /^arg\[2\]=hi two$/m);
  assert.match(logs, /^env GREETING=hi$/m);
  assert.match(logs, /^hello on stderr$/m);
  const events = await kubectlOk([
    "-n",
    bed.namespace,
    "get",
    "events",
    "--field-selector",
    "involvedObject.name=hello",
    "-o",
    "jsonpath={.items[*].reason}",
  ]);
  for (const reason of ["Scheduled", "Pulling", "Pulled", "Created", "Started"])
    assert.match(events, new RegExp(`\\b${reason}\\b`));
  // The node lists the image it now holds, as the scheduler's ImageLocality expects.
  const listed = await eventually(async () => {
    const node = JSON.parse(await kubectlOk(["get", "node", bed.wasmlet.nodeName, "-o", "json"]));
    const images: { names: string[]; sizeBytes: number }[] = node.status.images ?? [];
    return images.find((image) => image.names.includes(status?.imageID ?? "-"));
  }, "the image in the node's status.images");
  assert.ok(listed.sizeBytes > 0);
  assert.ok(listed.names.includes(await bed.image("hello")), listed.names.join(", "));
});

test("the stock `wasm` RuntimeClass schedules onto wasm nodes only", async () => {
  const rc = JSON.parse(await kubectlOk(["get", "runtimeclass", "wasm", "-o", "json"]));
  assert.equal(rc.handler, "wasmlet");
  assert.deepEqual(rc.scheduling.nodeSelector, { "node.kubernetes.io/wasmlet": "true" });
  assert.ok(rc.scheduling.tolerations.some((t: { key: string }) => t.key === "wasmlet.io/wasm"));
});

test("an ordinary pod and a DaemonSet stay off the wasm node", async () => {
  await applyJson(bed.namespace, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "ordinary" },
    spec: {
      nodeSelector: { "kubernetes.io/hostname": bed.wasmlet.nodeName },
      containers: [{ name: "c", image: "nginx:1" }],
    },
  });
  await applyJson(bed.namespace, {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name: "agent" },
    spec: {
      selector: { matchLabels: { app: "agent" } },
      template: {
        metadata: { labels: { app: "agent" } },
        spec: { containers: [{ name: "c", image: "agent:1" }] },
      },
    },
  });
  const unschedulable = await waitForPod(bed.namespace, "ordinary", "reported unschedulable", (p) =>
    Boolean(
      p.status?.conditions?.some((c) => c.type === "PodScheduled" && c.reason === "Unschedulable"),
    ),
  );
  assert.match(
    unschedulable.status?.conditions?.find((c) => c.type === "PodScheduled")?.message ?? "",
    /taint|affinity|selector/,
  );
  // The DaemonSet controller creates a set's pods before it reports the generation it synced:
  // once it has, any pod it meant for the wasm node would exist.
  await eventually(async () => {
    const set = JSON.parse(
      await kubectlOk(["-n", bed.namespace, "get", "daemonset", "agent", "-o", "json"]),
    );
    return set.status?.observedGeneration === set.metadata.generation;
  }, "the DaemonSet controller to sync the set");
  const daemonPods = JSON.parse(
    await kubectlOk(["-n", bed.namespace, "get", "pods", "-l", "app=agent", "-o", "json"]),
  );
  assert.equal(
    daemonPods.items.filter(
      (p: { spec: { nodeName?: string } }) => p.spec.nodeName === bed.wasmlet.nodeName,
    ).length,
    0,
  );
});

test("a crashing container goes into CrashLoopBackOff with a growing restart count", async () => {
  await applyJson(
    bed.namespace,
    pod(
      "crasher",
      { image: await bed.image("hello"), env: [{ name: "EXIT_CODE", value: "3" }] },
      { restartPolicy: "Always" },
    ),
  );
  const looping = await waitForPod(
    bed.namespace,
    "crasher",
    "in CrashLoopBackOff",
    (p) =>
      p.status?.containerStatuses?.[0]?.state?.waiting?.reason === "CrashLoopBackOff" &&
      (p.status.containerStatuses[0].restartCount ?? 0) >= 1,
  );
  const last = looping.status?.containerStatuses?.[0]?.lastState?.terminated;
  assert.equal(last?.exitCode, 3);
  assert.equal(last?.reason, "Error");
  assert.equal(
    await eventually(
      async () =>
        (await kubectlStatus(bed.namespace, "crasher")) === "CrashLoopBackOff" ? "yes" : undefined,
      "kubectl STATUS CrashLoopBackOff",
      15_000,
    ),
    "yes",
  );
  assert.match(await logsOf(bed.namespace, "crasher", ["--previous"]), /^hello from wasm$/m);
  await eventually(
    async () =>
      ((await getPod(bed.namespace, "crasher"))?.status?.containerStatuses?.[0]?.restartCount ??
        0) >= 2,
    "a second restart",
    15_000,
  );
  assert.ok(
    sample(await bed.wasmlet.metrics(), "wasmlet_container_restarts_total") >= 2,
    "restarts counted in /metrics",
  );
});

test("exec probes and hooks: postStart runs first; Ready once the readiness probe passes; a failing liveness probe restarts its container", async () => {
  const toolbox = await bed.image("toolbox");
  await applyJson(bed.namespace, {
    ...pod("probed", { name: "web", image: toolbox }),
    spec: {
      runtimeClassName: bed.runtimeClass,
      terminationGracePeriodSeconds: 2,
      volumes: [{ name: "data", emptyDir: {} }],
      containers: [
        {
          name: "web",
          image: toolbox,
          volumeMounts: [{ name: "data", mountPath: "/data" }],
          readinessProbe: {
            exec: { command: ["toolbox", "exists", "/data/ready"] },
            periodSeconds: 1,
          },
          lifecycle: { postStart: { exec: { command: ["toolbox", "touch", "/data/post-start"] } } },
        },
        {
          name: "sick",
          image: toolbox,
          livenessProbe: {
            exec: { command: ["toolbox", "fail", "3"] },
            periodSeconds: 1,
            failureThreshold: 2,
          },
        },
      ],
    },
  });
  const running = await waitForPod(bed.namespace, "probed", "Running", phaseIs("Running"));
  const web = () => running.status?.containerStatuses?.find((c) => c.name === "web");
  assert.equal(web()?.ready, false, "not ready before its probe passes");
  assert.equal(running.status?.conditions?.find((c) => c.type === "Ready")?.status, "False");
  const probe = (path: string) =>
    kubectl(["-n", bed.namespace, "exec", "probed", "-c", "web", "--", "toolbox", "exists", path]);
  assert.equal((await probe("/data/post-start")).code, 0, "the postStart hook ran before Running");

  await kubectlOk([
    "-n",
    bed.namespace,
    "exec",
    "probed",
    "-c",
    "web",
    "--",
    "toolbox",
    "touch",
    "/data/ready",
  ]);
  await waitForPod(
    bed.namespace,
    "probed",
    "web ready",
    (p) => !!p.status?.containerStatuses?.find((c) => c.name === "web")?.ready,
  );

  const restarted = await waitForPod(
    bed.namespace,
    "probed",
    "sick restarted",
    (p) => (p.status?.containerStatuses?.find((c) => c.name === "sick")?.restartCount ?? 0) >= 1,
  );
  const sick = restarted.status?.containerStatuses?.find((c) => c.name === "sick");
  assert.ok([137, 143].includes(sick?.lastState?.terminated?.exitCode ?? 0));
  const described = await kubectlOk(["-n", bed.namespace, "describe", "pod", "probed"]);
  assert.match(described, /Unhealthy\s+.*Liveness probe failed: failing with 3/);
  assert.match(described, /Killing\s+.*Container sick failed liveness probe, will be restarted/);
  assert.match(described, /Unhealthy\s+.*Readiness probe failed: \/data\/ready does not exist/);
  assert.equal(
    restarted.status?.containerStatuses?.find((c) => c.name === "web")?.restartCount,
    0,
    "a readiness probe never restarts",
  );

  // Running again after its restart: --previous reads the instance that was killed, not this one.
  const again = await waitForPod(bed.namespace, "probed", "sick running again", (p) => {
    const status = p.status?.containerStatuses?.find((c) => c.name === "sick");
    return (status?.restartCount ?? 0) >= 1 && !!status?.state?.running;
  });
  assert.ok(again.status?.containerStatuses?.find((c) => c.name === "sick")?.lastState?.terminated);
  const stampOf = async (args: string[]) => {
    const log = await logsOf(bed.namespace, "probed", ["-c", "sick", "--timestamps", ...args]);
    const line = /^(\S+) ready$/m.exec(log);
    return line ? Date.parse(line[1]!) : Number.NaN;
  };
  // The liveness probe keeps restarting this container, so read --previous first: whatever
  // instance the plain log shows afterwards started later than the one --previous showed.
  await eventually(
    async () => {
      const previous = await stampOf(["--previous"]);
      const current = await stampOf([]);
      return previous < current ? true : undefined;
    },
    "--previous to show an older instance than the plain log",
    15_000,
  );
});

test("a guest that outgrows its memory limit is OOMKilled", async () => {
  await applyJson(
    bed.namespace,
    pod("hog", { image: await bed.image("memhog"), resources: { limits: { memory: "16Mi" } } }),
  );
  const dead = await waitForPod(bed.namespace, "hog", "Failed", phaseIs("Failed"));
  const terminated = dead.status?.containerStatuses?.[0]?.state?.terminated;
  assert.equal(terminated?.reason, "OOMKilled");
  assert.equal(terminated?.exitCode, 137);
  assert.equal(await kubectlStatus(bed.namespace, "hog"), "OOMKilled");
  assert.equal(sample(await bed.wasmlet.metrics(), "wasmlet_container_oom_kills_total"), 1);
});

test("deleting a running pod stops it within its grace period and removes it", async () => {
  await applyJson(
    bed.namespace,
    pod("ticker", { image: await bed.image("ticker") }, { terminationGracePeriodSeconds: 5 }),
  );
  await waitForPod(bed.namespace, "ticker", "Running", phaseIs("Running"));
  await eventually(
    async () => /tick 2/.test(await logsOf(bed.namespace, "ticker")),
    "two ticks in the log",
  );
  const started = Date.now();
  const result = await kubectl([
    "-n",
    bed.namespace,
    "delete",
    "pod",
    "ticker",
    "--wait=true",
    "--timeout=20s",
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.ok(Date.now() - started < 5000, `deletion took ${Date.now() - started} ms`);
  assert.equal(await getPod(bed.namespace, "ticker"), undefined);
});

test("a pod the node cannot run is rejected with a precise reason", async () => {
  await applyJson(
    bed.namespace,
    pod("hostnet", { image: await bed.image("hello") }, { hostNetwork: true }),
  );
  const rejected = await waitForPod(bed.namespace, "hostnet", "Failed", phaseIs("Failed"));
  assert.match(`${rejected.status?.reason} ${rejected.status?.message}`, /hostNetwork/);
});

test("a missing image shows ErrImagePull, then ImagePullBackOff", async () => {
  await applyJson(bed.namespace, pod("missing", { image: `${await bed.image("hello")}-nope` }));
  const waiting = await waitForPod(bed.namespace, "missing", "waiting on the image", (p) =>
    ["ErrImagePull", "ImagePullBackOff"].includes(
      p.status?.containerStatuses?.[0]?.state?.waiting?.reason ?? "",
    ),
  );
  assert.match(
    waiting.status?.containerStatuses?.[0]?.state?.waiting?.message ?? "",
    /not found|manifest unknown|MANIFEST_UNKNOWN/i,
  );
  await kubectlOk([
    "-n",
    bed.namespace,
    "delete",
    "pod",
    "missing",
    "--wait=true",
    "--timeout=20s",
  ]);
});
