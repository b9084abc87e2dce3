// What a pod's configuration becomes inside the guest: environment variables from values, $(VAR)
// expansion, ConfigMaps, Secrets and the downward API; volumes from ConfigMaps, Secrets, emptyDir,
// the downward API and projections — each asserted from what the guest itself prints.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { eventually, kubectlOk } from "../../support/cluster.ts";
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
  // Mounted ConfigMaps are re-projected every second, not every minute.
  bed = await startPodTestBed("config", ["--sync-frequency", "1s"]);
});
after(async () => {
  await bed?.cleanup();
});

function configMap(name: string, data: Record<string, string>) {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name }, data };
}

function secret(name: string, data: Record<string, string>) {
  return { apiVersion: "v1", kind: "Secret", metadata: { name }, stringData: data };
}

/** `env NAME=value` lines the hello guest printed, as a map. */
function printedEnv(logs: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const line of logs.split("\n")) {
    const match = /^env ([^=]+)=(.*)$/.exec(line);
    if (match) env.set(match[1]!, match[2]!);
  }
  return env;
}

test("env: values with $(VAR) expansion, ConfigMap/Secret keys, pod fields, resources, envFrom", async () => {
  await applyJson(bed.namespace, configMap("env-config", { color: "blue", size: "L" }));
  await applyJson(bed.namespace, secret("env-secret", { password: "s3cret", token: "t0ken" }));
  const fieldRef = (fieldPath: string) => ({ valueFrom: { fieldRef: { fieldPath } } });
  await applyJson(
    bed.namespace,
    podManifest(
      bed,
      "env",
      {
        image: await bed.image("hello"),
        args: ["$(DERIVED)", "$$(BASE)"],
        resources: { limits: { memory: "32Mi" } },
        envFrom: [
          { configMapRef: { name: "env-config" }, prefix: "CFG_" },
          { secretRef: { name: "env-secret" } },
          { configMapRef: { name: "no-such-config", optional: true } },
        ],
        env: [
          { name: "BASE", value: "base" },
          { name: "DERIVED", value: "$(BASE)-derived-$(CFG_color)" },
          { name: "ESCAPED", value: "$$(BASE)" },
          { name: "UNKNOWN", value: "$(NOT_DEFINED)" },
          {
            name: "COLOR",
            valueFrom: { configMapKeyRef: { name: "env-config", key: "color" } },
          },
          {
            name: "PASSWORD",
            valueFrom: { secretKeyRef: { name: "env-secret", key: "password" } },
          },
          { name: "POD_NAME", ...fieldRef("metadata.name") },
          { name: "POD_NAMESPACE", ...fieldRef("metadata.namespace") },
          { name: "POD_UID", ...fieldRef("metadata.uid") },
          { name: "LABEL_X", ...fieldRef("metadata.labels['x']") },
          { name: "ANNOTATION_Y", ...fieldRef("metadata.annotations['y']") },
          { name: "NODE_NAME", ...fieldRef("spec.nodeName") },
          { name: "SERVICE_ACCOUNT", ...fieldRef("spec.serviceAccountName") },
          { name: "HOST_IP", ...fieldRef("status.hostIP") },
          { name: "POD_IP", ...fieldRef("status.podIP") },
          {
            name: "MEMORY_MI",
            valueFrom: { resourceFieldRef: { resource: "limits.memory", divisor: "1Mi" } },
          },
          {
            name: "OPTIONAL_CONFIG",
            valueFrom: {
              configMapKeyRef: { name: "no-such-config", key: "k", optional: true },
            },
          },
          {
            name: "OPTIONAL_KEY",
            valueFrom: { secretKeyRef: { name: "env-secret", key: "nope", optional: true } },
          },
        ],
      },
      {},
      { labels: { x: "label-x" }, annotations: { y: "annotation-y" } },
    ),
  );
  const done = await waitForPod(bed.namespace, "env", "Succeeded", phaseIs("Succeeded"));
  const logs = await logsOf(bed.namespace, "env");
  const env = printedEnv(logs);
  const expected: Record<string, string> = {
    BASE: "base",
    DERIVED: "base-derived-blue",
    ESCAPED: "$(BASE)",
    UNKNOWN: "$(NOT_DEFINED)",
    COLOR: "blue",
    PASSWORD: "s3cret",
    CFG_color: "blue",
    CFG_size: "L",
    password: "s3cret",
    token: "t0ken",
    POD_NAME: "env",
    POD_NAMESPACE: bed.namespace,
    POD_UID: done.metadata?.uid ?? "(no uid)",
    LABEL_X: "label-x",
    ANNOTATION_Y: "annotation-y",
    NODE_NAME: bed.wasmlet.nodeName,
    SERVICE_ACCOUNT: "default",
    HOST_IP: "127.0.0.1",
    POD_IP: "127.0.0.1",
    MEMORY_MI: "32",
  };
  for (const [name, value] of Object.entries(expected))
    assert.equal(env.get(name), value, `env ${name} in:\n${logs}`);
  assert.equal(done.status?.hostIP, "127.0.0.1");
  assert.equal(done.status?.podIP, "127.0.0.1");
  assert.ok(!env.has("OPTIONAL_CONFIG"), "an optional missing ConfigMap defines nothing");
  assert.ok(!env.has("OPTIONAL_KEY"), "an optional missing key defines nothing");
  assert.match(logs, /^arg\[1\]=base-derived-blue$/m);
  assert.match(logs, /^arg\[2\]=\$\(BASE\)$/m);
});

test("a missing required ConfigMap shows CreateContainerConfigError until it is created", async () => {
  await applyJson(
    bed.namespace,
    podManifest(bed, "late", {
      image: await bed.image("hello"),
      env: [
        { name: "LATE", valueFrom: { configMapKeyRef: { name: "late-config", key: "value" } } },
      ],
    }),
  );
  const waiting = await waitForPod(
    bed.namespace,
    "late",
    "in CreateContainerConfigError",
    (p) =>
      p.status?.containerStatuses?.[0]?.state?.waiting?.reason === "CreateContainerConfigError",
  );
  assert.match(
    waiting.status?.containerStatuses?.[0]?.state?.waiting?.message ?? "",
    /configmap "late-config" not found/,
  );
  assert.equal(waiting.status?.phase, "Pending");
  assert.equal(await kubectlStatus(bed.namespace, "late"), "CreateContainerConfigError");
  await applyJson(bed.namespace, configMap("late-config", { value: "arrived" }));
  await waitForPod(bed.namespace, "late", "Succeeded", phaseIs("Succeeded"), 40_000);
  assert.match(await logsOf(bed.namespace, "late"), /^env LATE=arrived$/m);
});

test("volumes: configMap (all keys, items, subPath), secret, downwardAPI, projected, emptyDir from an init container", async () => {
  await applyJson(
    bed.namespace,
    configMap("vol-config", { "a.txt": "alpha", "b.txt": "beta", "c.txt": "gamma" }),
  );
  await applyJson(bed.namespace, secret("vol-secret", { user: "admin" }));
  const reader = await bed.image("reader");
  await applyJson(
    bed.namespace,
    podManifest(
      bed,
      "volumes",
      {
        image: reader,
        args: [
          "/config",
          "/config-items/dir/a",
          "/etc/b.txt",
          "/secret/user",
          "/downward/labels",
          "/projected/a",
          "/projected/token",
          "/shared/msg",
        ],
        volumeMounts: [
          { name: "config", mountPath: "/config" },
          { name: "config-items", mountPath: "/config-items" },
          { name: "config", mountPath: "/etc/b.txt", subPath: "b.txt" },
          { name: "secret", mountPath: "/secret" },
          { name: "downward", mountPath: "/downward" },
          { name: "projected", mountPath: "/projected" },
          { name: "shared", mountPath: "/shared" },
        ],
      },
      {
        initContainers: [
          {
            name: "writer",
            image: reader,
            args: ["--write", "/shared/msg", "written by init"],
            volumeMounts: [{ name: "shared", mountPath: "/shared" }],
          },
        ],
        volumes: [
          { name: "config", configMap: { name: "vol-config" } },
          {
            name: "config-items",
            configMap: { name: "vol-config", items: [{ key: "a.txt", path: "dir/a" }] },
          },
          { name: "secret", secret: { secretName: "vol-secret" } },
          {
            name: "downward",
            downwardAPI: {
              items: [{ path: "labels", fieldRef: { fieldPath: "metadata.labels" } }],
            },
          },
          {
            name: "projected",
            projected: {
              sources: [
                { configMap: { name: "vol-config", items: [{ key: "a.txt", path: "a" }] } },
                { serviceAccountToken: { path: "token", expirationSeconds: 3600 } },
              ],
            },
          },
          { name: "shared", emptyDir: {} },
        ],
      },
      { labels: { app: "volumes", tier: "test" } },
    ),
  );
  await waitForPod(bed.namespace, "volumes", "Succeeded", phaseIs("Succeeded"));
  const logs = await logsOf(bed.namespace, "volumes");
  const listed = logs
    .split("\n")
    .filter((line) => line.startsWith("/config/"))
    .sort();
  assert.deepEqual(listed, ["/config/a.txt", "/config/b.txt", "/config/c.txt"], logs);
  assert.match(logs, /^\/config-items\/dir\/a: alpha$/m);
  assert.match(logs, /^\/etc\/b\.txt: beta$/m);
  assert.match(logs, /^\/secret\/user: admin$/m);
  assert.match(logs, /^\/downward\/labels: app="volumes"\ntier="test"$/m);
  assert.match(logs, /^\/projected\/a: alpha$/m);
  const token = /^\/projected\/token: (\S*)$/m.exec(logs)?.[1] ?? "";
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, `a JWT in the token file, got ${token}`);
  assert.match(logs, /^\/shared\/msg: written by init$/m);
  assert.match(await logsOf(bed.namespace, "volumes", ["-c", "writer"]), /\/shared\/msg: written/);
});

test("a readOnly mount refuses writes where the same volume mounted read-write accepts them", async () => {
  await applyJson(bed.namespace, secret("ro-secret", { key: "value" }));
  await applyJson(
    bed.namespace,
    podManifest(
      bed,
      "readonly",
      {
        image: await bed.image("reader"),
        args: [
          "--write",
          "/rw/file",
          "fine",
          "--write",
          "/ro/other",
          "refused",
          "--write",
          "/secret/key",
          "refused",
          "/ro/file",
        ],
        volumeMounts: [
          { name: "scratch", mountPath: "/rw" },
          { name: "scratch", mountPath: "/ro", readOnly: true },
          { name: "secret", mountPath: "/secret" },
        ],
      },
      {
        volumes: [
          { name: "scratch", emptyDir: {} },
          { name: "secret", secret: { secretName: "ro-secret" } },
        ],
      },
    ),
  );
  const done = await waitForPod(bed.namespace, "readonly", "Failed", phaseIs("Failed"));
  assert.equal(done.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 1);
  const logs = await logsOf(bed.namespace, "readonly");
  assert.match(logs, /^\/rw\/file: written$/m);
  assert.match(logs, /^\/ro\/other: write error: .*read-only/im);
  assert.match(logs, /^\/secret\/key: write error: .*read-only/im);
  // The read-only view shows what was written through the read-write one.
  assert.match(logs, /^\/ro\/file: fine$/m);
});

test("a ConfigMap update reaches the mounted volume of a running pod", async () => {
  await applyJson(bed.namespace, configMap("live-config", { greeting: "first" }));
  await applyJson(
    bed.namespace,
    podManifest(
      bed,
      "live",
      {
        image: await bed.image("watcher"),
        args: ["/live/greeting"],
        volumeMounts: [{ name: "live", mountPath: "/live" }],
      },
      { volumes: [{ name: "live", configMap: { name: "live-config" } }] },
    ),
  );
  await waitForPod(bed.namespace, "live", "Running", phaseIs("Running"));
  await waitForLogs(bed.namespace, "live", /^\/live\/greeting: first$/m);
  await kubectlOk([
    "-n",
    bed.namespace,
    "patch",
    "configmap",
    "live-config",
    "--type=merge",
    "-p",
    JSON.stringify({ data: { greeting: "second" } }),
  ]);
  const logs = await waitForLogs(bed.namespace, "live", /^\/live\/greeting: second$/m, [], 20_000);
  assert.doesNotMatch(logs, /error/, "the file never disappears while it is replaced");
  const pod = await getPod(bed.namespace, "live");
  assert.equal(pod?.status?.containerStatuses?.[0]?.restartCount, 0, "no restart was needed");
  await kubectlOk(["-n", bed.namespace, "delete", "pod", "live", "--wait=false"]);
  await eventually(
    async () => (await getPod(bed.namespace, "live")) === undefined,
    "the live pod to be deleted",
  );
});
