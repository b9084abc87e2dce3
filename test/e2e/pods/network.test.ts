// Guests serve their containerPorts, end to end: pods shaped like the seed's nginx-wasm.yaml are
// reached at their pod IPs, in pod-cidr mode (an address per pod from a 127.x block, as in
// `wasmlet dev`) and in node mode (the node's address, one pod per port). All traffic stays on
// 127.0.0.0/8.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { readdirSync } from "node:fs";
import { after, before, test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { eventually, kubectlOk, testCluster } from "../../support/cluster.ts";
import { nodeIP as hostAddress } from "../../support/wasmlet.ts";
import { applyJson, type PodTestBed, phaseIs, startPodTestBed, waitForPod } from "./support.ts";

const block = randomInt(150, 250);
const cidr = `127.${block}.0.0/24`;
let bed: PodTestBed;
before(async () => {
  bed = await startPodTestBed("net", ["--pod-network=pod-cidr", `--pod-cidr=${cidr}`]);
});
after(async () => {
  await bed?.cleanup();
});

/** A pod like nginx-wasm.yaml: the runtime class, a web server image, containerPort 8080. */
function webPod(name: string, image: string, runtimeClass: string, port = 8080): object {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, labels: { app: "web" } },
    spec: {
      runtimeClassName: runtimeClass,
      containers: [{ name: "web", image, ports: [{ name: "http", containerPort: port }] }],
    },
  };
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: response.status, body: await response.text() };
}

test("two replicas on one node both serve port 8080, each at its own pod IP", async () => {
  const image = await bed.image("c-server");
  await applyJson(bed.namespace, webPod("web-1", image, bed.runtimeClass));
  await applyJson(bed.namespace, webPod("web-2", image, bed.runtimeClass));
  const pods: V1Pod[] = [];
  for (const name of ["web-1", "web-2"])
    pods.push(await waitForPod(bed.namespace, name, "Running", phaseIs("Running")));
  const ips = pods.map((p) => p.status?.podIP ?? "");
  assert.notEqual(ips[0], ips[1]);
  for (const [i, ip] of ips.entries()) {
    assert.match(ip, new RegExp(`^127\\.${block}\\.0\\.\\d+$`));
    assert.deepEqual(pods[i]!.status?.podIPs, [{ ip }]);
    assert.equal(pods[i]!.status?.hostIP, "127.0.0.1");
    const { status, body } = await get(`http://${ip}:8080/`);
    assert.equal(status, 200);
    assert.match(body, /^hello from c, connection \d+\n$/);
  }
  const wide = await kubectlOk(["-n", bed.namespace, "get", "pods", "-o", "wide"]);
  for (const ip of ips) assert.match(wide, new RegExp(`\\b${ip.replaceAll(".", "\\.")}\\b`));
});

test("httpGet readiness, grpc liveness and tcpSocket startup probes run against a Go web server", async () => {
  await applyJson(bed.namespace, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "probed" },
    spec: {
      runtimeClassName: bed.runtimeClass,
      containers: [
        {
          name: "web",
          image: await bed.image("http-go"),
          ports: [{ name: "http", containerPort: 8080 }],
          startupProbe: { tcpSocket: { port: "http" }, periodSeconds: 1 },
          readinessProbe: { httpGet: { path: "/healthz", port: "http" }, periodSeconds: 1 },
          livenessProbe: { grpc: { port: 8080 }, periodSeconds: 1, failureThreshold: 3 },
        },
      ],
    },
  });
  const ready = (pod: V1Pod) =>
    pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
  const pod = await waitForPod(bed.namespace, "probed", "Ready", ready);
  const ip = pod.status!.podIP!;
  assert.equal((await get(`http://${ip}:8080/healthz`)).status, 200);
  // Unhealthy: readiness drops at once, liveness (NOT_SERVING) restarts the container.
  await fetch(`http://${ip}:8080/fail`, { method: "POST" });
  await waitForPod(
    bed.namespace,
    "probed",
    "restarted by its liveness probe",
    (p) => (p.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1,
  );
  const events = await kubectlOk([
    "-n",
    bed.namespace,
    "get",
    "events",
    "--field-selector",
    "involvedObject.name=probed",
    "-o",
    'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}',
  ]);
  assert.match(events, /Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 500/);
  assert.match(
    events,
    /Unhealthy: Liveness probe failed: service unhealthy \(responded with "NOT_SERVING"\)/,
  );
  assert.match(events, /Killing: Container web failed liveness probe, will be restarted/);
  // The new instance is healthy again.
  await waitForPod(bed.namespace, "probed", "Ready again", ready);
});

test("guests connect out: one pod fetches a page from another by its pod IP", async () => {
  await applyJson(bed.namespace, webPod("upstream", await bed.image("http-go"), bed.runtimeClass));
  const upstream = await waitForPod(bed.namespace, "upstream", "Running", phaseIs("Running"));
  const url = `http://${upstream.status!.podIP}:8080/`;
  await applyJson(bed.namespace, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "client" },
    spec: {
      runtimeClassName: bed.runtimeClass,
      restartPolicy: "Never",
      containers: [{ name: "fetch", image: await bed.image("fetch-go"), args: [url] }],
    },
  });
  await waitForPod(bed.namespace, "client", "Succeeded", phaseIs("Succeeded"));
  const logs = await kubectlOk(["-n", bed.namespace, "logs", "client"]);
  assert.match(logs, /^HTTP\/1\.1 200 OK\n[\s\S]*hello from upstream/);
  // A server pod's own outbound call, made while it serves a request.
  const web = await waitForPod(bed.namespace, "web-1", "Running", phaseIs("Running"));
  const relayed = await get(
    `http://${upstream.status!.podIP}:8080/fetch?url=http://${web.status!.podIP}:8080/`,
  );
  assert.equal(relayed.status, 200);
  assert.match(relayed.body, /hello from c/);
});

test("a guest cannot reach wasmlet's own kubelet port or the host's loopback services", async () => {
  const targets = {
    kubelet: `https://127.0.0.1:${bed.wasmlet.port}/pods`,
    "api-server": `${testCluster().apiServerUrl}/version`,
  };
  for (const [name, url] of Object.entries(targets)) {
    await applyJson(bed.namespace, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: `sneaky-${name}` },
      spec: {
        runtimeClassName: bed.runtimeClass,
        restartPolicy: "Never",
        containers: [{ name: "fetch", image: await bed.image("fetch-go"), args: [url] }],
      },
    });
    await waitForPod(bed.namespace, `sneaky-${name}`, "Failed", phaseIs("Failed"));
    const logs = await kubectlOk(["-n", bed.namespace, "logs", `sneaky-${name}`]);
    assert.match(logs, /sock_connect: Permission denied/i, `${name}: ${logs}`);
  }
});

test("kubectl port-forward reaches a pod's port through the API server", async () => {
  await waitForPod(bed.namespace, "upstream", "Running", phaseIs("Running"));
  const local = randomInt(40_000, 50_000);
  const forward = spawn(
    process.env.KUBECTL ?? "kubectl",
    [
      "--kubeconfig",
      testCluster().kubeconfig,
      "-n",
      bed.namespace,
      "port-forward",
      "--address",
      "127.0.0.1",
      "pod/upstream",
      `${local}:8080`,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let printed = "";
  forward.stdout.on("data", (chunk: Buffer) => {
    printed += chunk.toString();
  });
  forward.stderr.on("data", (chunk: Buffer) => {
    printed += chunk.toString();
  });
  try {
    await eventually(
      async () => (printed.includes("Forwarding from") ? true : undefined),
      "kubectl port-forward to listen",
      20_000,
    );
    assert.equal((await get(`http://127.0.0.1:${local}/`)).body, "hello from upstream\n");
    // Several connections at once, and a body bigger than the SPDY window.
    const bodies = await Promise.all(
      [1, 2, 3].map(
        async (i) => (await get(`http://127.0.0.1:${local}/echo?n=${i * 300_000}`)).body,
      ),
    );
    assert.deepEqual(
      bodies.map((b) => b.length),
      [300_000, 600_000, 900_000],
    );
  } finally {
    forward.kill();
  }
});

test("two containers of one pod asking for one port are refused at admission", async () => {
  await applyJson(bed.namespace, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "twice" },
    spec: {
      runtimeClassName: bed.runtimeClass,
      containers: [
        { name: "a", image: await bed.image("c-server"), ports: [{ containerPort: 9000 }] },
        { name: "b", image: await bed.image("c-server"), ports: [{ containerPort: 9000 }] },
      ],
    },
  });
  const pod = await waitForPod(bed.namespace, "twice", "Failed", phaseIs("Failed"));
  assert.equal(pod.status?.reason, "PortConflict");
  assert.match(pod.status?.message ?? "", /Pod was rejected: port 9000\/TCP is declared twice/);
});

test("node mode: the pod's IP is the node's, and a second pod asking for the port is refused", async () => {
  const nodeIP = `127.0.0.${randomInt(20, 250)}`;
  const port = randomInt(20_000, 30_000);
  const nodeBed = await startPodTestBed("netnode", [], nodeIP);
  try {
    const image = await nodeBed.image("c-server");
    await applyJson(nodeBed.namespace, webPod("first", image, nodeBed.runtimeClass, port));
    const first = await waitForPod(nodeBed.namespace, "first", "Running", phaseIs("Running"));
    assert.equal(first.status?.podIP, nodeIP);
    assert.match((await get(`http://${nodeIP}:${port}/`)).body, /hello from c/);
    await applyJson(nodeBed.namespace, webPod("second", image, nodeBed.runtimeClass, port));
    const second = await waitForPod(nodeBed.namespace, "second", "Failed", phaseIs("Failed"));
    assert.equal(second.status?.reason, "NodePorts");
    assert.match(
      second.status?.message ?? "",
      new RegExp(
        `Pod was rejected: port ${port}/TCP on ${nodeIP.replaceAll(".", "\\.")} is already used by pod ${nodeBed.namespace}/first`,
      ),
    );
    // Once the first pod is gone the port is free again.
    await kubectlOk(["-n", nodeBed.namespace, "delete", "pod", "first", "second", "--wait=true"]);
    await applyJson(nodeBed.namespace, webPod("third", image, nodeBed.runtimeClass, port));
    await waitForPod(nodeBed.namespace, "third", "Running", phaseIs("Running"));
    assert.match((await get(`http://${nodeIP}:${port}/`)).body, /connection 1\n/);
  } finally {
    await nodeBed.cleanup();
  }
});

// The API server refuses loopback addresses in EndpointSlices (ValidateEndpointIP), so this one
// runs in node mode on the host's own address. No traffic is sent to it.
test("a Service's EndpointSlice, written by the controller-manager, lists the pod's IP", async () => {
  const address = hostAddress();
  const nodeBed = await startPodTestBed("netslice", [], address);
  try {
    await applyJson(
      nodeBed.namespace,
      webPod(
        "web",
        await nodeBed.image("c-server"),
        nodeBed.runtimeClass,
        randomInt(30_000, 40_000),
      ),
    );
    await applyJson(nodeBed.namespace, {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "web" },
      spec: { selector: { app: "web" }, ports: [{ port: 80, targetPort: "http" }] },
    });
    const pod = await waitForPod(nodeBed.namespace, "web", "Running", phaseIs("Running"));
    assert.equal(pod.status?.podIP, address);
    const port = pod.spec!.containers[0]!.ports![0]!.containerPort;
    await eventually(
      async () => {
        const out = await kubectlOk([
          "-n",
          nodeBed.namespace,
          "get",
          "endpointslices",
          "-l",
          "kubernetes.io/service-name=web",
          "-o",
          "json",
        ]);
        const slices = JSON.parse(out).items as {
          endpoints?: { addresses: string[]; conditions?: { ready?: boolean } }[];
          ports?: { port: number }[];
        }[];
        const ready = slices.flatMap((s) =>
          (s.endpoints ?? []).filter((e) => e.conditions?.ready).flatMap((e) => e.addresses),
        );
        const ports = slices.flatMap((s) => (s.ports ?? []).map((p) => p.port));
        return ready.includes(address) && ports.includes(port) ? true : undefined;
      },
      `the EndpointSlice to list ${address}:${port} as ready`,
      30_000,
    );
  } finally {
    await nodeBed.cleanup();
  }
});

test("no descriptor is left behind: 200 pods that served traffic, deleted", async () => {
  const pid = bed.wasmlet.pid!;
  const descriptors = () => readdirSync(`/proc/${pid}/fd`).length;
  const image = await bed.image("c-server");
  const names = Array.from({ length: 200 }, (_, i) => `churn-${i}`);
  // A first, smaller round brings every lazily made part of wasmlet into being.
  const round = async (batch: string[]) => {
    await kubectlOk(["-n", bed.namespace, "apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: batch.map((name) => ({
          ...(webPod(name, image, bed.runtimeClass) as object),
          metadata: { name, labels: { app: "churn" } },
        })),
      }),
      timeoutMs: 120_000,
    });
    const ips = await eventually(
      async () => {
        const out = await kubectlOk([
          "-n",
          bed.namespace,
          "get",
          "pods",
          "-l",
          "app=churn",
          "-o",
          "json",
        ]);
        const pods = JSON.parse(out).items as V1Pod[];
        const running = pods.filter((p) => p.status?.phase === "Running");
        return running.length === batch.length ? running.map((p) => p.status!.podIP!) : undefined;
      },
      `${batch.length} churn pods Running`,
      180_000,
    );
    for (const ip of ips) assert.match((await get(`http://${ip}:8080/`)).body, /hello from c/);
    await kubectlOk(
      ["-n", bed.namespace, "delete", "pods", "-l", "app=churn", "--grace-period=0", "--wait=true"],
      {
        timeoutMs: 180_000,
      },
    );
  };
  await round(names.slice(0, 10));
  const before = descriptors();
  await round(names);
  const after = await eventually(
    async () => {
      const n = descriptors();
      return n <= before + 2 ? n : undefined;
    },
    `wasmlet's descriptors to return to ${before}`,
    30_000,
  ).catch(() => descriptors());
  assert.ok(after <= before + 2, `descriptors: ${before} before, ${after} after 200 pods`);
});
