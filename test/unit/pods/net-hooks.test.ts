// httpGet and tcpSocket lifecycle hooks (pkg/kubelet/lifecycle/handlers.go) against real servers on
// 127.0.0.1: the hook runner on its own, then through the pod controller (postStart holds the
// container back and kills it when it fails; preStop runs before the stop), with network probes.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { runHttpHook, tcpSocketHookMessage } from "../../../src/pods/net-hooks.ts";
import { controllerBench, type FakeKube, makePod, until } from "./fakes.ts";
import { closedPort, httpServer, type Listening } from "./net-servers.ts";

const bench = await controllerBench("wasmlet-net-hooks-");
const servers: Listening[] = [];
after(() => Promise.all(servers.map((server) => server.close())));

const web = await httpServer((request, response) => {
  if (request.url === "/elsewhere") {
    response.writeHead(302, { location: `http://localhost:${request.socket.localPort}/x` });
  } else {
    response.writeHead(request.url === "/broken" ? 500 : 200);
  }
  response.end();
});
servers.push(web);

const pod = { namespace: "shop", name: "cart", uid: "u-1" };
const app: V1Container = { name: "app", ports: [{ name: "admin", containerPort: web.port }] };

function hook(action: Parameters<typeof runHttpHook>[0], signal?: AbortSignal) {
  const fallbacks: string[] = [];
  const result = runHttpHook(action, {
    container: app,
    pod,
    podIP: "127.0.0.1",
    ...(signal ? { signal } : {}),
    fellBack: (message) => fallbacks.push(message),
  });
  return { result, fallbacks };
}

test("an httpGet hook succeeds on any answer, even a 500 or a redirect elsewhere; it says who it is", async () => {
  const before = web.seen.length;
  assert.equal(await hook({ port: "admin", path: "/broken" }).result, undefined);
  assert.equal(
    await hook({ port: web.port, path: "/elsewhere", host: "127.0.0.1" }).result,
    undefined,
  );
  assert.deepEqual(
    web.seen.slice(before).map((r) => r.url),
    ["/broken", "/elsewhere"],
  );
  assert.deepEqual(web.seen[before]!.headers, [
    ["Accept", "*/*"],
    ["User-Agent", "kube-lifecycle/1.37"],
    ["Host", `127.0.0.1:${web.port}`],
    ["Accept-Encoding", "gzip"],
    ["Connection", "close"],
  ]);
});

test("an httpGet hook fails with the kubelet's message when nobody answers or its port has no name", async () => {
  const refused = await closedPort();
  assert.equal(
    await hook({ port: refused, path: "/started" }).result,
    `HTTP lifecycle hook (/started) for Container "app" in Pod "cart_shop(u-1)" failed - error: Get "http://127.0.0.1:${refused}/started": dial tcp 127.0.0.1:${refused}: connect: connection refused`,
  );
  assert.equal(
    await hook({ port: "web", path: "/started" }).result,
    'HTTP lifecycle hook (/started) for Container "app" in Pod "cart_shop(u-1)" failed - error: port "web" not found',
  );
  const aborted = new AbortController();
  aborted.abort();
  assert.match(
    (await hook({ port: "admin", path: "/x" }, aborted.signal).result) ?? "",
    /failed - error: Get "http:\/\/127\.0\.0\.1:\d+\/x": context canceled$/,
  );
});

test("an HTTPS hook that meets plain HTTP is sent again over HTTP, without Authorization, with a fallback event", async () => {
  const before = web.seen.length;
  const { result, fallbacks } = hook({
    port: "admin",
    path: "/drain",
    scheme: "HTTPS",
    httpHeaders: [
      { name: "Authorization", value: "Bearer secret" },
      { name: "X-Reason", value: "drain" },
    ],
  });
  assert.equal(await result, undefined);
  assert.deepEqual(fallbacks, [
    `request to HTTPS lifecycle hook 127.0.0.1:${web.port} got HTTP response, retry with HTTP succeeded`,
  ]);
  const plain = web.seen.slice(before).find((r) => r.url === "/drain");
  assert.ok(plain, "the HTTP retry reached the server");
  assert.ok(!plain.headers.some(([name]) => name === "Authorization"));
  assert.ok(plain.headers.some(([name, value]) => name === "X-Reason" && value === "drain"));
});

test("a tcpSocket hook cannot be run: the kubelet's invalid handler message", () => {
  assert.equal(
    tcpSocketHookMessage({ port: 8080 }),
    "Cannot run handler: invalid handler: &LifecycleHandler{Exec:nil,HTTPGet:nil,TCPSocket:&TCPSocketAction{Port:{0 8080 },Host:,},Sleep:nil,}",
  );
  assert.equal(
    tcpSocketHookMessage({ port: "http", host: "db" }),
    "Cannot run handler: invalid handler: &LifecycleHandler{Exec:nil,HTTPGet:nil,TCPSocket:&TCPSocketAction{Port:{1 0 http},Host:db,},Sleep:nil,}",
  );
});

// ---------------------------------------------------------------- through the pod controller

const harness = () => bench.harness({ nodeIPs: ["127.0.0.1"] });

const uidOf = (p: V1Pod) => p.metadata!.uid!;
const stateOf = (kube: FakeKube, p: V1Pod) => kube.status(uidOf(p)).containerStatuses?.[0]?.state;
const podWith = (container: Partial<V1Container>, graceSeconds = 5) =>
  makePod({
    spec: {
      terminationGracePeriodSeconds: graceSeconds,
      containers: [{ name: "app", image: "a:1", ...container }],
    },
  });
const deleting = (p: V1Pod): V1Pod => ({
  ...p,
  metadata: { ...p.metadata, deletionTimestamp: new Date(), deletionGracePeriodSeconds: 5 },
});

test("postStart httpGet: the container runs once the pod's IP answered; a refused hook kills it", async () => {
  const { kube, runtime, controller } = harness();
  const before = web.seen.length;
  const good = podWith({
    ports: [{ name: "admin", containerPort: web.port }],
    lifecycle: { postStart: { httpGet: { port: "admin", path: "/started" } } },
  });
  controller.onPodUpsert(good);
  await until(() => stateOf(kube, good)?.running, "running");
  assert.ok(web.seen.slice(before).some((r) => r.url === "/started"));
  assert.ok(!kube.events.some((e) => e.reason === "FailedPostStartHook"));

  const refused = await closedPort();
  const bad = podWith({
    lifecycle: { postStart: { httpGet: { port: refused, path: "/started" } } },
  });
  controller.onPodUpsert(bad);
  await until(
    () => runtime.instances.filter((i) => i.spec.labels.uid === uidOf(bad)).length >= 2,
    "restarted after the failed hook",
  );
  const event = kube.events.find((e) => e.reason === "FailedPostStartHook");
  assert.equal(
    event?.message,
    `HTTP lifecycle hook (/started) for Container "app" in Pod "${bad.metadata!.name}_default(${uidOf(bad)})" failed - error: Get "http://127.0.0.1:${refused}/started": dial tcp 127.0.0.1:${refused}: connect: connection refused`,
  );
  assert.equal(event?.fieldPath, "spec.containers{app}");
  await controller.destroy();
});

test("postStart tcpSocket fails like on any kubelet; preStop httpGet runs before the stop", async () => {
  const { kube, runtime, controller } = harness();
  const tcp = podWith({ lifecycle: { postStart: { tcpSocket: { port: web.port } } } });
  controller.onPodUpsert(tcp);
  await until(
    () => kube.events.find((e) => e.reason === "FailedPostStartHook"),
    "FailedPostStartHook",
  );
  assert.match(
    kube.events.find((e) => e.reason === "FailedPostStartHook")!.message,
    /^Cannot run handler: invalid handler: &LifecycleHandler\{.*TCPSocket:&TCPSocketAction\{Port:\{0 \d+ \},Host:,\}/,
  );
  await until(
    () => runtime.instances.filter((i) => i.spec.labels.uid === uidOf(tcp)).length >= 2,
    "killed and restarted",
  );

  const draining = podWith({
    lifecycle: { preStop: { httpGet: { port: web.port, path: "/drain" } } },
  });
  controller.onPodUpsert(draining);
  await until(() => stateOf(kube, draining)?.running, "running");
  const instance = runtime.instances.find((i) => i.spec.labels.uid === uidOf(draining))!;
  let drainedBeforeStop: boolean | undefined;
  const seenBefore = web.seen.length;
  const stop = instance.stop.bind(instance);
  instance.stop = (graceMs: number) => {
    drainedBeforeStop = web.seen.slice(seenBefore).some((r) => r.url === "/drain");
    return stop(graceMs);
  };
  controller.onPodUpsert(deleting(draining));
  await until(() => kube.deletes.some((d) => d.uid === uidOf(draining)), "DELETE");
  assert.equal(drainedBeforeStop, true);
  assert.ok(!kube.events.some((e) => e.reason === "FailedPreStopHook"));

  const refused = await closedPort();
  const failing = podWith({
    lifecycle: { preStop: { httpGet: { port: refused, path: "/drain" } } },
  });
  controller.onPodUpsert(failing);
  await until(() => stateOf(kube, failing)?.running, "running");
  controller.onPodUpsert(deleting(failing));
  await until(() => kube.deletes.some((d) => d.uid === uidOf(failing)), "DELETE");
  assert.match(
    kube.events.find((e) => e.reason === "FailedPreStopHook")?.message ?? "",
    /^HTTP lifecycle hook \(\/drain\) for Container "app" in Pod ".*" failed - error: Get "http:\/\/127\.0\.0\.1:\d+\/drain": dial tcp .*connection refused$/,
  );
  await controller.destroy();
});

test("an httpGet readiness probe goes to the pod's IP and makes the pod Ready", async () => {
  const { kube, controller } = harness();
  const before = web.seen.length;
  const ready = podWith({
    ports: [{ name: "admin", containerPort: web.port }],
    readinessProbe: {
      httpGet: { port: "admin", path: "/ready" },
      periodSeconds: 1,
      timeoutSeconds: 200,
    },
  });
  controller.onPodUpsert(ready);
  await until(
    () =>
      kube
        .status(uidOf(ready))
        .conditions?.find((c: { type: string; status: string }) => c.type === "Ready")?.status ===
      "True",
    "Ready",
  );
  assert.ok(
    web.seen
      .slice(before)
      .some(
        (r) =>
          r.url === "/ready" &&
          r.headers.some(([name, value]) => name === "User-Agent" && value === "kube-probe/1.37"),
      ),
  );
  await controller.destroy();
});
