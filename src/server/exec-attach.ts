// GET /exec/{namespace}/{pod}/[{uid}/]{container} and /attach/…: `kubectl exec` and `kubectl
// attach`, which a Kubernetes ≥ 1.36 API server proxies to wasmlet as WebSockets because the node
// declares ExtendWebSocketsToKubelet (see channel-protocol.ts for the wire format).
//
// Before the upgrade, as the kubelet's getExec/getAttach: the streams are decoded and checked
// (400), the pod and container looked up (404), and a request that is not a WebSocket upgrade —
// an older API server speaking SPDY/3.1, which POSTs — is refused with 400 and the reason.
//
// - exec runs a new instance of the container's module with `command` as argv; its stdout and
//   stderr stream to channels 1 and 2 with backpressure, channel 0 feeds its stdin (ended by a v5
//   half-close). When it exits the status goes to channel 3 (Success, or NonZeroExitCode with the
//   code) and the socket closes normally. A client that goes away stops the instance.
// - attach forwards the running container's live output (from now on; the log has the rest, and
//   a client far behind loses chunks) and, when the container was started with stdin, the
//   client's stdin; with stdinOnce the container's stdin closes when the client's does. It ends
//   with Success when the container exits; a client that leaves just unsubscribes.
// - tty: wasmlet has no terminals. A tty session runs without one, as a terminal would show it:
//   stderr merged into stdout (the kubelet already drops the stderr stream), newlines sent as
//   CR LF, and the client's raw keystrokes through a small line discipline (LineDiscipline):
//   echo, CR as newline, erase, ^U, ^D (end of input) and ^C (stops an exec). As a kernel tty's,
//   the line holds at most 4095 bytes and its newline (keystrokes beyond are discarded and ring
//   the bell), and the echo waits for a backed-up socket before more keystrokes are read, so
//   typing without end costs no memory. Resize messages are accepted and ignored.
import type { IncomingMessage } from "node:http";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "pino";
import type { Container, ExitStatus, Instance } from "../runtime/index.ts";
import {
  CHANNEL_PROTOCOLS,
  ChannelConnection,
  type ChannelProtocol,
  type ChannelSocket,
  exitCodeStatus,
  internalErrorStatus,
  isWebSocketUpgrade,
  negotiateProtocol,
  offeredProtocols,
  parseStreamOptions,
  STDERR,
  STDOUT,
  type StreamOptions,
  type StreamStatus,
  successStatus,
} from "./channel-protocol.ts";
import { serverError } from "./errors.ts";
import type { KubeletRoute, RouteContext } from "./server.ts";

/** What the pod controller knows about the container a session is for. */
export type ExecAttachTarget =
  | {
      kind: "container";
      container: Container;
      /** The container's `stdinOnce`: its stdin closes when the first attached client's does. */
      stdinOnce?: boolean;
    }
  | { kind: "pod-not-found" }
  | { kind: "container-not-found" }
  /** Known but without a running instance: waiting (reason ContainerCreating…) or terminated. */
  | { kind: "not-running"; reason?: string };

export interface ExecAttachDeps {
  /** The container; `podUid` is set for the `/{uid}/` form and must match the pod's uid. */
  resolve(
    namespace: string,
    pod: string,
    container: string,
    podUid: string | undefined,
  ): ExecAttachTarget | Promise<ExecAttachTarget>;
  /** Grace period for an exec whose client went away or pressed ^C (default 1000 ms). */
  execStopGracePeriodMs?: number;
}

/** Runs once the server has upgraded a request that the route's handler let through. */
export type WebSocketHandler = (
  socket: ChannelSocket,
  request: FastifyRequest,
  context: RouteContext,
) => void;

/**
 * A kubelet route that may also take WebSockets. For a request asking to upgrade, the server
 * runs `handler` first (it refuses with an HTTP error or returns), then upgrades the connection
 * and calls `websocket`; other requests only see `handler`.
 */
export type WebSocketRoute = KubeletRoute & { websocket?: WebSocketHandler };

/** The node feature (`status.declaredFeatures`) that exec, attach and port-forward bring. */
export const EXTEND_WEBSOCKETS_TO_KUBELET = "ExtendWebSocketsToKubelet";

const ACCESS = { verb: "create", subresources: ["proxy"] } as const;

type Kind = "exec" | "attach";

interface Session {
  kind: Kind;
  options: StreamOptions;
  protocol: ChannelProtocol;
  command: string[];
  container: Container;
  stdinOnce: boolean;
  /** For logs: namespace/pod/container. */
  name: string;
}

interface PathParams {
  namespace: string;
  pod: string;
  uid?: string;
  container: string;
}

function spdyRefusal(kind: Kind, upgrade: string | undefined): Error {
  const asked = upgrade ? `asks to upgrade to ${upgrade}` : "is not a WebSocket upgrade";
  return serverError(
    "WASMLET_ERR_BAD_REQUEST",
    `unable to upgrade: wasmlet serves ${kind} over WebSocket only (${CHANNEL_PROTOCOLS.slice(0, 2).join(", ")}) and this request ${asked}. ` +
      "The API server must be Kubernetes 1.36 or newer with the ExtendWebSocketsToKubelet feature gate enabled " +
      "(beta, on by default): it then proxies the client's WebSocket to nodes that declare ExtendWebSocketsToKubelet " +
      "in status.declaredFeatures instead of translating it to SPDY/3.1.",
  );
}

/** Throws the HTTP error for a target that is not a running container. */
function runningContainer(
  target: ExecAttachTarget,
  pod: string,
  container: string,
): { container: Container; stdinOnce: boolean } {
  const [c, p] = [JSON.stringify(container), JSON.stringify(pod)];
  switch (target.kind) {
    case "pod-not-found":
      throw serverError("WASMLET_ERR_NOT_FOUND", `pod ${p} does not exist`);
    case "container-not-found":
      throw serverError("WASMLET_ERR_NOT_FOUND", `container ${c} not found in pod ${p}`);
    case "not-running":
      throw serverError(
        "WASMLET_ERR_BAD_REQUEST",
        `container ${c} in pod ${p} is not running${target.reason ? `: ${target.reason}` : ""}`,
      );
    case "container":
      if (!target.container.running) {
        throw serverError("WASMLET_ERR_BAD_REQUEST", `container ${c} in pod ${p} is not running`);
      }
      return { container: target.container, stdinOnce: target.stdinOnce === true };
  }
}

function routes(kind: Kind, deps: ExecAttachDeps): WebSocketRoute[] {
  const stopGraceMs = deps.execStopGracePeriodMs ?? 1000;
  // Prepared by the handler before the upgrade, taken by the WebSocket handler after it.
  const sessions = new WeakMap<IncomingMessage, Session>();

  async function handler(request: FastifyRequest, _reply: FastifyReply): Promise<undefined> {
    const { namespace, pod, uid, container } = request.params as PathParams;
    if (!pod) throw serverError("WASMLET_ERR_BAD_REQUEST", "Missing podID.");
    if (!container) throw serverError("WASMLET_ERR_BAD_REQUEST", "Missing container name.");
    if (!namespace) throw serverError("WASMLET_ERR_BAD_REQUEST", "Missing podNamespace.");
    const search = request.url.indexOf("?");
    const query = new URLSearchParams(search < 0 ? "" : request.url.slice(search + 1));
    const options = parseStreamOptions(query);
    if (!isWebSocketUpgrade(request.headers)) throw spdyRefusal(kind, request.headers.upgrade);
    const command = query.getAll("command");
    if (kind === "exec" && command.length === 0) {
      throw serverError("WASMLET_ERR_BAD_REQUEST", "you must specify a command to execute");
    }
    const offered = request.headers["sec-websocket-protocol"];
    const protocol = negotiateProtocol(offered);
    if (protocol === undefined) {
      throw serverError(
        "WASMLET_ERR_BAD_REQUEST",
        `requested protocol(s) are not supported: [${offeredProtocols(offered).join(" ")}]; supports [${CHANNEL_PROTOCOLS.join(" ")}]`,
      );
    }
    const target = await deps.resolve(namespace, pod, container, uid);
    const found = runningContainer(target, pod, container);
    sessions.set(request.raw, {
      kind,
      options,
      protocol,
      command,
      ...found,
      name: `${namespace}/${pod}/${container}`,
    });
    // The upgrade answers with the first subprotocol the header offers: leave only ours.
    if (protocol) request.raw.headers["sec-websocket-protocol"] = protocol;
    else delete request.raw.headers["sec-websocket-protocol"];
    return undefined;
  }

  function websocket(socket: ChannelSocket, request: FastifyRequest, context: RouteContext): void {
    const session = sessions.get(request.raw);
    sessions.delete(request.raw);
    if (!session) {
      context.log.error({ url: request.url }, `${kind} upgraded without its handler's checks`);
      socket.close(1011, "session not prepared");
      return;
    }
    const log = context.log.child({ [kind]: session.name, protocol: session.protocol });
    if (kind === "exec") runExec(socket, session, log, stopGraceMs);
    else runAttach(socket, session, log);
  }

  const plain = (url: string): WebSocketRoute => ({
    method: "POST",
    url,
    handler,
    access: ACCESS,
    declares: EXTEND_WEBSOCKETS_TO_KUBELET,
  });
  const upgradable = (url: string): WebSocketRoute => ({ ...plain(url), method: "GET", websocket });
  const urls = [`/${kind}/:namespace/:pod/:container`, `/${kind}/:namespace/:pod/:uid/:container`];
  return urls.flatMap((url) => [upgradable(url), plain(url)]);
}

/** The exec routes (GET upgrades to a WebSocket; POST, as SPDY clients send, is refused). */
export function execRoutes(deps: ExecAttachDeps): WebSocketRoute[] {
  return routes("exec", deps);
}

/** The attach routes (GET upgrades to a WebSocket; POST, as SPDY clients send, is refused). */
export function attachRoutes(deps: ExecAttachDeps): WebSocketRoute[] {
  return routes("attach", deps);
}

function execStatus(exit: ExitStatus): StreamStatus {
  if (exit.reason === "StartError") {
    return internalErrorStatus(`error executing command in container: ${exit.message ?? ""}`);
  }
  if (exit.exitCode === 0) return successStatus();
  return exitCodeStatus(exit.exitCode, exit.reason === "Error" ? undefined : exit.message);
}

function runExec(socket: ChannelSocket, session: Session, log: Logger, stopGraceMs: number): void {
  const { options } = session;
  const tty = options.tty ? new LineDiscipline() : undefined;
  let instance: Instance | undefined;
  const stop = () => void instance?.stop(stopGraceMs);
  const connection: ChannelConnection = new ChannelConnection(socket, session.protocol, options, {
    stdin: (data) => {
      if (!instance) return undefined;
      if (!tty) return instance.writeStdin(data);
      const exec = instance;
      return typeIn(tty, data, connection, exec, { interrupt: stop, end: () => exec.closeStdin() });
    },
    stdinEnd: () => instance?.closeStdin(),
    gone: (reason) => {
      log.debug({ reason }, "exec client went away: stopping the command");
      stop();
    },
  });
  try {
    instance = session.container.exec({
      args: session.command,
      stdin: options.stdin,
      onOutput: (stream, chunk) => {
        if (tty) return connection.write(STDOUT, tty.output(chunk));
        return connection.write(stream === "stdout" ? STDOUT : STDERR, chunk);
      },
    });
  } catch (error) {
    log.debug({ err: error }, "exec could not start");
    connection.finish(
      internalErrorStatus(`error executing command in container: ${(error as Error).message}`),
    );
    return;
  }
  log.debug({ command: session.command }, "exec started");
  void instance.exited.then((exit) => {
    log.debug({ exitCode: exit.exitCode, reason: exit.reason }, "exec ended");
    connection.finish(execStatus(exit));
  });
}

function runAttach(socket: ChannelSocket, session: Session, log: Logger): void {
  const { container, options } = session;
  // Stdin reaches a container started with it; otherwise it has nowhere to go, as in the CRI.
  const stdin = options.stdin && container.spec.stdin === true;
  const closeOnce = stdin && session.stdinOnce;
  const tty = options.tty ? new LineDiscipline() : undefined;
  let dropped = 0;
  let unsubscribe = () => {};
  const connection: ChannelConnection = new ChannelConnection(socket, session.protocol, options, {
    stdin: stdin
      ? (data) => {
          if (!tty) return container.writeStdin(data);
          // ^C has no process to signal here: it only discards the line.
          return typeIn(tty, data, connection, container, {
            end: () => {
              if (closeOnce) container.closeStdin();
            },
          });
        }
      : undefined,
    stdinEnd: () => {
      if (closeOnce) container.closeStdin();
    },
    gone: (reason) => {
      log.debug({ reason, dropped }, "attach client went away");
      unsubscribe();
      if (closeOnce) container.closeStdin();
    },
  });
  unsubscribe = container.onOutput((stream, chunk) => {
    const channel = tty || stream === "stdout" ? STDOUT : STDERR;
    if (!connection.writeLossy(channel, tty ? tty.output(chunk) : chunk)) dropped += chunk.length;
  });
  log.debug("attached");
  void container.exited.then(() => {
    unsubscribe();
    log.debug({ dropped }, "attach ended: the container exited");
    connection.finish(successStatus());
  });
}

/**
 * Keystrokes go through the line discipline this many at a time, so the echo and the lines one
 * step makes stay small however large the client's message.
 */
const TYPING_STEP = 16 * 1024;

/**
 * Feeds keystrokes through the line discipline into an instance's stdin. Each step waits for its
 * echo to reach a backed-up socket and for its lines to reach the guest: until then the stdin
 * handler is busy, and ChannelConnection stops reading the socket once 1 MiB of input waits on it.
 */
async function typeIn(
  tty: LineDiscipline,
  data: Uint8Array,
  connection: ChannelConnection,
  target: Pick<Instance, "writeStdin">,
  on: { interrupt?: () => void; end?: () => void },
): Promise<void> {
  for (let offset = 0; offset < data.length && !connection.closed; offset += TYPING_STEP) {
    const typed = tty.input(data.subarray(offset, offset + TYPING_STEP));
    await Promise.all([
      typed.echo.length > 0 ? connection.write(STDOUT, typed.echo) : undefined,
      typed.line.length > 0 ? target.writeStdin(typed.line) : undefined,
    ]);
    if (typed.interrupt) on.interrupt?.();
    if (typed.eof) {
      on.end?.();
      return;
    }
  }
}

/** What the line discipline makes of keystrokes. */
export interface TypedInput {
  /** To show on the client's terminal. */
  echo: Buffer;
  /** Completed input for the program's stdin. */
  line: Buffer;
  /** ^D on an empty line: end of input (later keystrokes are ignored). */
  eof: boolean;
  /** ^C: the program should stop. */
  interrupt: boolean;
}

/**
 * The line being edited holds at most this many bytes, newline included: Linux n_tty's canonical
 * buffer (N_TTY_BUF_SIZE). Past 4095 bytes further keystrokes are discarded, except the newline
 * (CR, LF) that ends the line, ^D that hands it over, and the editing keys.
 */
export const MAX_CANON = 4096;

const BEL = 0x07;
const CTRL_C = 0x03;
const CTRL_D = 0x04;
const BACKSPACE = 0x08;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const CTRL_U = 0x15;
const DEL = 0x7f;
const ERASE = [BACKSPACE, 0x20, BACKSPACE] as const;

/** ECHOCTL: control characters other than tab are echoed as ^X, two columns wide. */
function isEchoedAsCaret(byte: number): boolean {
  return byte < 0x20 && byte !== TAB;
}

/** A growing run of bytes (no spreading of large arrays into arguments). */
class ByteRun {
  #bytes = Buffer.allocUnsafe(256);
  #length = 0;

  push(...bytes: number[]): void {
    for (const byte of bytes) this.add(byte);
  }

  add(byte: number): void {
    this.#room(1);
    this.#bytes[this.#length++] = byte;
  }

  append(bytes: Uint8Array): void {
    this.#room(bytes.length);
    this.#bytes.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  take(): Buffer {
    return Buffer.from(this.#bytes.subarray(0, this.#length));
  }

  #room(more: number): void {
    if (this.#length + more <= this.#bytes.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.#bytes.length * 2, this.#length + more));
    this.#bytes.copy(grown, 0, 0, this.#length);
    this.#bytes = grown;
  }
}

/**
 * The part of a terminal's canonical mode a tty session needs when there is no terminal: the
 * client (kubectl -t) sends raw keystrokes and expects the far side to echo them, edit the line
 * and turn CR into newline (ICANON, ECHO, ECHOCTL, ICRNL, IUTF8 erase); output newlines become
 * CR LF (ONLCR). The line is bounded like n_tty's (MAX_CANON): keystrokes that do not fit are
 * discarded and ring the bell (IMAXBEL) — once per overflow rather than once per keystroke, so a
 * flood of input does not come back as a flood of bells.
 */
export class LineDiscipline {
  readonly #line = Buffer.alloc(MAX_CANON - 1);
  #length = 0;
  /** The bell rang for the keystrokes discarded since the line last had room. */
  #rang = false;
  #ended = false;

  /** Bytes of the line being edited (never more than MAX_CANON - 1). */
  get pending(): number {
    return this.#length;
  }

  input(data: Uint8Array): TypedInput {
    const echo = new ByteRun();
    const lines = new ByteRun();
    const result = { eof: false, interrupt: false };
    for (const byte of data) {
      if (this.#ended) break;
      switch (byte) {
        case CTRL_C:
          echo.push(0x5e, 0x43, CR, LF);
          this.#clear();
          result.interrupt = true;
          break;
        case CTRL_D:
          if (this.#length === 0) {
            result.eof = true;
            this.#ended = true;
          } else {
            lines.append(this.#line.subarray(0, this.#length));
            this.#clear();
          }
          break;
        case DEL:
        case BACKSPACE:
          this.#eraseChar(echo);
          break;
        case CTRL_U:
          while (this.#length > 0) this.#eraseChar(echo);
          break;
        case CR:
        case LF:
          lines.append(this.#line.subarray(0, this.#length));
          lines.add(LF);
          this.#clear();
          echo.push(CR, LF);
          break;
        default:
          if (this.#length === this.#line.length) {
            if (!this.#rang) echo.add(BEL);
            this.#rang = true;
            break;
          }
          this.#line[this.#length++] = byte;
          if (isEchoedAsCaret(byte)) echo.push(0x5e, byte + 0x40);
          else echo.add(byte);
      }
    }
    return { echo: echo.take(), line: lines.take(), ...result };
  }

  output(data: Uint8Array): Buffer {
    const text = Buffer.from(data.buffer, data.byteOffset, data.length);
    let newlines = 0;
    for (let at = text.indexOf(LF); at >= 0; at = text.indexOf(LF, at + 1)) newlines++;
    if (newlines === 0) return text;
    const out = Buffer.allocUnsafe(text.length + newlines);
    let to = 0;
    for (const byte of text) {
      if (byte === LF) out[to++] = CR;
      out[to++] = byte;
    }
    return out;
  }

  #clear(): void {
    this.#length = 0;
    this.#rang = false;
  }

  /** Removes the last character (all of a UTF-8 sequence) and echoes what rubs it out. */
  #eraseChar(echo: ByteRun): void {
    if (this.#length === 0) return;
    this.#rang = false;
    let byte = this.#line[--this.#length] as number;
    while ((byte & 0xc0) === 0x80 && this.#length > 0) byte = this.#line[--this.#length] as number;
    echo.push(...ERASE);
    if (isEchoedAsCaret(byte)) echo.push(...ERASE);
  }
}
