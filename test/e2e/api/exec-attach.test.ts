// `kubectl exec` and `kubectl attach` through a real API server, which proxies the WebSocket
// straight to the node because the node declares ExtendWebSocketsToKubelet.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, test } from "node:test";
import { kubectl, kubectlOk, testCluster } from "../../support/cluster.ts";
import { getNode } from "../../support/wasmlet.ts";
import {
  applyJson,
  type PodTestBed,
  phaseIs,
  startPodTestBed,
  waitForPod,
} from "../pods/support.ts";

let bed: PodTestBed;
before(async () => {
  bed = await startPodTestBed("exec");
  // Before the pod: a container's environment is fixed when it starts.
  await applyJson(bed.namespace, {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "cart-db" },
    spec: { ports: [{ name: "sql", port: 5432 }] },
  });
  await applyJson(bed.namespace, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "toolbox" },
    spec: {
      runtimeClassName: bed.runtimeClass,
      containers: [
        {
          name: "main",
          image: await bed.image("toolbox"),
          stdin: true,
          env: [{ name: "SECRET_WORD", value: "swordfish" }],
        },
      ],
    },
  });
  await applyJson(bed.namespace, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "ticker" },
    spec: {
      runtimeClassName: bed.runtimeClass,
      containers: [{ name: "main", image: await bed.image("ticker") }],
    },
  });
  await waitForPod(bed.namespace, "toolbox", "Running", phaseIs("Running"));
  await waitForPod(bed.namespace, "ticker", "Running", phaseIs("Running"));
});
after(async () => {
  await bed?.cleanup();
});

test("the node declares ExtendWebSocketsToKubelet", async () => {
  const node = await getNode(bed.wasmlet.nodeName);
  const status = node?.status as { declaredFeatures?: string[] } | undefined;
  assert.deepEqual(status?.declaredFeatures, ["ExtendWebSocketsToKubelet"]);
});

test("kubectl exec returns the command's output and the container's environment", async () => {
  assert.equal(
    await kubectlOk([
      "-n",
      bed.namespace,
      "exec",
      "toolbox",
      "--",
      "toolbox",
      "echo",
      "hello",
      "there",
    ]),
    "hello there\n",
  );
  assert.equal(
    await kubectlOk([
      "-n",
      bed.namespace,
      "exec",
      "toolbox",
      "--",
      "toolbox",
      "env",
      "SECRET_WORD",
    ]),
    "swordfish\n",
  );
});

test("the container's environment holds the service variables a kubelet gives it", async () => {
  const env = (name: string) =>
    kubectlOk(["-n", bed.namespace, "exec", "toolbox", "--", "toolbox", "env", name]);
  const ipOf = (namespace: string, name: string) =>
    kubectlOk(["-n", namespace, "get", "service", name, "-o", "jsonpath={.spec.clusterIP}"]);
  assert.equal(await env("KUBERNETES_SERVICE_HOST"), `${await ipOf("default", "kubernetes")}\n`);
  assert.equal(await env("KUBERNETES_SERVICE_PORT"), "443\n");
  const cart = await ipOf(bed.namespace, "cart-db");
  assert.equal(await env("CART_DB_SERVICE_HOST"), `${cart}\n`);
  assert.equal(await env("CART_DB_PORT_5432_TCP"), `tcp://${cart}:5432\n`);
});

test("kubectl exec reports a non-zero exit code and stderr", async () => {
  const result = await kubectl([
    "-n",
    bed.namespace,
    "exec",
    "toolbox",
    "--",
    "toolbox",
    "fail",
    "42",
  ]);
  assert.equal(result.code, 42, result.stderr);
  assert.match(result.stderr, /failing with 42/);
});

test("kubectl exec -i streams stdin to the command, end of file included", async () => {
  const result = await kubectl(
    ["-n", bed.namespace, "exec", "-i", "toolbox", "--", "toolbox", "cat"],
    { input: "first line\nsecond line\n" },
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "first line\nsecond line\nread 23 bytes\n");
});

test("kubectl exec into a missing container is refused clearly", async () => {
  const result = await kubectl(["-n", bed.namespace, "exec", "toolbox", "-c", "nope", "--", "x"]);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /container nope is not valid|not found/);
});

test("kubectl attach without stdin streams what the running container prints from then on", async () => {
  const child = spawn(
    process.env.KUBECTL ?? "kubectl",
    ["--kubeconfig", testCluster().kubeconfig, "-n", bed.namespace, "attach", "ticker"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const ticks = () => [...output.matchAll(/^tick (\d+)$/gm)].map((m) => Number(m[1]));
  try {
    const deadline = Date.now() + 20_000;
    while (ticks().length < 5 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    const seen = ticks();
    assert.ok(seen.length >= 5, `attach saw ${JSON.stringify(output)}`);
    // Live output, not the log replayed: it starts where the container is now, in order.
    assert.ok(seen[0]! > 1, `attach replayed the log from tick ${seen[0]}`);
    assert.deepEqual(
      seen,
      seen.map((_, i) => seen[0]! + i),
    );
  } finally {
    child.kill("SIGINT");
  }
});

test("kubectl attach sees live output and reaches the container's stdin", async () => {
  const child = spawn(
    process.env.KUBECTL ?? "kubectl",
    ["--kubeconfig", testCluster().kubeconfig, "-n", bed.namespace, "attach", "-i", "toolbox"],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  try {
    child.stdin.write("ping one\n");
    const deadline = Date.now() + 20_000;
    while (!output.includes("got: ping one") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      if (!output.includes("got: ping one")) child.stdin.write("ping one\n");
    }
    assert.match(output, /got: ping one/);
  } finally {
    child.kill("SIGINT");
  }
});
