// Port-forward end to end in process: a fastify server with @fastify/websocket, the routes mounted
// as KubeletServer mounts them (mountRoute; TLS, authn and authz are KubeletServer's and tested
// with it), clients that speak SPDY/3.1 the way kubectl does (spdy-client.ts) either tunnelled in
// a `ws` WebSocket or over a plain `Upgrade: SPDY/3.1` socket, and TCP targets on 127.0.0.1 in
// place of a pod's listeners.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest, type RequestOptions } from "node:https";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import fastifyWebsocket from "@fastify/websocket";
import type { V1SubjectAccessReview } from "@kubernetes/client-node";
import Fastify, { type FastifyInstance } from "fastify";
import { pino } from "pino";
import { RequestAuthenticator } from "../../../src/server/authn.ts";
import { NodeAuthorizer } from "../../../src/server/authz.ts";
import { httpFailure } from "../../../src/server/http-errors.ts";
import {
  connectTcp,
  PORT_FORWARD_TUNNEL_PROTOCOL,
  type PortForwardTarget,
  portForwardRoutes,
} from "../../../src/server/port-forward.ts";
import { KubeletServer, mountRoute, type RouteContext } from "../../../src/server/server.ts";
import { ServingCertificates } from "../../../src/server/serving-certificates.ts";
import { RstStatus } from "../../../src/server/spdy.ts";
import { until } from "../../support/until.ts";
import { SpdyTestClient } from "./spdy-client.ts";
import { createTestCA, type IssuedCert, issue } from "./test-pki.ts";
import { RawWebSocket } from "./websocket-client.ts";

const T = { timeout: 30_000 };
const logger = pino({ level: "silent" });

/** TCP servers standing in for a pod's listeners; they record their connections. */
class Target {
  readonly server: Server;
  readonly sockets: Socket[] = [];
  readonly closed: Promise<void>[] = [];

  constructor(serve: (socket: Socket) => void) {
    this.server = createServer({ allowHalfOpen: true }, (socket) => {
      this.sockets.push(socket);
      this.closed.push(new Promise((resolve) => socket.once("close", () => resolve())));
      socket.on("error", () => {});
      serve(socket);
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return (this.server.address() as { port: number }).port;
  }

  close(): void {
    for (const socket of this.sockets) socket.destroy();
    this.server.close();
  }
}

/** A SPDY client tunnelled in a WebSocket, as kubectl ≥ 1.31 connects. */
async function openTunnel(url: string, tls: RequestOptions = {}) {
  const ws = await RawWebSocket.connect(url, PORT_FORWARD_TUNNEL_PROTOCOL, tls);
  const spdy = new SpdyTestClient((bytes) => ws.send(bytes));
  ws.onMessage((data, isBinary) => {
    assert.ok(isBinary, "the tunnel carries binary messages");
    spdy.receive(data);
  });
  return { ws, spdy, closed: ws.closed };
}

/** A SPDY client over a plain upgraded connection, as kubectl falls back to. */
async function openSpdy(
  url: string,
  headers: Record<string, string> = {},
  tls: RequestOptions = {},
) {
  const send = url.startsWith("https:") ? httpsRequest : httpRequest;
  const request = send(url, {
    ...tls,
    agent: false,
    method: "POST",
    headers: {
      connection: "Upgrade",
      upgrade: "SPDY/3.1",
      "x-stream-protocol-version": "portforward.k8s.io",
      ...headers,
    },
  });
  const upgraded = new Promise<{ response: IncomingMessage; socket: Socket }>((resolve, reject) => {
    request.on("upgrade", (response, socket) => resolve({ response, socket }));
    request.on("response", (response) => reject(new Error(`status ${response.statusCode}`)));
    request.on("error", reject);
  });
  request.end();
  const { response, socket } = await upgraded;
  const spdy = new SpdyTestClient((bytes) => socket.write(bytes));
  socket.on("data", (chunk: Buffer) => spdy.receive(chunk));
  socket.on("error", () => {});
  return { response, socket, spdy };
}

/** The status and body of a request that is refused before any upgrade. */
async function refuse(
  url: string,
  method: string,
  headers: Record<string, string>,
  tls: RequestOptions = {},
): Promise<{ status: number; body: string }> {
  return await new Promise((resolve, reject) => {
    const send = url.startsWith("https:") ? httpsRequest : httpRequest;
    const request = send(url, { ...tls, agent: false, method, headers });
    request.on("upgrade", () => reject(new Error("upgraded")));
    request.on("response", (response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => {
        body += chunk.toString();
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on("error", reject);
    request.end();
  });
}

describe("port-forward", () => {
  let app: FastifyInstance;
  let base: string;
  let echo: Target;
  let echoPort: number;
  let closedPort: number;
  const routes = portForwardRoutes({
    resolve: (_namespace, name, uid): PortForwardTarget => {
      if (name === "web" && (uid === undefined || uid === "u1"))
        return { kind: "pod", uid: "u1", dial: (port) => connectTcp("127.0.0.1", port) };
      if (name === "pending") return { kind: "not-running" };
      return { kind: "pod-not-found" };
    },
    streamCreationTimeoutMs: 300,
  });

  before(async () => {
    echo = new Target((socket) => socket.pipe(socket));
    echoPort = await echo.listen();
    const closed = new Target(() => {});
    closedPort = await closed.listen();
    closed.close();
    app = Fastify();
    await app.register(fastifyWebsocket);
    app.setErrorHandler((error, _request, reply) => {
      const failure = httpFailure(error);
      return reply.code(failure.status).type("text/plain").send(failure.message);
    });
    const context: RouteContext = {
      user: { username: "admin", groups: [], via: "token" },
      subresource: "proxy",
      log: logger,
    };
    for (const route of routes) mountRoute(app, route, () => context);
    await app.listen({ host: "127.0.0.1", port: 0 });
    const { port } = app.server.address() as { port: number };
    base = `127.0.0.1:${port}`;
  });

  after(async () => {
    echo.close();
    await app.close();
  });

  const tunnel = (path = "/portForward/default/web") => openTunnel(`http://${base}${path}`);
  const spdyUpgrade = (path = "/portForward/default/web", headers: Record<string, string> = {}) =>
    openSpdy(`http://${base}${path}`, headers);
  const refusal = (path: string, method: string, headers: Record<string, string>) =>
    refuse(`http://${base}${path}`, method, headers);

  it("registers GET and POST for both paths, as create on nodes/proxy", () => {
    assert.deepEqual(
      routes.map((r) => `${r.method} ${r.url}${r.websocket ? " (websocket)" : ""}`),
      [
        "GET /portForward/:namespace/:pod (websocket)",
        "POST /portForward/:namespace/:pod",
        "GET /portForward/:namespace/:pod/:uid (websocket)",
        "POST /portForward/:namespace/:pod/:uid",
      ],
    );
    for (const route of routes) {
      assert.deepEqual(route.access, { verb: "create", subresources: ["proxy"] });
      assert.equal(route.declares, "ExtendWebSocketsToKubelet");
    }
  });

  it("forwards a connection through a WebSocket tunnel, half-closes included", T, async () => {
    const { ws, spdy, closed } = await tunnel();
    assert.equal(ws.protocol, PORT_FORWARD_TUNNEL_PROTOCOL);
    const connections = echo.sockets.length;
    const { error, data } = await spdy.forward(echoPort, 0);
    spdy.write(data, "hello ");
    spdy.write(data, "pod");
    await spdy.until("the echo", () => spdy.text(data) === "hello pod");
    assert.equal(echo.sockets.length, connections + 1);
    spdy.finish(data); // the local client half-closes: the pod sees EOF and (echo) ends too
    await spdy.until("the data FIN", () => spdy.ended(data) === "fin");
    await echo.closed[connections];
    spdy.reset(data, RstStatus.CANCEL); // what kubectl does once the remote side is done
    await spdy.until("the error stream's end", () => spdy.ended(error) === "fin");
    assert.equal(spdy.text(error), "", "no error");
    assert.equal(spdy.find("goaway"), undefined);
    ws.terminate();
    await closed;
  });

  it("forwards several connections at once over one session", T, async () => {
    const { ws, spdy } = await tunnel();
    const pairs = await Promise.all([0, 1, 2].map((id) => spdy.forward(echoPort, id)));
    for (const [index, { data }] of pairs.entries()) spdy.write(data, `connection ${index}`);
    await spdy.until("every echo", () =>
      pairs.every(({ data }, index) => spdy.text(data) === `connection ${index}`),
    );
    ws.terminate();
  });

  it(
    "carries more than a window each way to a client that never sends WINDOW_UPDATE",
    T,
    async () => {
      const { ws, spdy } = await tunnel();
      const { data } = await spdy.forward(echoPort, 0);
      const payload = Buffer.alloc(1024 * 1024);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
      for (let offset = 0; offset < payload.length; offset += 32 * 1024)
        spdy.write(data, payload.subarray(offset, offset + 32 * 1024));
      spdy.finish(data);
      await spdy.until("the whole echo", () => spdy.ended(data) === "fin", 20_000);
      assert.ok(spdy.data(data).equals(payload));
      ws.terminate();
    },
  );

  it("forwards over a plain SPDY/3.1 upgrade", T, async () => {
    const { response, socket, spdy } = await spdyUpgrade();
    assert.equal(response.statusCode, 101);
    assert.equal(response.headers.upgrade, "SPDY/3.1");
    assert.equal(response.headers["x-stream-protocol-version"], "portforward.k8s.io");
    const { error, data } = await spdy.forward(echoPort, 0);
    spdy.write(data, "over spdy");
    await spdy.until("the echo", () => spdy.text(data) === "over spdy");
    const ping = spdy.ping();
    await spdy.until("the pong", () => spdy.find("ping", (f) => f.id === ping) !== undefined);
    spdy.finish(data);
    await spdy.until("the data FIN", () => spdy.ended(data) === "fin");
    spdy.reset(data);
    await spdy.until("the error stream's end", () => spdy.ended(error) === "fin");
    socket.destroy();
  });

  it("reports a failed dial on the error stream and ends both streams", T, async () => {
    const { ws, spdy } = await tunnel("/portForward/default/web/u1");
    const { error, data } = await spdy.forward(closedPort, 7);
    await spdy.until("the error stream's end", () => spdy.ended(error) === "fin");
    assert.match(
      spdy.text(error),
      new RegExp(`^error forwarding port ${closedPort} to pod default/web, uid u1: .*ECONNREFUSED`),
    );
    await spdy.until("the data stream's end", () => spdy.ended(data) === "fin");
    ws.terminate();
  });

  it("closes the pod connection when the client goes away", T, async () => {
    for (const kind of ["tunnel", "spdy"]) {
      const connections = echo.sockets.length;
      const client = kind === "tunnel" ? await tunnel() : await spdyUpgrade();
      const { data } = await client.spdy.forward(echoPort, 0);
      client.spdy.write(data, "x");
      await client.spdy.until("the echo", () => client.spdy.text(data) === "x");
      if ("ws" in client) client.ws.terminate();
      else client.socket.destroy();
      await echo.closed[connections];
    }
  });

  it("closes the pod connection when the client resets the data stream", T, async () => {
    const { ws, spdy } = await tunnel();
    const connections = echo.sockets.length;
    const { error, data } = await spdy.forward(echoPort, 0);
    spdy.write(data, "x");
    await spdy.until("the echo", () => spdy.text(data) === "x");
    spdy.reset(data);
    await echo.closed[connections];
    await spdy.until("the error stream's end", () => spdy.ended(error) === "fin");
    ws.terminate();
  });

  it("stops reading the pod when the client does not keep up", T, async () => {
    let sent = 0;
    let blocked = false;
    const chunk = Buffer.alloc(64 * 1024, 9);
    const firehose = new Target((socket) => {
      const pump = () => {
        while (sent < 256 * 1024 * 1024) {
          sent += chunk.length;
          if (!socket.write(chunk)) {
            blocked = true;
            socket.once("drain", () => {
              blocked = false;
              pump();
            });
            return;
          }
        }
        socket.end();
      };
      pump();
    });
    const port = await firehose.listen();
    const { ws, spdy } = await tunnel();
    ws.pause(); // the client stops reading its socket
    await spdy.forward(port, 0);
    await sleep(1500);
    assert.ok(blocked, "the pod's writes are blocked");
    const stalled = sent;
    await sleep(300);
    assert.equal(sent, stalled, "nothing more is taken from the pod");
    assert.ok(sent > 1024 * 1024, `the pod's data flowed until the client's side filled (${sent})`);
    assert.ok(sent < 64 * 1024 * 1024, `what is buffered on the way is bounded (${sent} bytes)`);
    ws.terminate();
    await firehose.closed[0];
    firehose.close();
  });

  it("refuses streams without a valid port or stream type", T, async () => {
    const { ws, spdy } = await tunnel();
    const bad: Record<string, string>[] = [
      { streamtype: "data" },
      { streamtype: "data", port: "0" },
      { streamtype: "data", port: "http" },
      { streamtype: "data", port: "70000" },
      { port: "80" },
      { streamtype: "stdin", port: "80" },
    ];
    const ids: number[] = [];
    for (const headers of bad) ids.push(await spdy.open({ ...headers, requestid: "1" }));
    await spdy.until("every answer", () => ids.every((id) => spdy.ended(id) === "reset"));
    assert.equal(spdy.find("syn_reply"), undefined);
    ws.terminate();
  });

  it(
    "pairs streams by id for clients without request ids, and times out a lone stream",
    T,
    async () => {
      const { ws, spdy } = await tunnel();
      const error = await spdy.open({ streamtype: "error", port: String(echoPort) });
      spdy.finish(error);
      const data = await spdy.open({ streamtype: "data", port: String(echoPort) });
      spdy.write(data, "old client");
      await spdy.until("the echo", () => spdy.text(data) === "old client");

      const lone = await spdy.open({ streamtype: "error", port: String(echoPort), requestid: "9" });
      spdy.finish(lone);
      await spdy.until("the timeout", () => spdy.ended(lone) === "fin");
      assert.equal(spdy.text(lone), "request 9: timed out waiting for streams");
      ws.terminate();
    },
  );

  it("answers like the kubelet before upgrading", T, async () => {
    const ws = { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13" };
    const wsKey = { "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" };
    const spdy = { connection: "Upgrade", upgrade: "SPDY/3.1" };
    const cases: [string, string, Record<string, string>, number, RegExp][] = [
      ["/portForward/default/gone", "GET", {}, 404, /^pod does not exist$/],
      ["/portForward/default/web/other-uid", "POST", spdy, 404, /^pod does not exist$/],
      ["/portForward/default/pending", "POST", spdy, 404, /^pod not found \("pending_default"\)$/],
      ["/portForward/default/web", "GET", {}, 400, /^Upgrade request required$/],
      ["/portForward/default/web", "POST", {}, 400, /^Upgrade request required$/],
      [
        "/portForward/default/web",
        "GET",
        { ...ws, ...wsKey, "sec-websocket-protocol": "v4.channel.k8s.io, portforward.k8s.io" },
        400,
        /only as tunnelled SPDY \(SPDY\/3\.1\+portforward\.k8s\.io\)/,
      ],
      ["/portForward/default/web", "POST", spdy, 400, /X-Stream-Protocol-Version does not exist/],
      [
        "/portForward/default/web",
        "POST",
        { ...spdy, "x-stream-protocol-version": "v4.channel.k8s.io" },
        400,
        /unable to negotiate protocol: client supports \[v4\.channel\.k8s\.io\]/,
      ],
    ];
    for (const [path, method, headers, status, body] of cases) {
      const answer = await refusal(path, method, headers);
      assert.equal(answer.status, status, `${method} ${path} ${JSON.stringify(headers)}`);
      assert.match(answer.body, body);
    }
  });

  it("ends the session when the tunnel carries text", T, async () => {
    const { ws, closed } = await tunnel();
    ws.send("not binary");
    assert.equal(await closed, 1002);
  });

  it("takes the uid form of the path", T, async () => {
    const { ws, spdy } = await tunnel("/portForward/default/web/u1");
    const { data } = await spdy.forward(echoPort, 0);
    spdy.write(data, "uid");
    await spdy.until("the echo", () => spdy.text(data) === "uid");
    ws.terminate();
    await until(() => true, "the tunnel to go");
  });
});

describe("port-forward through the KubeletServer (TLS, authn, authz)", () => {
  let dir: string;
  let server: KubeletServer;
  let echo: Target;
  let echoPort: number;
  let origin: string;
  let admin: RequestOptions;
  let viewer: RequestOptions;
  const reviews: V1SubjectAccessReview[] = [];

  before(async () => {
    echo = new Target((socket) => socket.pipe(socket));
    echoPort = await echo.listen();
    dir = await mkdtemp(join(tmpdir(), "wasmlet-port-forward-"));
    const ca = await createTestCA();
    const serving = await issue(ca, "n1", { server: { dns: ["n1"], ips: ["127.0.0.1"] } });
    await writeFile(join(dir, "tls.crt"), serving.cert);
    await writeFile(join(dir, "tls.key"), serving.key);
    const client = (cert: IssuedCert): RequestOptions => ({
      ca: ca.cert,
      cert: cert.cert,
      key: cert.key,
    });
    admin = client(await issue(ca, "kube-apiserver-kubelet-client"));
    viewer = client(await issue(ca, "viewer"));
    const certificates = new ServingCertificates({
      config: {
        tlsCertFile: join(dir, "tls.crt"),
        tlsPrivateKeyFile: join(dir, "tls.key"),
        tlsBootstrap: false,
        allowSelfSigned: false,
        dataDir: dir,
      },
      identity: { nodeName: "n1", dnsNames: ["n1"], ipAddresses: ["127.0.0.1"] },
      logger,
    });
    await certificates.load();
    server = new KubeletServer({
      config: { address: "127.0.0.1", port: 0, nodeName: "n1" },
      logger,
      clientCA: ca.cert,
      certificates,
      authenticator: new RequestAuthenticator({
        clientCertificates: true,
        tokens: {
          review: async (token) => ({ spec: { token }, status: { authenticated: false } }),
        },
      }),
      authorizer: new NodeAuthorizer({
        nodeName: "n1",
        reviewer: {
          review: async (review) => {
            reviews.push(review);
            return review.spec.user === "kube-apiserver-kubelet-client";
          },
        },
      }),
    });
    const routes = portForwardRoutes({
      resolve: () => ({ kind: "pod", uid: "u1", dial: (port) => connectTcp("127.0.0.1", port) }),
    });
    for (const route of routes) server.route(route);
    await server.start();
    origin = `https://127.0.0.1:${server.port}`;
  });

  after(async () => {
    echo.close();
    await server.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it("forwards over a TLS WebSocket tunnel and over a TLS SPDY upgrade", T, async () => {
    const tunnelled = await openTunnel(`${origin}/portForward/default/web`, admin);
    assert.equal(tunnelled.ws.protocol, PORT_FORWARD_TUNNEL_PROTOCOL);
    const upgraded = await openSpdy(`${origin}/portForward/default/web`, {}, admin);
    assert.equal(upgraded.response.statusCode, 101);
    for (const { spdy } of [tunnelled, upgraded]) {
      const { data } = await spdy.forward(echoPort, 0);
      spdy.write(data, "over TLS");
      await spdy.until("the echo", () => spdy.text(data) === "over TLS");
    }
    tunnelled.ws.terminate();
    upgraded.socket.destroy();
  });

  it("asks for create on nodes/proxy, and refuses who may not", T, async () => {
    reviews.length = 0;
    const spdy = { connection: "Upgrade", upgrade: "SPDY/3.1" };
    const answer = await refuse(`${origin}/portForward/default/web`, "POST", spdy, viewer);
    assert.equal(answer.status, 403);
    assert.deepEqual(
      reviews.map((r) => r.spec.resourceAttributes),
      [
        {
          verb: "create",
          group: "",
          version: "v1",
          resource: "nodes",
          subresource: "proxy",
          name: "n1",
        },
      ],
    );
    await assert.rejects(openTunnel(`${origin}/portForward/default/web`, viewer), /status 403/);
  });
});
