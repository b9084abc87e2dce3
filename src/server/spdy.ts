// SPDY/3.1 as the Kubernetes streaming protocols use it (port-forward here): frames, header-block
// compression, and a server-side session that multiplexes streams over any byte duplex — the
// socket of a plain `Upgrade: SPDY/3.1` request, or the WebSocket that tunnels SPDY for
// `SPDY/3.1+portforward.k8s.io`. Learned from github.com/moby/spdystream (spdy/types.go, read.go,
// write.go, dictionary.go, connection.go, stream.go), which every Kubernetes client and the API
// server use through k8s.io/streaming/pkg/httpstream/spdy (connection.go, upgrade.go).
//
// Protocol facts relied on:
// - Every frame has an 8-byte header. Control frames: bit 31 set, 15-bit version (3), 16-bit type,
//   then 8-bit flags and 24-bit payload length. Data frames: bit 31 clear, 31-bit stream id, then
//   flags (FIN = 1) and a 24-bit length. Integers are big-endian.
// - Name/value header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are a 32-bit count, then per header
//   a 32-bit length and the lowercase name, a 32-bit length and the value (several values joined
//   by NUL). They are zlib-compressed with the SPDY/3 dictionary (HEADER_DICTIONARY below) in one
//   stateful stream per direction per connection, each block ending with a sync flush: a block can
//   only be decoded after all the blocks before it, in order.
// - Client streams have odd ids, increasing; a server answers SYN_STREAM with SYN_REPLY (accepted)
//   or RST_STREAM (refused). FIN (on data or control frames) half-closes the sender's side; a stream
//   is over when both sides have, or when either sends RST_STREAM. PING from the peer (odd id) is
//   echoed. GOAWAY: no new streams. Unknown control frame types are ignored.
// - Flow control (3.1): each stream and the session as a whole start with a 64 KiB window each
//   way; DATA spends the sender's windows, WINDOW_UPDATE (stream 0 = session) gives them back as
//   the receiver consumes; SETTINGS_INITIAL_WINDOW_SIZE changes every stream's window by the
//   difference. Caveat: spdystream v0.5.1 — kubectl, client-go, the API server — implements none of
//   it (it drops WINDOW_UPDATE and SETTINGS as unhandled frames and never sends WINDOW_UPDATE), so
//   a session can be told not to wait for the peer's windows (`respectPeerWindows: false`) and
//   never refuses data past the window it advertised. Memory stays bounded anyway: a stream's
//   writes wait while the transport is backed up, and the transport stops being read while a
//   stream holds more than MAX_BUFFERED_PER_STREAM bytes its reader has not taken.
import { createHash } from "node:crypto";
import { Duplex } from "node:stream";
import {
  createDeflate,
  createInflate,
  type Deflate,
  type Inflate,
  constants as zlibConstants,
} from "node:zlib";
import { serverError } from "./errors.ts";

export const SPDY_VERSION = 3;

export const FrameType = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;

const FLAG_FIN = 0x01;
const FLAG_UNIDIRECTIONAL = 0x02;
const FLAG_SETTINGS_CLEAR = 0x01;

export const RstStatus = {
  PROTOCOL_ERROR: 1,
  INVALID_STREAM: 2,
  REFUSED_STREAM: 3,
  UNSUPPORTED_VERSION: 4,
  CANCEL: 5,
  INTERNAL_ERROR: 6,
  FLOW_CONTROL_ERROR: 7,
  STREAM_IN_USE: 8,
  STREAM_ALREADY_CLOSED: 9,
  INVALID_CREDENTIALS: 10,
  FRAME_TOO_LARGE: 11,
} as const;

export const GoAwayStatus = { OK: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2 } as const;

export const SettingId = {
  UPLOAD_BANDWIDTH: 1,
  DOWNLOAD_BANDWIDTH: 2,
  ROUND_TRIP_TIME: 3,
  MAX_CONCURRENT_STREAMS: 4,
  CURRENT_CWND: 5,
  DOWNLOAD_RETRANS_RATE: 6,
  INITIAL_WINDOW_SIZE: 7,
  CLIENT_CERTIFICATE_VECTOR_SIZE: 8,
} as const;

/** The window every stream and the session start with, in both directions. */
export const DEFAULT_WINDOW = 64 * 1024;
const MAX_WINDOW = 2 ** 31 - 1;
/** The 24-bit length field: the largest payload a frame can carry. */
export const MAX_FRAME_PAYLOAD = 2 ** 24 - 1;
/** Control frames carry a few headers at most; larger ones are refused rather than buffered. */
const MAX_CONTROL_PAYLOAD = 256 * 1024;
/** Decompressed header blocks past this end the session (a small block may inflate ~1000×). */
const MAX_HEADER_BLOCK = 1024 * 1024;
const MAX_HEADER_COUNT = 1000;
/** Data frames wasmlet sends carry at most this much (kubectl's io.Copy sends 32 KiB frames). */
const MAX_DATA_CHUNK = 32 * 1024;
/** Unread bytes a stream may hold before the transport stops being read. */
export const MAX_BUFFERED_PER_STREAM = 256 * 1024;

// The SPDY/3 header-compression dictionary (draft 3, section 2.6.10.1): 65 length-prefixed words,
// then a run of status codes, reason phrases, dates and media types. 1423 bytes; the unit test
// checks its SHA-256 against the bytes of spdystream's spdy/dictionary.go.
const DICTIONARY_WORDS = [
  "options",
  "head",
  "post",
  "put",
  "delete",
  "trace",
  "accept",
  "accept-charset",
  "accept-encoding",
  "accept-language",
  "accept-ranges",
  "age",
  "allow",
  "authorization",
  "cache-control",
  "connection",
  "content-base",
  "content-encoding",
  "content-language",
  "content-length",
  "content-location",
  "content-md5",
  "content-range",
  "content-type",
  "date",
  "etag",
  "expect",
  "expires",
  "from",
  "host",
  "if-match",
  "if-modified-since",
  "if-none-match",
  "if-range",
  "if-unmodified-since",
  "last-modified",
  "location",
  "max-forwards",
  "pragma",
  "proxy-authenticate",
  "proxy-authorization",
  "range",
  "referer",
  "retry-after",
  "server",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "user-agent",
  "vary",
  "via",
  "warning",
  "www-authenticate",
  "method",
  "get",
  "status",
  "200 OK",
  "version",
  "HTTP/1.1",
  "url",
  "public",
  "set-cookie",
  "keep-alive",
  "origin",
];
const DICTIONARY_TAIL =
  "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505" +
  "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request" +
  "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented" +
  "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 " +
  "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif," +
  "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=" +
  "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

export const HEADER_DICTIONARY: Buffer = Buffer.concat([
  ...DICTIONARY_WORDS.flatMap((word) => [uint32(word.length), Buffer.from(word, "latin1")]),
  Buffer.from(DICTIONARY_TAIL, "latin1"),
]);

/** The dictionary's SHA-256, hex, for checking it was built right. */
export function dictionaryDigest(): string {
  return createHash("sha256").update(HEADER_DICTIONARY).digest("hex");
}

function uint32(value: number): Buffer {
  const bytes = Buffer.allocUnsafe(4);
  bytes.writeUInt32BE(value >>> 0);
  return bytes;
}

/** Headers as SPDY carries them: lowercase names, each with one or more values. */
export type HeaderMap = Map<string, string[]>;

export interface Setting {
  id: number;
  /** FLAG_SETTINGS_PERSIST_VALUE (1) / PERSISTED (2). */
  flags: number;
  value: number;
}

/** A frame; header blocks stay compressed here (see HeaderCompressor/HeaderDecompressor). */
export type Frame =
  | { type: "data"; streamId: number; fin: boolean; data: Buffer }
  | {
      type: "syn_stream";
      streamId: number;
      associatedStreamId: number;
      /** 0 (highest) to 7. */
      priority: number;
      slot: number;
      fin: boolean;
      unidirectional: boolean;
      headerBlock: Buffer;
    }
  | { type: "syn_reply"; streamId: number; fin: boolean; headerBlock: Buffer }
  | { type: "rst_stream"; streamId: number; status: number }
  | { type: "settings"; clearPersisted: boolean; settings: Setting[] }
  | { type: "ping"; id: number }
  | { type: "goaway"; lastGoodStreamId: number; status: number }
  | { type: "headers"; streamId: number; fin: boolean; headerBlock: Buffer }
  | { type: "window_update"; streamId: number; delta: number }
  /** A control frame of a type SPDY/3.1 does not define (CREDENTIAL, …): to be ignored. */
  | { type: "unknown"; frameType: number; flags: number; payload: Buffer };

/** A violation of the protocol by the peer: the session ends with GOAWAY(PROTOCOL_ERROR). */
export class SpdyProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SpdyProtocolError";
  }
}

const STREAM_ID_MASK = 0x7fffffff;

function controlFrame(type: number, flags: number, payload: Buffer): Buffer {
  if (payload.length > MAX_FRAME_PAYLOAD) throw new RangeError("SPDY frame payload too large");
  const header = Buffer.allocUnsafe(8);
  header.writeUInt32BE((0x80000000 | (SPDY_VERSION << 16) | type) >>> 0, 0);
  header.writeUInt32BE(((flags << 24) | payload.length) >>> 0, 4);
  return Buffer.concat([header, payload]);
}

function streamIdField(streamId: number): Buffer {
  return uint32(streamId & STREAM_ID_MASK);
}

/** The bytes of a frame. */
export function serializeFrame(frame: Frame): Buffer {
  switch (frame.type) {
    case "data": {
      if (frame.data.length > MAX_FRAME_PAYLOAD) throw new RangeError("SPDY data frame too large");
      const header = Buffer.allocUnsafe(8);
      header.writeUInt32BE(frame.streamId & STREAM_ID_MASK, 0);
      header.writeUInt32BE((((frame.fin ? FLAG_FIN : 0) << 24) | frame.data.length) >>> 0, 4);
      return Buffer.concat([header, frame.data]);
    }
    case "syn_stream": {
      const fixed = Buffer.allocUnsafe(10);
      fixed.writeUInt32BE(frame.streamId & STREAM_ID_MASK, 0);
      fixed.writeUInt32BE(frame.associatedStreamId & STREAM_ID_MASK, 4);
      fixed[8] = (frame.priority & 0x07) << 5;
      fixed[9] = frame.slot & 0xff;
      const flags = (frame.fin ? FLAG_FIN : 0) | (frame.unidirectional ? FLAG_UNIDIRECTIONAL : 0);
      return controlFrame(FrameType.SYN_STREAM, flags, Buffer.concat([fixed, frame.headerBlock]));
    }
    case "syn_reply":
    case "headers": {
      const type = frame.type === "syn_reply" ? FrameType.SYN_REPLY : FrameType.HEADERS;
      const payload = Buffer.concat([streamIdField(frame.streamId), frame.headerBlock]);
      return controlFrame(type, frame.fin ? FLAG_FIN : 0, payload);
    }
    case "rst_stream":
      return controlFrame(
        FrameType.RST_STREAM,
        0,
        Buffer.concat([streamIdField(frame.streamId), uint32(frame.status)]),
      );
    case "settings": {
      const payload = Buffer.allocUnsafe(4 + 8 * frame.settings.length);
      payload.writeUInt32BE(frame.settings.length, 0);
      frame.settings.forEach((setting, index) => {
        payload.writeUInt32BE(
          (((setting.flags & 0xff) << 24) | (setting.id & 0xffffff)) >>> 0,
          4 + 8 * index,
        );
        payload.writeUInt32BE(setting.value >>> 0, 8 + 8 * index);
      });
      return controlFrame(
        FrameType.SETTINGS,
        frame.clearPersisted ? FLAG_SETTINGS_CLEAR : 0,
        payload,
      );
    }
    case "ping":
      return controlFrame(FrameType.PING, 0, uint32(frame.id));
    case "goaway":
      return controlFrame(
        FrameType.GOAWAY,
        0,
        Buffer.concat([streamIdField(frame.lastGoodStreamId), uint32(frame.status)]),
      );
    case "window_update":
      return controlFrame(
        FrameType.WINDOW_UPDATE,
        0,
        Buffer.concat([streamIdField(frame.streamId), uint32(frame.delta & STREAM_ID_MASK)]),
      );
    case "unknown":
      return controlFrame(frame.frameType, frame.flags, frame.payload);
  }
}

/** Bytes received but not yet framed; gathers a frame's bytes only once all have arrived. */
class ByteQueue {
  #chunks: Buffer[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** The first n bytes, left in the queue (n ≤ length). */
  peek(n: number): Buffer {
    this.#gather(n);
    return (this.#chunks[0] as Buffer).subarray(0, n);
  }

  /** Removes and returns the first n bytes (n ≤ length). */
  take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    this.#gather(n);
    const first = this.#chunks[0] as Buffer;
    const taken = first.subarray(0, n);
    if (first.length === n) this.#chunks.shift();
    else this.#chunks[0] = first.subarray(n);
    this.#length -= n;
    return taken;
  }

  #gather(n: number): void {
    if ((this.#chunks[0]?.length ?? 0) >= n) return;
    let count = 0;
    let size = 0;
    while (size < n) size += (this.#chunks[count++] as Buffer).length;
    this.#chunks.splice(0, count, Buffer.concat(this.#chunks.slice(0, count), size));
  }
}

/** Cuts received bytes into frames. */
export class FrameReader {
  readonly #queue = new ByteQueue();

  push(chunk: Buffer): void {
    this.#queue.push(chunk);
  }

  /** Bytes held that do not make a whole frame yet. */
  get buffered(): number {
    return this.#queue.length;
  }

  /** The next whole frame, or undefined until more bytes arrive; throws SpdyProtocolError. */
  next(): Frame | undefined {
    if (this.#queue.length < 8) return undefined;
    const header = this.#queue.peek(8);
    const first = header.readUInt32BE(0);
    const flags = header[4] as number;
    const length = header.readUInt32BE(4) & 0xffffff;
    const control = (first & 0x80000000) !== 0;
    if (control && length > MAX_CONTROL_PAYLOAD) {
      throw new SpdyProtocolError(`a control frame of ${length} bytes is larger than allowed`);
    }
    if (this.#queue.length < 8 + length) return undefined;
    this.#queue.take(8);
    const payload = this.#queue.take(length);
    if (!control) {
      const streamId = first & STREAM_ID_MASK;
      if (streamId === 0) throw new SpdyProtocolError("a data frame for stream 0");
      return { type: "data", streamId, fin: (flags & FLAG_FIN) !== 0, data: payload };
    }
    const version = (first >>> 16) & 0x7fff;
    if (version !== SPDY_VERSION) {
      throw new SpdyProtocolError(`SPDY version ${version} is not supported (only 3)`);
    }
    return parseControlFrame(first & 0xffff, flags, payload);
  }
}

function need(payload: Buffer, size: number, what: string, exact = false): void {
  if (exact ? payload.length !== size : payload.length < size) {
    throw new SpdyProtocolError(`a ${what} frame of ${payload.length} bytes is malformed`);
  }
}

function nonZeroStream(id: number, what: string): number {
  if (id === 0) throw new SpdyProtocolError(`a ${what} frame for stream 0`);
  return id;
}

function parseControlFrame(type: number, flags: number, payload: Buffer): Frame {
  const fin = (flags & FLAG_FIN) !== 0;
  switch (type) {
    case FrameType.SYN_STREAM:
      need(payload, 10, "SYN_STREAM");
      return {
        type: "syn_stream",
        streamId: nonZeroStream(payload.readUInt32BE(0) & STREAM_ID_MASK, "SYN_STREAM"),
        associatedStreamId: payload.readUInt32BE(4) & STREAM_ID_MASK,
        priority: (payload[8] as number) >> 5,
        slot: payload[9] as number,
        fin,
        unidirectional: (flags & FLAG_UNIDIRECTIONAL) !== 0,
        headerBlock: payload.subarray(10),
      };
    case FrameType.SYN_REPLY:
    case FrameType.HEADERS: {
      const name = type === FrameType.SYN_REPLY ? "SYN_REPLY" : "HEADERS";
      need(payload, 4, name);
      const streamId = nonZeroStream(payload.readUInt32BE(0) & STREAM_ID_MASK, name);
      const headerBlock = payload.subarray(4);
      return type === FrameType.SYN_REPLY
        ? { type: "syn_reply", streamId, fin, headerBlock }
        : { type: "headers", streamId, fin, headerBlock };
    }
    case FrameType.RST_STREAM: {
      need(payload, 8, "RST_STREAM", true);
      const status = payload.readUInt32BE(4);
      if (status === 0) throw new SpdyProtocolError("a RST_STREAM frame with status 0");
      const streamId = nonZeroStream(payload.readUInt32BE(0) & STREAM_ID_MASK, "RST_STREAM");
      return { type: "rst_stream", streamId, status };
    }
    case FrameType.SETTINGS: {
      need(payload, 4, "SETTINGS");
      const count = payload.readUInt32BE(0);
      if (count > (payload.length - 4) / 8) {
        throw new SpdyProtocolError(`a SETTINGS frame claims ${count} entries it does not hold`);
      }
      const settings: Setting[] = [];
      for (let index = 0; index < count; index++) {
        const idAndFlags = payload.readUInt32BE(4 + 8 * index);
        settings.push({
          id: idAndFlags & 0xffffff,
          flags: idAndFlags >>> 24,
          value: payload.readUInt32BE(8 + 8 * index),
        });
      }
      return { type: "settings", clearPersisted: (flags & FLAG_SETTINGS_CLEAR) !== 0, settings };
    }
    case FrameType.PING:
      need(payload, 4, "PING", true);
      return { type: "ping", id: payload.readUInt32BE(0) };
    case FrameType.GOAWAY:
      need(payload, 8, "GOAWAY", true);
      return {
        type: "goaway",
        lastGoodStreamId: payload.readUInt32BE(0) & STREAM_ID_MASK,
        status: payload.readUInt32BE(4),
      };
    case FrameType.WINDOW_UPDATE:
      need(payload, 8, "WINDOW_UPDATE", true);
      return {
        type: "window_update",
        streamId: payload.readUInt32BE(0) & STREAM_ID_MASK,
        delta: payload.readUInt32BE(4) & STREAM_ID_MASK,
      };
    default:
      return { type: "unknown", frameType: type, flags, payload };
  }
}

/** The uncompressed name/value block. */
export function encodeHeaderBlock(headers: ReadonlyMap<string, readonly string[]>): Buffer {
  const parts: Buffer[] = [uint32(headers.size)];
  for (const [name, values] of headers) {
    const nameBytes = Buffer.from(name.toLowerCase(), "utf8");
    const valueBytes = Buffer.from(values.join("\0"), "utf8");
    parts.push(uint32(nameBytes.length), nameBytes, uint32(valueBytes.length), valueBytes);
  }
  return Buffer.concat(parts);
}

/** Reads an uncompressed name/value block; throws SpdyProtocolError when it is malformed. */
export function decodeHeaderBlock(block: Buffer): HeaderMap {
  const malformed = (why: string) => new SpdyProtocolError(`malformed header block: ${why}`);
  let offset = 0;
  const read = (size: number): Buffer => {
    if (offset + size > block.length) throw malformed("it ends early");
    const bytes = block.subarray(offset, offset + size);
    offset += size;
    return bytes;
  };
  const readString = (): string => read(read(4).readUInt32BE(0)).toString("utf8");
  const count = read(4).readUInt32BE(0);
  if (count > MAX_HEADER_COUNT) throw malformed(`${count} headers`);
  const headers: HeaderMap = new Map();
  for (let index = 0; index < count; index++) {
    const name = readString().toLowerCase();
    if (name === "") throw malformed("an empty header name");
    const values = readString().split("\0");
    headers.set(name, [...(headers.get(name) ?? []), ...values]);
  }
  if (offset !== block.length) throw malformed("bytes after the last header");
  return headers;
}

/** One direction's zlib context: blocks in, their output out, strictly in order. */
class ZlibContext {
  readonly #stream: Deflate | Inflate;
  readonly #limit: number;
  #output: Buffer[] = [];
  #outputBytes = 0;
  #failure: Error | undefined;
  #rejectPending: ((error: Error) => void) | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(stream: Deflate | Inflate, limit: number) {
    this.#stream = stream;
    this.#limit = limit;
    // Paused mode, drained on 'readable' and once more when a flush completes: every byte a
    // block produced is collected before the flush callback says the block is done.
    stream.on("readable", () => this.#drain());
    stream.on("error", (error: Error) => this.#fail(error));
  }

  /** The output of one block, flushed with Z_SYNC_FLUSH. */
  process(input: Buffer): Promise<Buffer> {
    const step = this.#queue.then(
      () =>
        new Promise<Buffer>((resolve, reject) => {
          if (this.#failure) {
            reject(this.#failure);
            return;
          }
          this.#rejectPending = reject;
          this.#stream.write(input);
          this.#stream.flush(zlibConstants.Z_SYNC_FLUSH, () => {
            this.#rejectPending = undefined;
            this.#drain();
            const output = Buffer.concat(this.#output);
            this.#output = [];
            this.#outputBytes = 0;
            if (this.#failure) reject(this.#failure);
            else resolve(output);
          });
        }),
    );
    this.#queue = step.catch(() => {});
    return step;
  }

  close(): void {
    this.#stream.destroy();
  }

  #drain(): void {
    while (!this.#failure) {
      const chunk = this.#stream.read() as Buffer | null;
      if (chunk === null) return;
      this.#output.push(chunk);
      this.#outputBytes += chunk.length;
      if (this.#outputBytes > this.#limit) {
        this.#fail(new SpdyProtocolError(`a header block inflates past ${this.#limit} bytes`));
      }
    }
  }

  /** A context that failed stays failed: the blocks after the one that broke it are lost too. */
  #fail(error: Error): void {
    this.#failure ??= error;
    this.#rejectPending?.(this.#failure);
    this.#rejectPending = undefined;
    this.#stream.destroy();
  }
}

/** Compresses the header blocks one side sends (one per connection and direction). */
export class HeaderCompressor {
  readonly #zlib = new ZlibContext(
    createDeflate({ dictionary: HEADER_DICTIONARY }),
    MAX_FRAME_PAYLOAD,
  );

  compress(headers: ReadonlyMap<string, readonly string[]>): Promise<Buffer> {
    return this.#zlib.process(encodeHeaderBlock(headers));
  }

  close(): void {
    this.#zlib.close();
  }
}

/** Decompresses the header blocks one side receives (one per connection and direction). */
export class HeaderDecompressor {
  readonly #zlib = new ZlibContext(
    createInflate({ dictionary: HEADER_DICTIONARY }),
    MAX_HEADER_BLOCK,
  );

  async decompress(block: Buffer): Promise<HeaderMap> {
    let inflated: Buffer;
    try {
      inflated = await this.#zlib.process(block);
    } catch (error) {
      if (error instanceof SpdyProtocolError) throw error;
      throw new SpdyProtocolError(
        `a header block does not decompress: ${(error as Error).message}`,
      );
    }
    return decodeHeaderBlock(inflated);
  }

  close(): void {
    this.#zlib.close();
  }
}

/** What a stream asks of its session. */
interface StreamLink {
  write(stream: SpdyStream, chunk: Buffer): Promise<void>;
  finish(stream: SpdyStream): Promise<void>;
  read(stream: SpdyStream): void;
  destroyed(stream: SpdyStream): void;
}

/**
 * One stream the peer opened, as a Node duplex: its readable side is the peer's data (ending at
 * the peer's FIN), its writable side becomes DATA frames (end() sends FIN). destroy() before both
 * sides are done resets the stream (RST_STREAM CANCEL); a reset by the peer or the end of the
 * session destroys it without an error (`peerResetStatus` tells a peer's reset apart).
 */
export class SpdyStream extends Duplex {
  readonly id: number;
  readonly headers: ReadonlyMap<string, readonly string[]>;
  /** The status of the RST_STREAM the peer sent, when it reset this stream. */
  peerResetStatus: number | undefined;
  readonly #link: StreamLink;

  constructor(id: number, headers: HeaderMap, link: StreamLink) {
    super({
      allowHalfOpen: true,
      readableHighWaterMark: DEFAULT_WINDOW,
      writableHighWaterMark: DEFAULT_WINDOW,
    });
    this.id = id;
    this.headers = headers;
    this.#link = link;
  }

  /** The first value of a header. */
  header(name: string): string | undefined {
    return this.headers.get(name.toLowerCase())?.[0];
  }

  override _read(): void {
    this.#link.read(this);
  }

  // Every way of taking data (read(), 'data' in flowing mode, pipe, async iteration) goes through
  // read(); _read alone is not called again until the next push.
  override read(size?: number): unknown {
    const chunk = super.read(size);
    if (chunk !== null) this.#link.read(this);
    return chunk;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error) => void) {
    this.#link.write(this, chunk).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error) => void): void {
    this.#link.finish(this).then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#link.destroyed(this);
    callback(error);
  }
}

/** What the session tracks of a stream. */
interface StreamEntry {
  stream: SpdyStream;
  /** Settles once the SYN_REPLY is written: nothing else is sent on the stream before. */
  replied: Promise<void>;
  sendWindow: number;
  /** Writes waiting for the peer's window to open. */
  windowWaiters: (() => void)[];
  /** Bytes of the peer's data pushed into the stream, taken by its reader, acknowledged. */
  received: number;
  consumed: number;
  acknowledged: number;
  remoteClosed: boolean;
  localClosed: boolean;
  /** Reset by either side: nothing more is sent. */
  reset: boolean;
}

export interface SpdySessionOptions {
  /**
   * A stream the peer opened. Return false (or throw) to refuse it with RST_STREAM; otherwise it
   * is accepted with a SYN_REPLY. The stream can be written at once: data waits for the reply.
   */
  onStream: (stream: SpdyStream) => boolean | undefined;
  /**
   * Whether writes wait for the peer's stream and session windows (default true). False for
   * peers that do no flow control (spdystream): they never open a window again.
   */
  respectPeerWindows?: boolean;
  /** Ends the session after this long without a frame either way (0: never). */
  idleTimeoutMs?: number;
}

const WINDOW_UPDATE_THRESHOLD = DEFAULT_WINDOW / 2;
/** After ending the transport, how long the peer has to close it before it is destroyed. */
const CLOSE_GRACE_MS = 5_000;

/**
 * The server side of a SPDY/3.1 connection over a byte duplex (a socket, or a WebSocket tunnel
 * adapted to one). It ends when the transport closes, on a protocol error (GOAWAY
 * PROTOCOL_ERROR), when idle too long, or on close(); every stream is then destroyed.
 */
export class SpdySession {
  readonly #transport: Duplex;
  readonly #options: SpdySessionOptions;
  readonly #respectWindows: boolean;
  readonly #reader = new FrameReader();
  readonly #compressor = new HeaderCompressor();
  readonly #decompressor = new HeaderDecompressor();
  readonly #streams = new Map<number, StreamEntry>();
  readonly #byStream = new WeakMap<SpdyStream, StreamEntry>();
  /** Streams holding more unread data than allowed: the transport is paused while any does. */
  readonly #overfull = new Set<StreamEntry>();
  #replies: Promise<void> = Promise.resolve();
  #lastPeerStreamId = 0;
  #initialWindow = DEFAULT_WINDOW;
  #sendWindow = DEFAULT_WINDOW;
  /** Consumed bytes not yet given back to the peer's session window. */
  #sessionUnacknowledged = 0;
  #pumping = false;
  #backedUp = false;
  #drainWaiters: (() => void)[] = [];
  #peerWentAway = false;
  #ended = false;
  #endReason = "";
  #idleTimer: NodeJS.Timeout | undefined;
  readonly #link: StreamLink;
  /** Settles with the reason once the session is over and the transport closed. */
  readonly closed: Promise<string>;
  #resolveClosed!: (reason: string) => void;

  constructor(transport: Duplex, options: SpdySessionOptions) {
    this.#transport = transport;
    this.#options = options;
    this.#respectWindows = options.respectPeerWindows ?? true;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    this.#link = {
      write: (stream, chunk) => this.#writeData(this.#entry(stream), chunk),
      finish: (stream) => this.#finish(this.#entry(stream)),
      read: (stream) => this.#taken(this.#byStream.get(stream)),
      destroyed: (stream) => this.#streamDestroyed(this.#byStream.get(stream)),
    };
    transport.on("data", (chunk: Buffer) => this.#receive(chunk));
    transport.on("drain", () => this.#drained());
    transport.on("end", () => this.#end("the peer ended the connection"));
    transport.on("error", (error: Error) => this.#end(`connection error: ${error.message}`));
    transport.on("close", () => {
      this.#end("the connection closed");
      this.#resolveClosed(this.#endReason);
    });
    if (options.idleTimeoutMs) {
      this.#idleTimer = setTimeout(() => this.close("idle timeout"), options.idleTimeoutMs);
      this.#idleTimer.unref();
    }
  }

  /** Streams open now. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** Why the session ended ("" while it runs). */
  get endReason(): string {
    return this.#endReason;
  }

  /** Ends the session: GOAWAY, every stream reset, the transport ended. */
  close(reason = "closed"): void {
    if (this.#ended) return;
    this.#sendGoAway(GoAwayStatus.OK);
    this.#end(reason);
  }

  #entry(stream: SpdyStream): StreamEntry {
    const entry = this.#byStream.get(stream);
    if (!entry)
      throw serverError(
        "WASMLET_ERR_SPDY_STREAM",
        `stream ${stream.id} is not part of this session`,
      );
    return entry;
  }

  #touch(): void {
    this.#idleTimer?.refresh();
  }

  #send(frame: Frame): void {
    if (this.#ended) return;
    this.#touch();
    if (!this.#transport.write(serializeFrame(frame))) this.#backedUp = true;
  }

  #drained(): void {
    this.#backedUp = false;
    for (const resume of this.#drainWaiters.splice(0)) resume();
  }

  #receive(chunk: Buffer): void {
    if (this.#ended) return;
    this.#touch();
    this.#reader.push(chunk);
    this.#pump();
  }

  /**
   * Handles frames in order; one that carries headers waits for their decompression. Stops while
   * a stream holds too much unread data (frames may have queued behind a decompression).
   */
  #pump(): void {
    if (!this.#pumping && this.#overfull.size === 0) void this.#handleFrames();
  }

  async #handleFrames(): Promise<void> {
    this.#pumping = true;
    try {
      while (!this.#ended && this.#overfull.size === 0) {
        const frame = this.#reader.next();
        if (!frame) break;
        const handled = this.#handle(frame);
        if (handled) await handled;
      }
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#pumping = false;
    }
  }

  #fail(error: unknown): void {
    if (this.#ended) return;
    const protocol = error instanceof SpdyProtocolError;
    this.#sendGoAway(protocol ? GoAwayStatus.PROTOCOL_ERROR : GoAwayStatus.INTERNAL_ERROR);
    this.#end(`${protocol ? "protocol error" : "internal error"}: ${(error as Error).message}`);
  }

  #sendGoAway(status: number): void {
    this.#send({ type: "goaway", lastGoodStreamId: this.#lastPeerStreamId, status });
  }

  #handle(frame: Frame): Promise<void> | undefined {
    switch (frame.type) {
      case "data":
        this.#onData(frame.streamId, frame.data, frame.fin);
        return undefined;
      case "syn_stream":
        // Decompressed even when refused: the zlib context must see every block.
        return this.#decompressor.decompress(frame.headerBlock).then((headers) => {
          if (!this.#ended) this.#onSynStream(frame, headers);
        });
      case "syn_reply":
        return this.#decompressor.decompress(frame.headerBlock).then(() => {
          // wasmlet opens no streams: nothing the peer could reply to.
          this.#resetUnknown(frame.streamId, RstStatus.PROTOCOL_ERROR);
        });
      case "headers":
        return this.#decompressor.decompress(frame.headerBlock).then(() => {
          if (frame.fin) this.#onData(frame.streamId, Buffer.alloc(0), true);
        });
      case "rst_stream":
        this.#onReset(frame.streamId, frame.status);
        return undefined;
      case "settings":
        this.#onSettings(frame.settings);
        return undefined;
      case "ping":
        // Odd ids are the client's pings (ours would be even): echo them.
        if (frame.id % 2 === 1) this.#send(frame);
        return undefined;
      case "goaway":
        this.#peerWentAway = true;
        if (this.#streams.size === 0) this.close("the peer went away");
        return undefined;
      case "window_update":
        this.#onWindowUpdate(frame.streamId, frame.delta);
        return undefined;
      case "unknown":
        return undefined;
    }
  }

  #onSynStream(frame: Extract<Frame, { type: "syn_stream" }>, headers: HeaderMap): void {
    const id = frame.streamId;
    if (id % 2 === 0 || id <= this.#lastPeerStreamId) {
      // As spdystream: a client stream id must be odd and larger than the last one.
      this.#resetUnknown(id, RstStatus.PROTOCOL_ERROR);
      return;
    }
    this.#lastPeerStreamId = id;
    if (this.#peerWentAway || frame.unidirectional) {
      // Unidirectional streams are server push: a port-forward client never opens one.
      this.#resetUnknown(id, RstStatus.REFUSED_STREAM);
      return;
    }
    const stream = new SpdyStream(id, headers, this.#link);
    const entry: StreamEntry = {
      stream,
      replied: Promise.resolve(),
      sendWindow: this.#initialWindow,
      windowWaiters: [],
      received: 0,
      consumed: 0,
      acknowledged: 0,
      remoteClosed: false,
      localClosed: false,
      reset: false,
    };
    this.#streams.set(id, entry);
    this.#byStream.set(stream, entry);
    let accepted = false;
    try {
      accepted = this.#options.onStream(stream) !== false;
    } catch {
      accepted = false;
    }
    if (!accepted) {
      this.#forget(entry);
      entry.reset = true;
      this.#send({ type: "rst_stream", streamId: id, status: RstStatus.REFUSED_STREAM });
      stream.destroy();
      return;
    }
    entry.replied = this.#reply(entry);
    if (frame.fin) this.#onData(id, Buffer.alloc(0), true);
  }

  /** Queues the SYN_REPLY: header blocks must go out in the order they were compressed. */
  #reply(entry: StreamEntry): Promise<void> {
    const replied = this.#replies.then(async () => {
      const headerBlock = await this.#compressor.compress(new Map());
      this.#send({ type: "syn_reply", streamId: entry.stream.id, fin: false, headerBlock });
    });
    this.#replies = replied.catch((error: unknown) => this.#fail(error));
    return this.#replies;
  }

  #resetUnknown(streamId: number, status: number): void {
    this.#send({ type: "rst_stream", streamId, status });
  }

  #onData(streamId: number, data: Buffer, fin: boolean): void {
    const entry = this.#streams.get(streamId);
    if (!entry) {
      // Data in flight for a stream already over: dropped, but the session window gets it back.
      this.#acknowledgeSession(data.length);
      if (streamId > this.#lastPeerStreamId) this.#resetUnknown(streamId, RstStatus.INVALID_STREAM);
      return;
    }
    if (entry.remoteClosed) {
      this.#acknowledgeSession(data.length);
      this.#resetStream(entry, RstStatus.STREAM_ALREADY_CLOSED);
      return;
    }
    const { stream } = entry;
    if (data.length > 0) {
      // Never refused for overrunning the window advertised: spdystream ignores windows.
      entry.received += data.length;
      stream.push(data);
      if (stream.readableLength > MAX_BUFFERED_PER_STREAM && !this.#overfull.has(entry)) {
        this.#overfull.add(entry);
        this.#transport.pause();
      }
    }
    if (fin) {
      entry.remoteClosed = true;
      stream.push(null);
      this.#closeIfDone(entry);
    }
    this.#acknowledge(entry);
  }

  /** The stream's reader took data (or wants more): give window back, maybe resume reading. */
  #taken(entry: StreamEntry | undefined): void {
    if (!entry) return;
    this.#acknowledge(entry);
    if (this.#overfull.has(entry) && entry.stream.readableLength <= MAX_BUFFERED_PER_STREAM) {
      this.#release(entry);
    }
  }

  /** A stream no longer holds too much: when none does, reading and handling frames resume. */
  #release(entry: StreamEntry): void {
    if (!this.#overfull.delete(entry) || this.#overfull.size > 0 || this.#ended) return;
    this.#transport.resume();
    this.#pump();
  }

  #acknowledge(entry: StreamEntry): void {
    const consumed = entry.received - entry.stream.readableLength;
    if (consumed > entry.consumed) {
      this.#acknowledgeSession(consumed - entry.consumed);
      entry.consumed = consumed;
    }
    const owed = entry.consumed - entry.acknowledged;
    if (!entry.remoteClosed && !entry.reset && owed >= WINDOW_UPDATE_THRESHOLD) {
      entry.acknowledged = entry.consumed;
      this.#send({ type: "window_update", streamId: entry.stream.id, delta: owed });
    }
  }

  #acknowledgeSession(bytes: number): void {
    this.#sessionUnacknowledged += bytes;
    if (this.#sessionUnacknowledged >= WINDOW_UPDATE_THRESHOLD) {
      this.#send({ type: "window_update", streamId: 0, delta: this.#sessionUnacknowledged });
      this.#sessionUnacknowledged = 0;
    }
  }

  #onReset(streamId: number, status: number): void {
    const entry = this.#streams.get(streamId);
    if (!entry) return;
    entry.reset = true;
    entry.stream.peerResetStatus = status;
    this.#forget(entry);
    entry.stream.destroy();
  }

  #onSettings(settings: readonly Setting[]): void {
    for (const setting of settings) {
      if (setting.id !== SettingId.INITIAL_WINDOW_SIZE) continue;
      if (setting.value > MAX_WINDOW) {
        this.#fail(new SpdyProtocolError(`an initial window of ${setting.value} bytes`));
        return;
      }
      const change = setting.value - this.#initialWindow;
      this.#initialWindow = setting.value;
      for (const entry of this.#streams.values()) {
        entry.sendWindow += change;
        this.#wake(entry);
      }
    }
  }

  #onWindowUpdate(streamId: number, delta: number): void {
    if (streamId === 0) {
      if (this.#sendWindow + delta > MAX_WINDOW) {
        this.#fail(new SpdyProtocolError("the session window grows past 2^31-1"));
        return;
      }
      this.#sendWindow += delta;
      for (const entry of this.#streams.values()) this.#wake(entry);
      return;
    }
    const entry = this.#streams.get(streamId);
    if (!entry) return;
    if (entry.sendWindow + delta > MAX_WINDOW) {
      this.#resetStream(entry, RstStatus.FLOW_CONTROL_ERROR);
      return;
    }
    entry.sendWindow += delta;
    this.#wake(entry);
  }

  #wake(entry: StreamEntry): void {
    for (const resume of entry.windowWaiters.splice(0)) resume();
  }

  /** Sends a chunk as DATA frames, within the peer's windows when they are respected. */
  async #writeData(entry: StreamEntry, chunk: Buffer): Promise<void> {
    await entry.replied;
    let offset = 0;
    while (offset < chunk.length) {
      if (entry.reset || this.#ended)
        throw serverError("WASMLET_ERR_SPDY_STREAM", `stream ${entry.stream.id} is closed`);
      let room = MAX_DATA_CHUNK;
      if (this.#respectWindows) room = Math.min(room, entry.sendWindow, this.#sendWindow);
      if (room <= 0) {
        await new Promise<void>((resolve) => entry.windowWaiters.push(resolve));
        continue;
      }
      const size = Math.min(room, chunk.length - offset);
      this.#send({
        type: "data",
        streamId: entry.stream.id,
        fin: false,
        data: chunk.subarray(offset, offset + size),
      });
      entry.sendWindow -= size;
      this.#sendWindow -= size;
      offset += size;
    }
    // The write completes once the transport takes more again: that is the backpressure.
    if (this.#backedUp && !this.#ended) {
      await new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
    }
  }

  async #finish(entry: StreamEntry): Promise<void> {
    await entry.replied;
    if (entry.reset || this.#ended) return;
    entry.localClosed = true;
    this.#send({ type: "data", streamId: entry.stream.id, fin: true, data: Buffer.alloc(0) });
    this.#closeIfDone(entry);
  }

  #closeIfDone(entry: StreamEntry): void {
    if (entry.localClosed && entry.remoteClosed) this.#forget(entry);
  }

  #resetStream(entry: StreamEntry, status: number): void {
    if (!entry.reset) {
      entry.reset = true;
      void entry.replied.then(() =>
        this.#send({ type: "rst_stream", streamId: entry.stream.id, status }),
      );
    }
    this.#forget(entry);
    entry.stream.destroy();
  }

  #streamDestroyed(entry: StreamEntry | undefined): void {
    if (!entry || !this.#streams.has(entry.stream.id)) return;
    this.#resetStream(entry, RstStatus.CANCEL);
  }

  /** Drops a stream that is over, giving back the window its unread data held. */
  #forget(entry: StreamEntry): void {
    if (!this.#streams.delete(entry.stream.id)) return;
    this.#acknowledgeSession(entry.received - entry.consumed);
    entry.consumed = entry.received;
    this.#wake(entry);
    this.#release(entry);
    if (this.#peerWentAway && this.#streams.size === 0) this.close("the peer went away");
  }

  #end(reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#endReason = reason;
    clearTimeout(this.#idleTimer);
    const entries = [...this.#streams.values()];
    this.#streams.clear();
    this.#overfull.clear();
    for (const entry of entries) {
      entry.reset = true;
      this.#wake(entry);
      entry.stream.destroy();
    }
    this.#drained();
    this.#compressor.close();
    this.#decompressor.close();
    const transport = this.#transport;
    if (transport.destroyed) return;
    transport.end();
    setTimeout(() => transport.destroy(), CLOSE_GRACE_MS).unref();
  }
}
