// httpGet, tcpSocket and grpc probes against real servers on 127.0.0.1, checked against the
// kubelet's results and messages (pkg/probe/{http,tcp,grpc}, pkg/kubelet/prober/prober.go).
import assert from "node:assert/strict";
import { createServer as createHttpsServer } from "node:https";
import { after, test } from "node:test";
import type { V1Container, V1Probe } from "@kubernetes/client-node";
import { runNetworkProbe } from "../../../src/pods/net-probe.ts";
import { createTestCA, issue } from "../server/test-pki.ts";
import { until } from "./fakes.ts";
import {
  closedPort,
  grpcHealthServer,
  httpServer,
  type Listening,
  silentTcpServer,
} from "./net-servers.ts";

const POD_IP = "127.0.0.1";
const TIMEOUT_MS = 2000;
const SHORT_TIMEOUT_MS = 200;

const servers: Listening[] = [];
after(async () => {
  await Promise.all(servers.map((server) => server.close()));
});
async function serving<T extends Listening>(server: Promise<T>): Promise<T> {
  const started = await server;
  servers.push(started);
  return started;
}

const container = (ports: Record<string, number> = {}): V1Container => ({
  name: "app",
  ports: Object.entries(ports).map(([name, containerPort]) => ({ name, containerPort })),
});
const probe = (fields: V1Probe, ports: Record<string, number> = {}, timeoutMs = TIMEOUT_MS) =>
  runNetworkProbe(fields, container(ports), POD_IP, timeoutMs);

const web = await serving(
  httpServer((request, response) => {
    const path = request.url ?? "";
    if (path === "/healthz") {
      response.end("ok");
    } else if (path === "/broken") {
      response.writeHead(500);
      response.end("password=hunter2");
    } else if (path.startsWith("/hop/")) {
      const left = Number(path.slice("/hop/".length));
      response.writeHead(302, { location: left > 0 ? `/hop/${left - 1}` : "/healthz" });
      response.end();
    } else if (path === "/loop") {
      response.writeHead(301, { location: "/loop" });
      response.end();
    } else if (path === "/elsewhere") {
      const port = (request.socket.localPort ?? 0).toString();
      response.writeHead(302, { location: `http://localhost:${port}/healthz` });
      response.end("x".repeat(20_000));
    } else if (path === "/silent") {
      // Never answers: the probe's timeout ends it.
    } else if (path === "/trickle") {
      response.writeHead(200, { "content-length": "100" });
      response.write("partial");
    } else {
      response.writeHead(404);
      response.end();
    }
  }),
);

test("httpGet: 2xx passes with the body as output; 500 fails with the status code only", async () => {
  assert.deepEqual(await probe({ httpGet: { port: web.port, path: "/healthz" } }), {
    result: "success",
    output: "ok",
  });
  assert.deepEqual(await probe({ httpGet: { port: web.port, path: "/broken" } }), {
    result: "failure",
    output: "HTTP probe failed with statuscode: 500",
  });
});

test("httpGet: redirects on the same host are followed, up to 10 requests", async () => {
  const before = web.seen.length;
  assert.deepEqual(await probe({ httpGet: { port: web.port, path: "/hop/3" } }), {
    result: "success",
    output: "ok",
  });
  assert.deepEqual(
    web.seen.slice(before).map((r) => r.url),
    ["/hop/3", "/hop/2", "/hop/1", "/hop/0", "/healthz"],
  );
  const followed = web.seen[before + 1]!.headers;
  assert.ok(
    followed.some(([name, value]) => name === "User-Agent" && value === "kube-probe/1.37"),
    "the headers go along",
  );
  assert.ok(
    followed.some(
      ([name, value]) => name === "Referer" && value === `http://127.0.0.1:${web.port}/hop/3`,
    ),
  );

  const loopStart = web.seen.length;
  assert.deepEqual(await probe({ httpGet: { port: web.port, path: "/loop" } }), {
    result: "failure",
    output: 'Get "/loop": stopped after 10 redirects',
  });
  assert.equal(web.seen.length - loopStart, 10);
});

test("httpGet: a redirect to another host is not followed and passes with a warning; the body read stops at 10 KiB", async () => {
  const before = web.seen.length;
  const outcome = await probe({ httpGet: { port: web.port, path: "/elsewhere" } });
  assert.deepEqual(outcome, {
    result: "warning",
    output: `Probe terminated redirects, Response body: ${"x".repeat(10 * 1024)}`,
  });
  assert.equal(web.seen.length - before, 1, "localhost is another host than 127.0.0.1");
});

test("httpGet: a port by name is the container's port of that name; an unknown name is an error, not a failure", async () => {
  assert.deepEqual(
    await probe({ httpGet: { port: "http-web", path: "/healthz" } }, { "http-web": web.port }),
    { result: "success", output: "ok" },
  );
  assert.deepEqual(await probe({ httpGet: { port: "metrics", path: "/healthz" } }), {
    result: "unknown",
    error: 'port "metrics" not found',
  });
  assert.deepEqual(await probe({ httpGet: { port: 0, path: "/" } }), {
    result: "unknown",
    error: "invalid port number: 0",
  });
});

test("httpGet: the kubelet's headers — User-Agent and Accept unless set, repeated headers, Host override, no compression", async () => {
  const headersOf = async (action: Partial<NonNullable<V1Probe["httpGet"]>>) => {
    const before = web.seen.length;
    await probe({ httpGet: { port: web.port, path: "/healthz", ...action } });
    return web.seen[before]!.headers;
  };
  assert.deepEqual(await headersOf({}), [
    ["Accept", "*/*"],
    ["User-Agent", "kube-probe/1.37"],
    ["Host", `127.0.0.1:${web.port}`],
    ["Connection", "close"],
  ]);
  assert.deepEqual(
    await headersOf({
      httpHeaders: [
        { name: "x-custom", value: "one" },
        { name: "X-Custom", value: "two" },
        { name: "host", value: "app.example" },
        { name: "user-agent", value: "mine/1" },
        { name: "Accept", value: "" },
      ],
    }),
    [
      ["X-Custom", "one"],
      ["X-Custom", "two"],
      ["User-Agent", "mine/1"],
      ["Host", "app.example"],
      ["Connection", "close"],
    ],
  );
  const before = web.seen.length;
  await probe({ httpGet: { port: web.port, path: "/healthz?verbose=1", host: "127.0.0.1" } });
  assert.equal(web.seen[before]!.url, "/healthz?verbose=1");
});

test("httpGet: timeouts and refused connections fail with Go's words; a body cut short by the timeout is an error", async () => {
  assert.deepEqual(
    await probe({ httpGet: { port: web.port, path: "/silent" } }, {}, SHORT_TIMEOUT_MS),
    {
      result: "failure",
      output: `Get "http://127.0.0.1:${web.port}/silent": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`,
    },
  );
  assert.deepEqual(
    await probe({ httpGet: { port: web.port, path: "/trickle" } }, {}, SHORT_TIMEOUT_MS),
    {
      result: "failure",
      error:
        "context deadline exceeded (Client.Timeout or context cancellation while reading body)",
    },
  );
  const refused = await closedPort();
  assert.deepEqual(await probe({ httpGet: { port: refused, path: "/healthz" } }), {
    result: "failure",
    output: `Get "http://127.0.0.1:${refused}/healthz": dial tcp 127.0.0.1:${refused}: connect: connection refused`,
  });
  assert.deepEqual(await probe({ httpGet: { port: refused } }), {
    result: "failure",
    output: `Get "http://127.0.0.1:${refused}": dial tcp 127.0.0.1:${refused}: connect: connection refused`,
  });
});

test("httpGet: HTTPS does not verify the server's certificate", async () => {
  const ca = await createTestCA("untrusted-ca");
  const certificate = await issue(ca, "app", { server: { dns: ["app.example"], ips: [] } });
  const server = createHttpsServer(certificate, (_request, response) => response.end("secure"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  servers.push({
    port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  });
  assert.deepEqual(await probe({ httpGet: { port, path: "/", scheme: "HTTPS" } }), {
    result: "success",
    output: "secure",
  });
});

test("tcpSocket: passes when a connection opens (closed at once, nothing sent); refused fails", async () => {
  const listener = await serving(silentTcpServer());
  assert.deepEqual(await probe({ tcpSocket: { port: "db" } }, { db: listener.port }), {
    result: "success",
    output: "",
  });
  await until(() => listener.closedByPeer === 1, "the probe's connection closed");
  assert.equal(listener.connections, 1);
  const refused = await closedPort();
  assert.deepEqual(await probe({ tcpSocket: { port: refused, host: "127.0.0.1" } }), {
    result: "failure",
    output: `dial tcp 127.0.0.1:${refused}: connect: connection refused`,
  });
  assert.deepEqual(await probe({ tcpSocket: { port: "db" } }), {
    result: "unknown",
    error: 'port "db" not found',
  });
});

test("grpc: Health/Check says SERVING, NOT_SERVING or that the service is unknown", async () => {
  const grpc = await serving(grpcHealthServer({ "": 1, "shop.Cart": 1, "shop.Payments": 2 }));
  assert.deepEqual(await probe({ grpc: { port: grpc.port } }), {
    result: "success",
    output: "service healthy",
  });
  assert.deepEqual(await probe({ grpc: { port: grpc.port, service: "shop.Cart" } }), {
    result: "success",
    output: "service healthy",
  });
  assert.deepEqual(await probe({ grpc: { port: grpc.port, service: "shop.Payments" } }), {
    result: "failure",
    output: 'service unhealthy (responded with "NOT_SERVING")',
  });
  assert.deepEqual(await probe({ grpc: { port: grpc.port, service: "shop.Ghost" } }), {
    result: "failure",
    output: "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service",
  });
  assert.deepEqual(
    grpc.requests.map((r) => r.service),
    ["", "shop.Cart", "shop.Payments", "shop.Ghost"],
  );
  const headers = grpc.requests[0]!.headers;
  assert.equal(headers[":method"], "POST");
  assert.equal(headers[":path"], "/grpc.health.v1.Health/Check");
  assert.equal(headers["content-type"], "application/grpc");
  assert.equal(headers.te, "trailers");
  assert.equal(headers["user-agent"], "kube-probe/1.37");
  assert.match(String(headers["grpc-timeout"]), /^\d+[num]$/);
});

test("grpc: no health service, no answer, nothing listening — the kubelet's messages", async () => {
  const bare = await serving(grpcHealthServer({}, { implemented: false }));
  assert.deepEqual(await probe({ grpc: { port: bare.port } }), {
    result: "failure",
    output:
      "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service grpc.health.v1.Health",
  });
  const stuck = await serving(grpcHealthServer({ "": 1 }, { hang: true }));
  assert.deepEqual(await probe({ grpc: { port: stuck.port } }, {}, SHORT_TIMEOUT_MS), {
    result: "failure",
    output: "timeout: health rpc did not complete within 200ms",
  });
  const mute = await serving(silentTcpServer());
  assert.deepEqual(await probe({ grpc: { port: mute.port } }, {}, SHORT_TIMEOUT_MS), {
    result: "failure",
    output: `timeout: failed to connect service "127.0.0.1:${mute.port}" within 200ms: context deadline exceeded`,
  });
  const refused = await closedPort();
  const started = Date.now();
  assert.deepEqual(await probe({ grpc: { port: refused } }, {}, SHORT_TIMEOUT_MS), {
    result: "failure",
    output: `timeout: failed to connect service "127.0.0.1:${refused}" within 200ms: context deadline exceeded`,
  });
  assert.ok(
    Date.now() - started >= SHORT_TIMEOUT_MS - 5,
    "like grpc-go, it keeps trying until the timeout",
  );
});
