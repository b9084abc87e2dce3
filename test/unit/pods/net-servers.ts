// Real servers on 127.0.0.1 for the network probe and hook tests: an HTTP server whose answers the
// test scripts, a port nobody listens on, and a gRPC health service written by hand over h2c.
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import {
  createServer as createHttp2Server,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from "node:http2";
import { createServer as createTcpServer, type Server } from "node:net";

export interface Listening {
  port: number;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

function closer(server: Server & { closeAllConnections?: () => void }): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    });
}

export interface SeenRequest {
  url: string;
  /** Raw header lines as [name, value], in the order they came. */
  headers: [string, string][];
}

/** An HTTP server answering with `handle`; every request is recorded in `seen`. */
export async function httpServer(
  handle: (request: IncomingMessage, response: ServerResponse) => void,
): Promise<Listening & { seen: SeenRequest[] }> {
  const seen: SeenRequest[] = [];
  const server = createHttpServer((request, response) => {
    const headers: [string, string][] = [];
    for (let i = 0; i < request.rawHeaders.length; i += 2) {
      headers.push([request.rawHeaders[i]!, request.rawHeaders[i + 1]!]);
    }
    seen.push({ url: request.url ?? "", headers });
    handle(request, response);
  });
  const port = await listen(server);
  return { port, seen, close: closer(server) };
}

/** A port on 127.0.0.1 that refuses connections (it was just free). */
export async function closedPort(): Promise<number> {
  const server = createTcpServer();
  const port = await listen(server);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A TCP server that accepts connections and never says a word; `connections` counts them. */
export async function silentTcpServer(): Promise<
  Listening & { connections: number; closedByPeer: number }
> {
  const state = { connections: 0, closedByPeer: 0 };
  const server = createTcpServer((socket) => {
    state.connections++;
    socket.on("end", () => state.closedByPeer++);
    socket.on("error", () => undefined);
  });
  const port = await listen(server);
  const close = closer(server);
  return {
    port,
    close,
    get connections() {
      return state.connections;
    },
    get closedByPeer() {
      return state.closedByPeer;
    },
  };
}

/**
 * grpc.health.v1.Health/Check by hand: `statuses` maps a service name to the ServingStatus number
 * it answers with; other names get NOT_FOUND "unknown service", like grpc-go's health server. With
 * `implemented: false` the server knows no health service at all; with `hang`, it never answers.
 */
export async function grpcHealthServer(
  statuses: Record<string, number>,
  options: { implemented?: boolean; hang?: boolean } = {},
): Promise<Listening & { requests: { service: string; headers: IncomingHttpHeaders }[] }> {
  const requests: { service: string; headers: IncomingHttpHeaders }[] = [];
  const server = createHttp2Server();
  const sessions = new Set<ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  server.on("stream", (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", () => undefined);
    stream.on("end", () => {
      const service = decodeRequest(Buffer.concat(chunks));
      requests.push({ service, headers });
      if (options.hang) return;
      if (options.implemented === false || headers[":path"] !== "/grpc.health.v1.Health/Check") {
        stream.respond(
          {
            ":status": 200,
            "content-type": "application/grpc",
            "grpc-status": "12",
            "grpc-message": "unknown service grpc.health.v1.Health",
          },
          { endStream: true },
        );
        return;
      }
      const status = statuses[service];
      if (status === undefined) {
        stream.respond(
          {
            ":status": 200,
            "content-type": "application/grpc",
            "grpc-status": "5",
            "grpc-message": "unknown%20service",
          },
          { endStream: true },
        );
        return;
      }
      stream.respond(
        { ":status": 200, "content-type": "application/grpc" },
        { waitForTrailers: true },
      );
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      // HealthCheckResponse { status = 1 (varint) }, in gRPC's 5-byte framing.
      const message = Buffer.from([0x08, status]);
      const frame = Buffer.alloc(5);
      frame.writeUInt32BE(message.length, 1);
      stream.end(Buffer.concat([frame, message]));
    });
  });
  const port = await listen(server);
  return {
    port,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        for (const session of sessions) session.destroy();
      }),
  };
}

/** HealthCheckRequest { string service = 1 } inside gRPC framing. */
function decodeRequest(body: Buffer): string {
  const message = body.subarray(5, 5 + body.readUInt32BE(1));
  if (message.length === 0) return "";
  if (message[0] !== 0x0a) throw new Error(`unexpected tag ${message[0]}`);
  return message.subarray(2, 2 + message[1]!).toString("utf8");
}
