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
  await waitForPod(bed.namespace, "toolbox", "Running", phaseIs("Running"));
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

test("kubectl exec into a missing container is refused clearly", async () => {
  const result = await kubectl(["-n", bed.namespace, "exec", "toolbox", "-c", "nope", "--", "x"]);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /container nope is not valid|not found/);
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
