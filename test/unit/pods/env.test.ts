import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import {
  commandLine,
  expand,
  isEnvVarName,
  mappingFor,
  resolveEnv,
  runEnvironment,
} from "../../../src/pods/env.ts";
import { FakeKube } from "./fakes.ts";

test("$(VAR) expansion follows the kubelet's expansion package exactly", () => {
  const vars = new Map([
    ["VAR_A", "A"],
    ["VAR_B", "B"],
    ["EMPTY", ""],
  ]);
  const cases: [string, string][] = [
    ["$(VAR_A)", "A"],
    ["___$(VAR_B)___", "___B___"],
    ["$(VAR_A)-$(VAR_B)", "A-B"],
    ["$(UNDEFINED)", "$(UNDEFINED)"],
    ["$$(VAR_A)", "$(VAR_A)"],
    ["$$$(VAR_A)", "$A"],
    ["$$$$(VAR_A)", "$$(VAR_A)"],
    ["$$", "$"],
    ["$", "$"],
    ["foo$", "foo$"],
    ["$VAR_A", "$VAR_A"],
    ["$(VAR_A", "$(VAR_A"],
    ["$()", "$()"],
    ["$(EMPTY)x", "x"],
    ["f000-$$VAR_A", "f000-$VAR_A"],
    ["$(VAR_A)$(VAR_A", "A$(VAR_A"],
    ["(VAR_A)", "(VAR_A)"],
    ["$(VAR_A)$", "A$"],
  ];
  for (const [input, expected] of cases)
    assert.equal(expand(input, mappingFor(vars)), expected, input);
});

test("env var names as IsEnvVarName accepts them", () => {
  for (const ok of ["A", "a_b", "-x", ".dot", "A1.b-c"]) assert.equal(isEnvVarName(ok), true, ok);
  for (const bad of ["", "1A", "a b", "a=b", "é"]) assert.equal(isEnvVarName(bad), false, bad);
});

const pod: V1Pod = {
  metadata: { name: "web", namespace: "ns", uid: "u1", labels: { app: "web" } },
  spec: { nodeName: "n1", serviceAccountName: "sa", containers: [] },
};
const downward = {
  podIPs: ["10.0.0.9"],
  hostIPs: ["10.0.0.9"],
  nodeAllocatable: { cpu: "2", memory: "1Gi" },
};

test("envFrom then env: prefixes, invalid keys skipped, env overrides, expansion sees earlier vars", async () => {
  const kube = new FakeKube();
  kube.setConfigMap("ns", "cfg", { HOST: "db", PORT: "5432", "bad key": "x", "1st": "y" });
  kube.setSecret("ns", "sec", { PASSWORD: "s3cret" });
  const container: V1Container = {
    name: "app",
    resources: { limits: { memory: "64Mi" } },
    envFrom: [
      { configMapRef: { name: "cfg" } },
      { secretRef: { name: "sec" }, prefix: "DB_" },
      { configMapRef: { name: "nope", optional: true } },
    ],
    env: [
      { name: "PORT", value: "6543" },
      { name: "URL", value: "pg://$(HOST):$(PORT)/$(LATER)" },
      { name: "LATER", value: "x" },
      { name: "ESCAPED", value: "$$(HOST)" },
      { name: "POD", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
      { name: "APP", valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
      { name: "IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
      {
        name: "MEM",
        valueFrom: { resourceFieldRef: { resource: "limits.memory", divisor: "1Mi" } },
      },
      { name: "CPU", valueFrom: { resourceFieldRef: { resource: "limits.cpu" } } },
      { name: "KEY", valueFrom: { configMapKeyRef: { name: "cfg", key: "HOST" } } },
      { name: "PASS", valueFrom: { secretKeyRef: { name: "sec", key: "PASSWORD" } } },
      {
        name: "OPT",
        valueFrom: { configMapKeyRef: { name: "cfg", key: "missing", optional: true } },
      },
      { name: "EMPTY" },
    ],
  };
  const { env, skipped } = await resolveEnv(pod, container, { source: kube, downward });
  assert.deepEqual(Object.fromEntries(env), {
    HOST: "db",
    PORT: "6543",
    DB_PASSWORD: "s3cret",
    URL: "pg://db:6543/$(LATER)",
    LATER: "x",
    ESCAPED: "$(HOST)",
    POD: "web",
    APP: "web",
    IP: "10.0.0.9",
    MEM: "64",
    CPU: "2",
    KEY: "db",
    PASS: "s3cret",
    EMPTY: "",
  });
  assert.deepEqual(skipped, [{ kind: "configMap", name: "cfg", keys: ["1st", "bad key"] }]);
});

test("missing required references give CreateContainerConfigError messages in the kubelet's words", async () => {
  const kube = new FakeKube();
  kube.setConfigMap("ns", "cfg", { A: "1" });
  kube.setSecret("ns", "sec", { B: "2" });
  const cases: [V1Container, string][] = [
    [{ name: "c", envFrom: [{ configMapRef: { name: "gone" } }] }, 'configmap "gone" not found'],
    [{ name: "c", envFrom: [{ secretRef: { name: "gone" } }] }, 'secret "gone" not found'],
    [
      {
        name: "c",
        env: [{ name: "X", valueFrom: { configMapKeyRef: { name: "gone", key: "A" } } }],
      },
      'configmap "gone" not found',
    ],
    [
      {
        name: "c",
        env: [{ name: "X", valueFrom: { configMapKeyRef: { name: "cfg", key: "Z" } } }],
      },
      "couldn't find key Z in ConfigMap ns/cfg",
    ],
    [
      { name: "c", env: [{ name: "X", valueFrom: { secretKeyRef: { name: "gone", key: "B" } } }] },
      'secret "gone" not found',
    ],
    [
      { name: "c", env: [{ name: "X", valueFrom: { secretKeyRef: { name: "sec", key: "Z" } } }] },
      "couldn't find key Z in Secret ns/sec",
    ],
    [
      { name: "c", env: [{ name: "X", valueFrom: { fieldRef: { fieldPath: "spec.hostname" } } }] },
      "unsupported fieldPath: spec.hostname",
    ],
  ];
  for (const [container, message] of cases) {
    await assert.rejects(
      resolveEnv(pod, container, { source: kube, downward }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, "WASMLET_ERR_CONTAINER_CONFIG");
        assert.equal(error.message, message);
        return true;
      },
    );
  }
  // Optional missing objects are skipped entirely.
  const optional: V1Container = {
    name: "c",
    env: [
      { name: "X", valueFrom: { configMapKeyRef: { name: "gone", key: "A", optional: true } } },
      { name: "Y", valueFrom: { secretKeyRef: { name: "gone", key: "A", optional: true } } },
    ],
    envFrom: [{ secretRef: { name: "gone", optional: true } }],
  };
  assert.deepEqual([...(await resolveEnv(pod, optional, { source: kube, downward })).env], []);
});

test("command/args against the image's entrypoint/cmd", () => {
  const image = {
    entrypoint: ["/bin/app.wasm", "--serve"],
    cmd: ["--port", "80"],
    workingDir: "/srv",
    env: ["PATH=/bin", "MODE=image"],
  };
  const env = new Map([
    ["NAME", "world"],
    ["MODE", "pod"],
  ]);
  const run = (container: Partial<V1Container>) =>
    commandLine({ name: "c", ...container }, image, env);
  assert.deepEqual(run({}).args, ["/bin/app.wasm", "--serve", "--port", "80"]);
  assert.deepEqual(run({ args: ["hello", "$(NAME)"] }).args, [
    "/bin/app.wasm",
    "--serve",
    "hello",
    "world",
  ]);
  assert.deepEqual(run({ command: ["/other.wasm"] }).args, ["/other.wasm"]);
  assert.deepEqual(
    run({ command: ["/other.wasm"], args: ["$(NAME)", "$$(NAME)", "$(NOPE)"] }).args,
    ["/other.wasm", "world", "$(NAME)", "$(NOPE)"],
  );
  assert.equal(run({}).workingDir, "/srv");
  assert.equal(run({ workingDir: "/data" }).workingDir, "/data");
  assert.deepEqual(commandLine({ name: "bare" }, {}, env), { args: ["bare"], workingDir: "/" });
  assert.deepEqual(runEnvironment(image, env, "web-1"), {
    HOSTNAME: "web-1",
    PATH: "/bin",
    MODE: "pod",
    NAME: "world",
  });
});
