// GET|POST /portForward/{namespace}/{pod}[/{uid}]: `kubectl port-forward`, which speaks SPDY/3.1
// (spdy.ts) to the kubelet in one of two ways:
//
// - tunnelled in a WebSocket (subprotocol `SPDY/3.1+portforward.k8s.io`): kubectl ≥ 1.31 asks for
//   it, and a 1.36+ API server proxies it straight here because the node declares
//   ExtendWebSocketsToKubelet. The WebSocket's binary messages are a byte stream of SPDY frames
//   whose boundaries mean nothing (client-go tools/portforward/tunneling_connection.go; the
//   kubelet's own translation is k8s.io/apiserver pkg/util/proxy/streamtunnel.go).
// - a plain `Upgrade: SPDY/3.1` request with `X-Stream-Protocol-Version: portforward.k8s.io`
//   (kubectl falling back, an API server that does not tunnel). Answered with 101 and the
//   protocol chosen, as k8s.io/streaming pkg/httpstream/httpstream.go Handshake and
//   spdy/upgrade.go do; then the request's socket carries SPDY.
//
// Per forwarded connection the client opens two streams with the same `requestid` header: first
// `streamtype: error` (which it half-closes at once and reads to the end), then `streamtype: data`,
// both with `port`. Streams without a valid port or type are refused (RST_STREAM). Once both are
// there, wasmlet dials the pod's port and copies bytes both ways, half-closes included; a dial
// that fails is reported on the error stream — kubectl prints it and gives up the whole session —
// and both streams end. A pair still incomplete after the stream-creation timeout (30 s) gets a
// message on its error stream. The error stream ends (FIN) when its connection is over, which is
// what kubectl waits for. (kubelet pkg/kubelet/cri/streaming/portforward/httpstream.go, kubectl's
// client-go tools/portforward/portforward.go handleConnection, containerd's sandbox_portforward.)
// Unlike containerd, a pod connection that breaks midway (reset) only resets the data stream: the
// kubelet's error-stream message would make kubectl drop every forwarded connection.
//
// Before anything is upgraded, as the kubelet's getPortForward: an unknown pod (or another uid) is
// 404 "pod does not exist", one not running 404 "pod not found", then a request that is not an
// upgrade is 400. Only the WebSocket-tunnelled SPDY is spoken over WebSockets: the v4 WebSocket
// port-forward protocol (`portforward.k8s.io` as a WebSocket subprotocol) is refused with 400.
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { connect, type Socket } from "node:net";
import { Duplex } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { type ChannelSocket, isWebSocketUpgrade, offeredProtocols } from "./channel-protocol.ts";
import { serverError } from "./errors.ts";
import { EXTEND_WEBSOCKETS_TO_KUBELET } from "./exec-attach.ts";
import type { KubeletRoute, RouteContext } from "./server.ts";
import { SpdySession, type SpdyStream } from "./spdy.ts";

export const PORT_FORWARD_PROTOCOL = "portforward.k8s.io";
/** The WebSocket subprotocol that carries SPDY/3.1 port-forward (apimachinery util/portforward). */
export const PORT_FORWARD_TUNNEL_PROTOCOL = `SPDY/3.1+${PORT_FORWARD_PROTOCOL}`;

/** What the pod controller knows about the pod to forward to. */
export type PortForwardTarget =
  | {
      kind: "pod";
      uid: string;
      /** A TCP connection to the pod's port (where its listeners are bound). */
      dial(port: number): Promise<Socket>;
    }
  /** Unknown here, or known under another uid than the request's. */
  | { kind: "pod-not-found" }
  /** Known, but nothing of it runs (not started yet, or over). */
  | { kind: "not-running" };

export interface PortForwardDeps {
  resolve(
    namespace: string,
    pod: string,
    uid: string | undefined,
  ): PortForwardTarget | Promise<PortForwardTarget>;
  /** How long the second stream of a pair may take (the kubelet's 30 s). */
  streamCreationTimeoutMs?: number;
  /** A connection without frames either way this long is closed (the kubelet's 4 h). */
  idleTimeoutMs?: number;
}

const STREAM_CREATION_TIMEOUT_MS = 30_000;
const IDLE_TIMEOUT_MS = 4 * 60 * 60_000;
/** containerd's dial timeout for port-forward. */
const DIAL_TIMEOUT_MS = 5_000;
const ACCESS = { verb: "create", subresources: ["proxy"] } as const;

/** Opens a TCP connection, failing after `timeoutMs`; half-closes pass through it. */
export function connectTcp(
  host: string,
  port: number,
  timeoutMs = DIAL_TIMEOUT_MS,
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, allowHalfOpen: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(serverError("WASMLET_ERR_PORT_FORWARD_DIAL", `dial tcp ${host}:${port}: i/o timeout`));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

interface PathParams {
  namespace: string;
  pod: string;
  uid?: string;
}

/** A pod a session forwards to, for the error messages the client sees. */
interface ForwardTarget {
  /** namespace/name */
  pod: string;
  uid: string;
  dial(port: number): Promise<Socket>;
}

export interface PortForwardSessionOptions {
  target: ForwardTarget;
  log: Logger;
  streamCreationTimeoutMs?: number;
  idleTimeoutMs?: number;
}

/** Throws the kubelet's answer for a pod that cannot be forwarded to. */
function forwardTarget(target: PortForwardTarget, namespace: string, name: string): ForwardTarget {
  switch (target.kind) {
    case "pod-not-found":
      throw serverError("WASMLET_ERR_NOT_FOUND", "pod does not exist");
    case "not-running":
      throw serverError(
        "WASMLET_ERR_NOT_FOUND",
        `pod not found (${JSON.stringify(`${name}_${namespace}`)})`,
      );
    case "pod":
      return { pod: `${namespace}/${name}`, uid: target.uid, dial: (port) => target.dial(port) };
  }
}

function headerValues(headers: IncomingHttpHeaders, name: string): string[] {
  return [headers[name] ?? []]
    .flat()
    .flatMap((value) => value.split(","))
    .map((value) => value.trim())
    .filter((value) => value !== "");
}

function isUpgradeRequest(headers: IncomingHttpHeaders): boolean {
  return headerValues(headers, "connection").some((token) => token.toLowerCase() === "upgrade");
}

/** The kubelet's checks of a SPDY upgrade request (upgrade.go, httpstream.go Handshake). */
function checkSpdyUpgrade(headers: IncomingHttpHeaders): void {
  if (!isUpgradeRequest(headers) || !(headers.upgrade ?? "").toLowerCase().includes("spdy/3.1")) {
    throw serverError(
      "WASMLET_ERR_BAD_REQUEST",
      "unable to upgrade: missing upgrade headers in request (Connection: Upgrade, Upgrade: SPDY/3.1)",
    );
  }
  const offered = headerValues(headers, "x-stream-protocol-version");
  if (offered.length === 0) {
    throw serverError(
      "WASMLET_ERR_BAD_REQUEST",
      "unable to upgrade: header X-Stream-Protocol-Version does not exist in request",
    );
  }
  if (!offered.includes(PORT_FORWARD_PROTOCOL)) {
    throw serverError(
      "WASMLET_ERR_BAD_REQUEST",
      `unable to upgrade: unable to negotiate protocol: client supports [${offered.join(" ")}], server accepts [${PORT_FORWARD_PROTOCOL}]`,
    );
  }
}

/**
 * Bytes that arrived with the upgrade request after its headers. @fastify/websocket keeps them
 * under a symbol of its own ("ws-head"); Go clients send nothing before the 101, so it is
 * normally empty.
 */
function upgradeHead(raw: IncomingMessage): Buffer | undefined {
  const key = Object.getOwnPropertySymbols(raw).find((symbol) => symbol.description === "ws-head");
  const head = key === undefined ? undefined : (raw as unknown as Record<symbol, unknown>)[key];
  return Buffer.isBuffer(head) && head.length > 0 ? head : undefined;
}

/** What port-forward needs of @fastify/websocket's `ws` server: its handshake's headers. */
interface HandshakeHeaders {
  on(event: "headers", listener: (headers: string[], request: IncomingMessage) => void): unknown;
}

const amendedServers = new WeakSet<object>();
const tunnelRequests = new WeakSet<IncomingMessage>();

/**
 * Makes the WebSocket upgrade answer with the tunnel subprotocol. `ws` takes only RFC 7230 tokens
 * as subprotocols and refuses the whole handshake (400) when one holds a "/", as
 * SPDY/3.1+portforward.k8s.io does; Go's gorilla/websocket does not check. So the header is taken
 * out before `ws` reads it, and the protocol added to the 101 through `ws`'s 'headers' event.
 */
function answerWithTunnelProtocol(request: FastifyRequest): void {
  const server = (request.server as unknown as { websocketServer?: HandshakeHeaders })
    .websocketServer;
  if (!server)
    throw serverError("WASMLET_ERR_SERVER_ROUTE", "port-forward needs @fastify/websocket");
  if (!amendedServers.has(server)) {
    amendedServers.add(server);
    server.on("headers", (headers, raw) => {
      if (tunnelRequests.has(raw))
        headers.push(`Sec-WebSocket-Protocol: ${PORT_FORWARD_TUNNEL_PROTOCOL}`);
    });
  }
  delete request.raw.headers["sec-websocket-protocol"];
  tunnelRequests.add(request.raw);
}

/** The port-forward routes (GET also upgrades to a WebSocket; both take SPDY upgrades). */
export function portForwardRoutes(deps: PortForwardDeps): KubeletRoute[] {
  // Resolved by the handler before a WebSocket upgrade, taken by the WebSocket handler after it.
  const prepared = new WeakMap<IncomingMessage, ForwardTarget>();
  const sessionOptions = (target: ForwardTarget, log: Logger): PortForwardSessionOptions => ({
    target,
    log,
    streamCreationTimeoutMs: deps.streamCreationTimeoutMs,
    idleTimeoutMs: deps.idleTimeoutMs,
  });

  async function handler(
    request: FastifyRequest,
    reply: FastifyReply,
    context: RouteContext,
  ): Promise<undefined> {
    const { namespace, pod, uid } = request.params as PathParams;
    const target = forwardTarget(await deps.resolve(namespace, pod, uid), namespace, pod);
    const { headers } = request;
    if (isWebSocketUpgrade(headers)) {
      const offered = offeredProtocols(headers["sec-websocket-protocol"]);
      if (request.method !== "GET" || !offered.includes(PORT_FORWARD_TUNNEL_PROTOCOL)) {
        throw serverError(
          "WASMLET_ERR_BAD_REQUEST",
          `unable to upgrade: wasmlet forwards ports over WebSocket only as tunnelled SPDY (${PORT_FORWARD_TUNNEL_PROTOCOL}); offered: [${offered.join(" ")}]`,
        );
      }
      answerWithTunnelProtocol(request);
      prepared.set(request.raw, target);
      return undefined;
    }
    if (!isUpgradeRequest(headers)) {
      throw serverError("WASMLET_ERR_BAD_REQUEST", "Upgrade request required");
    }
    checkSpdyUpgrade(headers);
    // An upgrade reaches routes through @fastify/websocket's 'upgrade' listener, with the socket
    // already out of HTTP parsing. Anything else cannot hand its socket over.
    if (!request.ws)
      throw serverError("WASMLET_ERR_BAD_REQUEST", "unable to upgrade: not an upgrade");
    upgradeToSpdy(request, reply, sessionOptions(target, context.log));
    return undefined;
  }

  function websocket(socket: ChannelSocket, request: FastifyRequest, context: RouteContext): void {
    const target = prepared.get(request.raw);
    prepared.delete(request.raw);
    if (!target) {
      context.log.error({ url: request.url }, "port-forward upgraded without its handler's checks");
      socket.close(1011, "session not prepared");
      return;
    }
    const log = context.log.child({ portForward: target.pod, transport: "websocket" });
    servePortForward(new TunnelStream(socket as TunnelSocket), sessionOptions(target, log));
  }

  const urls = ["/portForward/:namespace/:pod", "/portForward/:namespace/:pod/:uid"];
  return urls.flatMap((url): KubeletRoute[] => [
    {
      method: "GET",
      url,
      handler,
      access: ACCESS,
      declares: EXTEND_WEBSOCKETS_TO_KUBELET,
      websocket,
    },
    { method: "POST", url, handler, access: ACCESS, declares: EXTEND_WEBSOCKETS_TO_KUBELET },
  ]);
}

/** Answers a SPDY upgrade with 101 on the request's own socket, which then carries the session. */
function upgradeToSpdy(
  request: FastifyRequest,
  reply: FastifyReply,
  options: PortForwardSessionOptions,
): void {
  reply.hijack();
  const socket = request.raw.socket;
  socket.write(
    "HTTP/1.1 101 Switching Protocols\r\n" +
      "Connection: Upgrade\r\n" +
      "Upgrade: SPDY/3.1\r\n" +
      `X-Stream-Protocol-Version: ${PORT_FORWARD_PROTOCOL}\r\n` +
      `Date: ${new Date().toUTCString()}\r\n\r\n`,
  );
  const head = upgradeHead(request.raw);
  if (head) socket.unshift(head);
  socket.setNoDelay(true);
  const log = options.log.child({ portForward: options.target.pod, transport: "spdy" });
  servePortForward(socket, { ...options, log });
}

/** The error and data streams of one forwarded connection. */
interface StreamPair {
  requestId: string;
  error?: SpdyStream;
  data?: SpdyStream;
  timer?: NodeJS.Timeout;
}

type StreamType = "error" | "data";

/** Why a new stream cannot be part of a forward (the kubelet's httpStreamReceived), if it cannot. */
function invalidStream(stream: SpdyStream): string | undefined {
  const port = stream.header("port");
  if (!port) return `"port" header is required`;
  if (!/^\d+$/.test(port) || Number(port) > 65535) return `unable to parse "${port}" as a port`;
  if (Number(port) < 1) return `port "${port}" must be > 0`;
  const type = stream.header("streamtype");
  if (!type) return `"streamType" header is required`;
  if (type !== "error" && type !== "data") return `invalid stream type "${type}"`;
  return undefined;
}

/**
 * The pair a stream belongs to. Clients older than request ids sent the two streams of a
 * connection back to back (error n, data n + 2): the kubelet pairs them by stream id instead.
 */
function requestIdOf(stream: SpdyStream, type: StreamType): string {
  return stream.header("requestid") ?? String(type === "error" ? stream.id : stream.id - 2);
}

/** Serves port-forward streams over a SPDY transport until the client goes away. */
export function servePortForward(
  transport: Duplex,
  options: PortForwardSessionOptions,
): SpdySession {
  const { target, log } = options;
  const creationTimeoutMs = options.streamCreationTimeoutMs ?? STREAM_CREATION_TIMEOUT_MS;
  const pairs = new Map<string, StreamPair>();

  const accept = (stream: SpdyStream): boolean => {
    const problem = invalidStream(stream);
    if (problem) {
      log.debug({ stream: stream.id, problem }, "port-forward stream refused");
      return false;
    }
    stream.on("error", (error) => log.debug({ stream: stream.id, err: error }, "stream error"));
    const type = stream.header("streamtype") as StreamType;
    const requestId = requestIdOf(stream, type);
    let pair = pairs.get(requestId);
    if (!pair) {
      const created: StreamPair = { requestId };
      created.timer = setTimeout(() => {
        pairs.delete(requestId);
        failPair(created, `request ${requestId}: timed out waiting for streams`);
      }, creationTimeoutMs);
      created.timer.unref();
      pairs.set(requestId, created);
      pair = created;
    }
    if (pair[type]) {
      pair.error?.write(
        `error processing stream for request ${requestId}: ${type} stream already assigned`,
      );
      return false;
    }
    pair[type] = stream;
    // The client writes nothing on the error stream: read it to its end so the stream can close.
    if (type === "error") stream.resume();
    if (pair.error && pair.data) {
      clearTimeout(pair.timer);
      pairs.delete(requestId);
      void forward(pair.data, pair.error, log.child({ request: requestId }));
    }
    return true;
  };

  const forward = async (data: SpdyStream, error: SpdyStream, requestLog: Logger) => {
    const port = Number(data.header("port"));
    let socket: Socket;
    try {
      socket = await target.dial(port);
    } catch (failure) {
      const message = `error forwarding port ${port} to pod ${target.pod}, uid ${target.uid}: ${(failure as Error).message}`;
      requestLog.debug({ port, reason: message }, "port-forward dial failed");
      error.end(message);
      data.end();
      return;
    }
    if (data.destroyed) {
      socket.destroy();
      error.end();
      return;
    }
    requestLog.debug({ port }, "forwarding");
    // Either copy failing (a reset on either side) has pipeline destroy both ends.
    const results = await Promise.allSettled([pipeline(data, socket), pipeline(socket, data)]);
    socket.destroy();
    error.end();
    const broken = results.find((result) => result.status === "rejected");
    const reason =
      data.peerResetStatus !== undefined
        ? "the client reset the data stream" // kubectl's usual end, once the pod's side is done
        : broken && (broken.reason as Error).message;
    requestLog.debug(
      {
        port,
        received: socket.bytesWritten,
        sent: socket.bytesRead,
        ...(reason ? { reason } : {}),
      },
      "forward over",
    );
  };

  const failPair = (pair: StreamPair, message: string): void => {
    log.debug({ request: pair.requestId, reason: message }, "port-forward request failed");
    pair.error?.end(message);
    pair.data?.destroy();
  };

  const session = new SpdySession(transport, {
    onStream: accept,
    respectPeerWindows: false, // kubectl's spdystream does no flow control (see spdy.ts)
    idleTimeoutMs: options.idleTimeoutMs ?? IDLE_TIMEOUT_MS,
  });
  log.debug("port-forward session started");
  void session.closed.then((reason) => {
    for (const pair of pairs.values()) clearTimeout(pair.timer);
    pairs.clear();
    log.debug({ reason }, "port-forward session over");
  });
  return session;
}

/** The server-side WebSocket (`ws`): ChannelSocket, whose messages say whether they are binary. */
interface TunnelSocket extends Omit<ChannelSocket, "on"> {
  on(
    event: "message",
    listener: (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => void,
  ): unknown;
  on(event: "close", listener: () => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
}

function toBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.isBuffer(data) ? data : Buffer.from(data);
}

/** Bytes queued on the WebSocket past which writes wait for it to flush. */
const TUNNEL_HIGH_WATER = 256 * 1024;

/**
 * A WebSocket that tunnels SPDY, as a byte stream: binary messages in (a text message breaks the
 * tunnel, as in client-go), each write (or batch of writes) out as one binary message. Reading
 * pauses the socket when the session does not keep up.
 */
class TunnelStream extends Duplex {
  readonly #socket: TunnelSocket;

  constructor(socket: TunnelSocket) {
    super({ allowHalfOpen: false, writableHighWaterMark: 64 * 1024 });
    this.#socket = socket;
    socket.on("message", (data, isBinary) => {
      if (!isBinary) {
        this.destroy(serverError("WASMLET_ERR_SPDY_TUNNEL", "a text message in a SPDY tunnel"));
        return;
      }
      if (!this.push(toBuffer(data))) socket.pause();
    });
    socket.on("close", () => this.destroy());
    socket.on("error", (error) => this.destroy(error));
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error) => void) {
    this.#send(chunk, callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.#send(Buffer.concat(chunks.map(({ chunk }) => chunk)), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#socket.close(1000);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#socket.close(error ? 1002 : 1000);
    callback(error);
  }

  /** Sends a message; the write completes at once unless the socket is backed up. */
  #send(data: Buffer, callback: (error?: Error) => void): void {
    let done = false;
    const complete = (error?: Error) => {
      if (done) return;
      done = true;
      callback(error);
    };
    this.#socket.send(data, (error) => complete(error ?? undefined));
    if (this.#socket.bufferedAmount <= TUNNEL_HIGH_WATER) complete();
  }
}
