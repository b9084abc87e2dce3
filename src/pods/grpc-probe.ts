// gRPC probes as the kubelet runs them (pkg/probe/grpc/grpc.go): the standard health check
// grpc.health.v1.Health/Check, spoken by hand over HTTP/2 cleartext — a HealthCheckRequest{service}
// in, the HealthCheckResponse's status out; SERVING passes — with the kubelet's messages. Like
// grpc-go's blocking dial, connecting is retried until the timeout (a closed port ends as "failed to
// connect service ... within 1s"), and the call gets what is left of it. The deadline is a
// duration, measured on the monotonic clock.
import { STATUS_CODES } from "node:http";
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  constants,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
} from "node:http2";
import { goDuration } from "./format.ts";
import {
  firstMessage,
  grpcFrame,
  grpcMessage,
  grpcTimeout,
  healthCheckRequest,
  servingStatus,
} from "./grpc-wire.ts";
import type { ProbeOutcome } from "./net-probe.ts";
import { joinHostPort, kubeUserAgent } from "./probe-target.ts";

const HEALTH_CHECK_PATH = "/grpc.health.v1.Health/Check";
/** grpc.health.v1.HealthCheckResponse.ServingStatus, by number. */
const SERVING_STATUS = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];
const SERVING = 1;
/** grpc-go's reconnect backoff: 1 s, then 1.6 times longer each time. */
const FIRST_RETRY_MS = 1000;
const RETRY_FACTOR = 1.6;

/** gRPC status codes (google.golang.org/grpc/codes), named as Go prints them. */
const CODE_NAMES = [
  "OK",
  "Canceled",
  "Unknown",
  "InvalidArgument",
  "DeadlineExceeded",
  "NotFound",
  "AlreadyExists",
  "PermissionDenied",
  "ResourceExhausted",
  "FailedPrecondition",
  "Aborted",
  "OutOfRange",
  "Unimplemented",
  "Internal",
  "Unavailable",
  "DataLoss",
  "Unauthenticated",
];
const OK = 0;
const CANCELED = 1;
const UNKNOWN = 2;
const DEADLINE_EXCEEDED = 4;
const PERMISSION_DENIED = 7;
const RESOURCE_EXHAUSTED = 8;
const UNIMPLEMENTED = 12;
const INTERNAL = 13;
const UNAVAILABLE = 14;
const UNAUTHENTICATED = 16;

/** grpc-go's code for a response that is not gRPC, by HTTP status (others: Unknown). */
const CODE_OF_HTTP_STATUS: Record<number, number> = {
  400: INTERNAL,
  401: UNAUTHENTICATED,
  403: PERMISSION_DENIED,
  404: UNIMPLEMENTED,
  429: UNAVAILABLE,
  502: UNAVAILABLE,
  503: UNAVAILABLE,
  504: UNAVAILABLE,
};

/** HTTP/2 error codes by number: Go's name and grpc-go's status code for a stream reset with it. */
const RESET_CODES: [string, number][] = [
  ["NO_ERROR", INTERNAL],
  ["PROTOCOL_ERROR", INTERNAL],
  ["INTERNAL_ERROR", INTERNAL],
  ["FLOW_CONTROL_ERROR", RESOURCE_EXHAUSTED],
  ["SETTINGS_TIMEOUT", INTERNAL],
  ["STREAM_CLOSED", INTERNAL],
  ["FRAME_SIZE_ERROR", INTERNAL],
  ["REFUSED_STREAM", UNAVAILABLE],
  ["CANCEL", CANCELED],
  ["COMPRESSION_ERROR", INTERNAL],
  ["CONNECT_ERROR", INTERNAL],
  ["ENHANCE_YOUR_CALM", RESOURCE_EXHAUSTED],
  ["INADEQUATE_SECURITY", PERMISSION_DENIED],
  ["HTTP_1_1_REQUIRED", INTERNAL],
];

interface RpcStatus {
  code: number;
  message: string;
  /** The response message, for OK. */
  response?: Buffer;
}

export async function grpcProbe(
  host: string,
  port: number,
  service: string,
  timeoutMs: number,
): Promise<ProbeOutcome> {
  const address = joinHostPort(host, port);
  const deadline = performance.now() + timeoutMs;
  const timeout = goDuration(timeoutMs);
  const session = await connectBlocking(address, deadline);
  if (!session) {
    return {
      result: "failure",
      output: `timeout: failed to connect service ${JSON.stringify(address)} within ${timeout}: context deadline exceeded`,
    };
  }
  let status: RpcStatus;
  try {
    status = await healthCheck(session, service, deadline);
  } finally {
    session.destroy();
  }
  if (status.code === UNIMPLEMENTED) {
    return {
      result: "failure",
      output: `error: this server does not implement the grpc health protocol (grpc.health.v1.Health): ${status.message}`,
    };
  }
  if (status.code === DEADLINE_EXCEEDED) {
    return { result: "failure", output: `timeout: health rpc did not complete within ${timeout}` };
  }
  let serving: number | undefined;
  if (status.code === OK) {
    try {
      serving = servingStatus(status.response ?? Buffer.alloc(0));
    } catch {
      status = {
        code: INTERNAL,
        message:
          "grpc: failed to unmarshal the received message: proto: cannot parse invalid wire-format data",
      };
    }
  }
  if (serving === undefined) {
    const code = CODE_NAMES[status.code] ?? `Code(${status.code})`;
    return {
      result: "failure",
      output: `error: health rpc probe failed: rpc error: code = ${code} desc = ${status.message}`,
    };
  }
  if (serving !== SERVING) {
    const name = SERVING_STATUS[serving] ?? String(serving);
    return {
      result: "failure",
      output: `service unhealthy (responded with ${JSON.stringify(name)})`,
    };
  }
  return { result: "success", output: "service healthy" };
}

/** A session whose server has answered with its settings, or undefined once the deadline passed. */
async function connectBlocking(
  authority: string,
  deadline: number,
): Promise<ClientHttp2Session | undefined> {
  let backoff = FIRST_RETRY_MS;
  for (;;) {
    const session = await connectOnce(authority, deadline);
    if (session) return session;
    const wait = Math.min(backoff, deadline - performance.now());
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    if (performance.now() >= deadline) return undefined;
    backoff *= RETRY_FACTOR;
  }
}

function connectOnce(authority: string, deadline: number): Promise<ClientHttp2Session | undefined> {
  return new Promise((resolve) => {
    const session = connect(`http://${authority}`);
    const fail = () => {
      clearTimeout(timer);
      session.destroy();
      resolve(undefined);
    };
    const timer = setTimeout(fail, Math.max(0, deadline - performance.now()));
    // The listener stays: a session error later ends the call on its stream.
    session.on("error", fail);
    session.once("close", fail);
    session.once("remoteSettings", () => {
      clearTimeout(timer);
      session.off("close", fail);
      resolve(session);
    });
  });
}

function healthCheck(
  session: ClientHttp2Session,
  service: string,
  deadline: number,
): Promise<RpcStatus> {
  return new Promise((resolve) => {
    const remaining = deadline - performance.now();
    if (remaining <= 0) {
      resolve({ code: DEADLINE_EXCEEDED, message: "context deadline exceeded" });
      return;
    }
    let headers: (IncomingHttpHeaders & IncomingHttpStatusHeader) | undefined;
    let trailers: IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    let stream: ClientHttp2Stream;
    const settle = (status: RpcStatus) => {
      clearTimeout(timer);
      if (!stream.closed) stream.close(constants.NGHTTP2_CANCEL);
      resolve(status);
    };
    const timer = setTimeout(
      () => settle({ code: DEADLINE_EXCEEDED, message: "context deadline exceeded" }),
      remaining,
    );
    stream = session.request({
      ":method": "POST",
      ":path": HEALTH_CHECK_PATH,
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-timeout": grpcTimeout(remaining),
      "user-agent": kubeUserAgent("probe"),
    });
    stream.on("response", (received) => {
      headers = received;
    });
    stream.on("trailers", (received) => {
      trailers = received;
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    // What went wrong is read on close (the reset code); the error itself says no more.
    stream.on("error", () => undefined);
    stream.on("close", () => {
      const connectionLost = !headers && (session.destroyed || session.closed);
      settle(
        connectionLost
          ? { code: UNAVAILABLE, message: "error reading from server: EOF" }
          : callStatus(headers, trailers, Buffer.concat(chunks), stream.rstCode),
      );
    });
    stream.end(grpcFrame(healthCheckRequest(service)));
  });
}

/** What grpc-go makes of the call's response headers, trailers, body and stream reset. */
function callStatus(
  headers: (IncomingHttpHeaders & IncomingHttpStatusHeader) | undefined,
  trailers: IncomingHttpHeaders | undefined,
  body: Buffer,
  resetCode: number | undefined,
): RpcStatus {
  if (!headers) return resetStatus(resetCode ?? 0);
  const contentType = String(headers["content-type"] ?? "");
  if (!/^application\/grpc($|[+;])/i.test(contentType)) {
    const httpStatus = headers[":status"];
    const errors: string[] = [];
    let code = INTERNAL;
    if (httpStatus === undefined) {
      errors.push("malformed header: missing HTTP status");
    } else {
      errors.push(
        `unexpected HTTP status code received from server: ${httpStatus} (${STATUS_CODES[httpStatus] ?? ""})`,
      );
      code = CODE_OF_HTTP_STATUS[httpStatus] ?? UNKNOWN;
    }
    errors.push(
      contentType
        ? `transport: received unexpected content-type ${JSON.stringify(contentType)}`
        : "malformed header: missing HTTP content-type",
    );
    return { code, message: errors.join("; ") };
  }
  // A trailers-only response carries the status in its headers.
  const fields = trailers ?? headers;
  const rawStatus = fields["grpc-status"];
  if (rawStatus === undefined) {
    if (resetCode) return resetStatus(resetCode);
    return { code: INTERNAL, message: "server closed the stream without sending trailers" };
  }
  const code = Number.parseInt(String(rawStatus), 10);
  if (!Number.isInteger(code)) {
    return { code: UNKNOWN, message: `transport: malformed grpc-status: ${String(rawStatus)}` };
  }
  const message = grpcMessage(fields["grpc-message"]);
  if (code !== OK) return { code, message };
  const response = firstMessage(body);
  if (response === undefined) {
    return {
      code: INTERNAL,
      message: "cardinality violation: received no response message from non-server-streaming RPC",
    };
  }
  return { code: OK, message, response };
}

function resetStatus(resetCode: number): RpcStatus {
  const [name, code] = RESET_CODES[resetCode] ?? [
    `unknown error code 0x${resetCode.toString(16)}`,
    UNKNOWN,
  ];
  return { code, message: `stream terminated by RST_STREAM with error code: ${name}` };
}
