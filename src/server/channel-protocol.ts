// The Kubernetes remote-command WebSocket channel protocols, as the kubelet speaks them for exec
// and attach (k8s.io/streaming wsstream/conn.go, k8s.io/cri-streaming remotecommand/websocket.go
// and httpstream.go, and the API server's stream translator that a 1.36 kubelet runs for v5):
//
// - Subprotocols: `v5.channel.k8s.io`, `v4.channel.k8s.io`, `v4.base64.channel.k8s.io`,
//   `channel.k8s.io`, `base64.channel.k8s.io`, and none at all (= `channel.k8s.io`). The client's
//   order decides: the first one it offers that the server knows wins (kubectl offers v5 first).
//   v3/v2 exist only over SPDY. Offering only unknown ones is refused before the upgrade.
// - Every message starts with a channel: 0 stdin, 1 stdout, 2 stderr, 3 error (status), 4 resize.
//   Binary protocols put the channel in a byte; base64 ones send text, the channel as an ASCII
//   digit followed by the base64 payload. Empty messages are ignored, so are messages for a
//   channel the session does not read (and unknown channels).
// - v5 adds 255: `[255, channel]` half-closes a channel (the client ends stdin with `[255, 0]`).
//   Any other length, or a channel past resize, is a protocol error that ends the connection.
// - Right after the upgrade the server sends an empty message on the lowest channel it writes
//   (stdout, else stderr, else error), so the client knows the session is established.
// - The end: the status goes to the error channel — a JSON metav1.Status for v4/v5; the older
//   protocols send nothing on success and the bare message on failure — then a close frame.
// - Query (the API server's names): `input`, `output`, `error`, `tty` are on only when exactly "1";
//   tty drops stderr (a terminal has one output); at least one stream must be asked for.
import type { IncomingHttpHeaders } from "node:http";
import { serverError } from "./errors.ts";

export const STDIN = 0;
export const STDOUT = 1;
export const STDERR = 2;
export const ERROR = 3;
export const RESIZE = 4;
const CHANNELS = 5;
const STREAM_CLOSE = 255;

export type OutputChannel = typeof STDOUT | typeof STDERR | typeof ERROR;

export type ChannelProtocol =
  | "v5.channel.k8s.io"
  | "v4.channel.k8s.io"
  | "v4.base64.channel.k8s.io"
  | "channel.k8s.io"
  | "base64.channel.k8s.io"
  /** No subprotocol offered: `channel.k8s.io`. */
  | "";

interface ProtocolTraits {
  base64: boolean;
  /** Understands `[255, channel]`. */
  streamClose: boolean;
  /** Status as JSON metav1.Status (v4, v5) rather than the v1 bare message. */
  jsonStatus: boolean;
}

const TRAITS: Readonly<Record<ChannelProtocol, ProtocolTraits>> = {
  "v5.channel.k8s.io": { base64: false, streamClose: true, jsonStatus: true },
  "v4.channel.k8s.io": { base64: false, streamClose: false, jsonStatus: true },
  "v4.base64.channel.k8s.io": { base64: true, streamClose: false, jsonStatus: true },
  "channel.k8s.io": { base64: false, streamClose: false, jsonStatus: false },
  "base64.channel.k8s.io": { base64: true, streamClose: false, jsonStatus: false },
  "": { base64: false, streamClose: false, jsonStatus: false },
};

/** The subprotocols wasmlet accepts, newest first. */
export const CHANNEL_PROTOCOLS: readonly ChannelProtocol[] = [
  "v5.channel.k8s.io",
  "v4.channel.k8s.io",
  "v4.base64.channel.k8s.io",
  "channel.k8s.io",
  "base64.channel.k8s.io",
];

function isChannelProtocol(name: string): name is ChannelProtocol {
  return Object.hasOwn(TRAITS, name);
}

/** The subprotocols a `Sec-WebSocket-Protocol` header offers, in the client's order. */
export function offeredProtocols(header: string | string[] | undefined): string[] {
  const text = [header ?? []].flat().join(",");
  return text
    .split(",")
    .map((name) => name.trim())
    .filter((name) => name !== "");
}

/**
 * The subprotocol to answer with: the first offered that wasmlet knows, `""` when none is
 * offered, undefined when none offered is known.
 */
export function negotiateProtocol(
  header: string | string[] | undefined,
): ChannelProtocol | undefined {
  const offered = offeredProtocols(header);
  if (offered.length === 0) return "";
  return offered.find(isChannelProtocol);
}

/** Whether the headers ask to upgrade to a WebSocket (`Upgrade: websocket`, `Connection: upgrade`). */
export function isWebSocketUpgrade(headers: IncomingHttpHeaders): boolean {
  if (headers.upgrade?.toLowerCase() !== "websocket") return false;
  return (headers.connection ?? "")
    .toLowerCase()
    .split(",")
    .some((token) => token.trim() === "upgrade");
}

/** Which streams a session carries. */
export interface StreamOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

// The kubelet reads `input`/`output`/`error`/`tty` (what the API server sends) and takes a
// stream only for exactly "1". wasmlet also takes the pod API's names (`stdin`, `stdout`,
// `stderr`, with "1" or "true") for clients that call it directly.
function flag(query: URLSearchParams, name: string, alias?: string): boolean {
  const value = query.get(name);
  if (value !== null) return value === "1";
  if (alias === undefined) return false;
  const aliased = query.get(alias)?.toLowerCase();
  return aliased === "1" || aliased === "true";
}

/** The streams a request asks for, as the kubelet's NewOptions; throws WASMLET_ERR_BAD_REQUEST. */
export function parseStreamOptions(query: URLSearchParams): StreamOptions {
  const tty = flag(query, "tty");
  const options: StreamOptions = {
    stdin: flag(query, "input", "stdin"),
    stdout: flag(query, "output", "stdout"),
    // A terminal has one output: with tty the kubelet drops stderr.
    stderr: !tty && flag(query, "error", "stderr"),
    tty,
  };
  if (!options.stdin && !options.stdout && !options.stderr) {
    throw serverError(
      "WASMLET_ERR_BAD_REQUEST",
      "you must specify at least 1 of stdin, stdout, stderr",
    );
  }
  return options;
}

/** A message from the client, decoded. */
export type InboundFrame =
  | { kind: "data"; channel: number; data: Buffer }
  /** v5 half-close of a channel. */
  | { kind: "close"; channel: number }
  /** Nothing to act on: empty, an unknown channel, bad base64. */
  | { kind: "ignore" }
  /** A protocol error: the connection ends. */
  | { kind: "fatal"; reason: string };

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function decodeFrame(protocol: ChannelProtocol, message: Buffer): InboundFrame {
  const traits = TRAITS[protocol];
  if (message.length === 0) return { kind: "ignore" };
  const first = message[0] as number;
  if (traits.streamClose && first === STREAM_CLOSE) {
    if (message.length !== 2) {
      return {
        kind: "fatal",
        reason: `a single channel byte must follow the stream close signal, got ${message.length - 1}`,
      };
    }
    const channel = message[1] as number;
    if (channel >= CHANNELS) {
      return { kind: "fatal", reason: `stream close for channel ${channel}, which does not exist` };
    }
    return { kind: "close", channel };
  }
  const channel = traits.base64 ? first - 0x30 : first;
  if (channel < 0 || channel >= CHANNELS) return { kind: "ignore" };
  if (!traits.base64) return { kind: "data", channel, data: message.subarray(1) };
  const text = message.subarray(1).toString("latin1");
  if (!BASE64.test(text)) return { kind: "ignore" };
  return { kind: "data", channel, data: Buffer.from(text, "base64") };
}

/** A message to the client: binary for the binary protocols, text for the base64 ones. */
export function encodeFrame(
  protocol: ChannelProtocol,
  channel: OutputChannel,
  data: Uint8Array,
): Buffer | string {
  if (TRAITS[protocol].base64) {
    return String.fromCharCode(0x30 + channel) + Buffer.from(data).toString("base64");
  }
  const frame = Buffer.allocUnsafe(data.length + 1);
  frame[0] = channel;
  frame.set(data, 1);
  return frame;
}

/** The metav1.Status written on the error channel. */
export interface StreamStatus {
  status: "Success" | "Failure";
  message?: string;
  reason?: string;
  details?: { causes: { reason?: string; message: string }[] };
  code?: number;
}

export function successStatus(): StreamStatus {
  return { status: "Success" };
}

/** A command that ended with a non-zero exit code (what kubectl turns into its own exit code). */
export function exitCodeStatus(exitCode: number, detail?: string): StreamStatus {
  const error = `command terminated with exit code ${exitCode}${detail ? ` (${detail})` : ""}`;
  return {
    status: "Failure",
    message: `command terminated with non-zero exit code: ${error}`,
    reason: "NonZeroExitCode",
    details: { causes: [{ reason: "ExitCode", message: String(exitCode) }] },
  };
}

/** apierrors.NewInternalError, as the kubelet reports a session that failed on its side. */
export function internalErrorStatus(error: string): StreamStatus {
  return {
    status: "Failure",
    message: `Internal error occurred: ${error}`,
    reason: "InternalError",
    details: { causes: [{ message: error }] },
    code: 500,
  };
}

/** The error-channel payload for a status, or undefined when the protocol sends none. */
export function encodeStatus(protocol: ChannelProtocol, status: StreamStatus): Buffer | undefined {
  if (TRAITS[protocol].jsonStatus) {
    // metav1.Status as Go marshals it: an empty ListMeta, then the set fields in field order.
    const { status: outcome, message, reason, details, code } = status;
    return Buffer.from(
      JSON.stringify({ metadata: {}, status: outcome, message, reason, details, code }),
    );
  }
  if (status.status === "Success") return undefined;
  return Buffer.from(status.message ?? "");
}

/** What a session needs of a server-side WebSocket (the `ws` package's WebSocket has it). */
export interface ChannelSocket {
  readonly protocol: string;
  /** Bytes queued on the socket but not yet written to the kernel. */
  readonly bufferedAmount: number;
  send(data: Buffer | string, callback?: (error?: Error) => void): void;
  close(code?: number, reason?: string): void;
  pause(): void;
  resume(): void;
  on(event: "message", listener: (data: Buffer | ArrayBuffer | Buffer[]) => void): unknown;
  on(event: "close", listener: () => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
}

export interface ChannelHandlers {
  /** Data the client sent on stdin; the next chunk waits until the returned promise settles. */
  stdin?: (data: Buffer) => Promise<void> | undefined;
  /** The client half-closed stdin (v5), called after every chunk before it was handled. */
  stdinEnd?: () => void;
  /** The client went away (closed, broke the connection or the protocol) before finish(). */
  gone?: (reason: string) => void;
}

/** Queued output past which write() asks its caller to wait, and attach output is dropped. */
const OUTPUT_HIGH_WATER = 1024 * 1024;
const LOSSY_LIMIT = 4 * 1024 * 1024;
/** Stdin in flight past which the socket stops reading, and below which it reads again. */
const STDIN_HIGH_WATER = 1024 * 1024;
const STDIN_LOW_WATER = 256 * 1024;

function toBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.isBuffer(data) ? data : Buffer.from(data);
}

/**
 * One exec or attach session over an upgraded WebSocket: announces itself on creation, carries
 * output out and stdin in (with backpressure both ways), and ends with finish(status).
 */
export class ChannelConnection {
  readonly protocol: ChannelProtocol;
  readonly #socket: ChannelSocket;
  readonly #options: StreamOptions;
  readonly #handlers: ChannelHandlers;
  #stdinChain: Promise<void> = Promise.resolve();
  #stdinPending = 0;
  #stdinOpen: boolean;
  #paused = false;
  #finished = false;
  #gone = false;

  constructor(
    socket: ChannelSocket,
    protocol: ChannelProtocol,
    options: StreamOptions,
    handlers: ChannelHandlers,
  ) {
    this.#socket = socket;
    this.protocol = protocol;
    this.#options = options;
    this.#handlers = handlers;
    this.#stdinOpen = options.stdin;
    socket.on("message", (data) => this.#receive(toBuffer(data)));
    socket.on("close", () => this.#leave("the client closed the connection"));
    socket.on("error", (error) => this.#leave(`connection error: ${error.message}`));
    const first = options.stdout ? STDOUT : options.stderr ? STDERR : ERROR;
    socket.send(encodeFrame(protocol, first, new Uint8Array(0)));
  }

  /** Whether the session is over: finished, or the client has gone. */
  get closed(): boolean {
    return this.#finished || this.#gone;
  }

  /**
   * Sends output on a channel (dropped when the client did not ask for that stream). Returns a
   * promise when the socket is backed up: it settles once this data is written to the kernel.
   */
  write(channel: OutputChannel, data: Uint8Array): Promise<void> | undefined {
    if (this.closed || !this.#wants(channel) || data.length === 0) return undefined;
    let flushed!: () => void;
    const written = new Promise<void>((resolve) => {
      flushed = resolve;
    });
    this.#socket.send(encodeFrame(this.protocol, channel, data), () => flushed());
    return this.#socket.bufferedAmount > OUTPUT_HIGH_WATER ? written : undefined;
  }

  /** Sends output unless the client is far behind; returns false when it dropped the data. */
  writeLossy(channel: OutputChannel, data: Uint8Array): boolean {
    if (this.#socket.bufferedAmount > LOSSY_LIMIT) return false;
    void this.write(channel, data);
    return true;
  }

  /** Ends the session: ignores further input, writes the status, sends a normal close frame. */
  finish(status: StreamStatus): void {
    if (this.closed) return;
    this.#finished = true;
    this.#stdinOpen = false;
    const payload = encodeStatus(this.protocol, status);
    if (payload) this.#socket.send(encodeFrame(this.protocol, ERROR, payload));
    this.#socket.close(1000);
  }

  #wants(channel: OutputChannel): boolean {
    if (channel === STDOUT) return this.#options.stdout;
    if (channel === STDERR) return this.#options.stderr;
    return true;
  }

  #receive(message: Buffer): void {
    if (this.closed) return;
    const frame = decodeFrame(this.protocol, message);
    switch (frame.kind) {
      case "fatal":
        this.#leave(`protocol error: ${frame.reason}`);
        this.#socket.close(1002, frame.reason.slice(0, 120));
        return;
      case "close":
        if (frame.channel === STDIN) this.#endStdin();
        return;
      case "data":
        // Resize (channel 4) is accepted and ignored: there is no terminal to size.
        if (frame.channel === STDIN && this.#stdinOpen) this.#pushStdin(frame.data);
        return;
      case "ignore":
        return;
    }
  }

  #pushStdin(data: Buffer): void {
    const handler = this.#handlers.stdin;
    if (!handler || data.length === 0) return;
    this.#stdinPending += data.length;
    if (this.#stdinPending > STDIN_HIGH_WATER && !this.#paused) {
      this.#paused = true;
      this.#socket.pause();
    }
    this.#stdinChain = this.#stdinChain
      .then(() => handler(data))
      .catch(() => {})
      .then(() => {
        this.#stdinPending -= data.length;
        if (this.#paused && this.#stdinPending <= STDIN_LOW_WATER) {
          this.#paused = false;
          this.#socket.resume();
        }
      });
  }

  #endStdin(): void {
    if (!this.#stdinOpen) return;
    this.#stdinOpen = false;
    const end = this.#handlers.stdinEnd;
    if (end) void this.#stdinChain.then(end);
  }

  #leave(reason: string): void {
    if (this.closed) return;
    this.#gone = true;
    this.#stdinOpen = false;
    this.#handlers.gone?.(reason);
  }
}
