// The client side of SPDY/3.1 for tests, built from spdy.ts's framing: it opens streams as
// kubectl's spdystream does (odd ids, compressed headers), sends what a test asks, and records
// every frame it receives (header blocks decompressed with its own zlib context). Like
// spdystream, it never sends WINDOW_UPDATE unless a test does.
import { setTimeout as sleep } from "node:timers/promises";
import {
  type Frame,
  FrameReader,
  HeaderCompressor,
  HeaderDecompressor,
  type HeaderMap,
  serializeFrame,
} from "../../../src/server/spdy.ts";

/** A received frame; header-carrying frames have their headers decoded. */
export type ReceivedFrame = Frame & { headers?: HeaderMap };

export class SpdyTestClient {
  readonly frames: ReceivedFrame[] = [];
  readonly #send: (bytes: Buffer) => void;
  readonly #reader = new FrameReader();
  readonly #compressor = new HeaderCompressor();
  readonly #decompressor = new HeaderDecompressor();
  #pumping = Promise.resolve();
  #nextStreamId = 1;
  #nextPingId = 1;

  constructor(send: (bytes: Buffer) => void) {
    this.#send = send;
  }

  /** Bytes from the server. */
  receive(chunk: Buffer): void {
    this.#reader.push(chunk);
    this.#pumping = this.#pumping.then(async () => {
      for (let frame = this.#reader.next(); frame; frame = this.#reader.next()) {
        if (frame.type === "syn_reply" || frame.type === "headers" || frame.type === "syn_stream") {
          this.frames.push({
            ...frame,
            headers: await this.#decompressor.decompress(frame.headerBlock),
          });
        } else {
          this.frames.push(frame);
        }
      }
    });
  }

  send(frame: Frame): void {
    this.#send(serializeFrame(frame));
  }

  /** Opens a stream (SYN_STREAM) with these headers; returns its id. */
  async open(headers: Record<string, string>, options: { fin?: boolean; id?: number } = {}) {
    const id = options.id ?? this.#nextStreamId;
    this.#nextStreamId = id + 2;
    const headerBlock = await this.#compressor.compress(
      new Map(Object.entries(headers).map(([name, value]) => [name, [value]])),
    );
    this.send({
      type: "syn_stream",
      streamId: id,
      associatedStreamId: 0,
      priority: 0,
      slot: 0,
      fin: options.fin ?? false,
      unidirectional: false,
      headerBlock,
    });
    return id;
  }

  /** Opens the error and data streams of one forwarded connection, as kubectl does. */
  async forward(port: number, requestId: number): Promise<{ error: number; data: number }> {
    const headers = { port: String(port), requestid: String(requestId) };
    const error = await this.open({ ...headers, streamtype: "error" });
    this.finish(error); // kubectl writes nothing on the error stream
    const data = await this.open({ ...headers, streamtype: "data" });
    return { error, data };
  }

  write(streamId: number, data: Buffer | string): void {
    this.send({ type: "data", streamId, fin: false, data: Buffer.from(data) });
  }

  finish(streamId: number): void {
    this.send({ type: "data", streamId, fin: true, data: Buffer.alloc(0) });
  }

  reset(streamId: number, status = 5): void {
    this.send({ type: "rst_stream", streamId, status });
  }

  ping(): number {
    const id = this.#nextPingId;
    this.#nextPingId += 2;
    this.send({ type: "ping", id });
    return id;
  }

  /** Everything received on a stream so far. */
  data(streamId: number): Buffer {
    return Buffer.concat(
      this.frames.flatMap((f) => (f.type === "data" && f.streamId === streamId ? [f.data] : [])),
    );
  }

  text(streamId: number): string {
    return this.data(streamId).toString();
  }

  /** Whether the server half-closed (FIN) or reset the stream. */
  ended(streamId: number): "fin" | "reset" | undefined {
    for (const f of this.frames) {
      if (f.type === "rst_stream" && f.streamId === streamId) return "reset";
      if (f.type === "data" && f.streamId === streamId && f.fin) return "fin";
    }
    return undefined;
  }

  find<T extends ReceivedFrame["type"]>(
    type: T,
    where: (frame: Extract<ReceivedFrame, { type: T }>) => boolean = () => true,
  ): Extract<ReceivedFrame, { type: T }> | undefined {
    return this.frames.find(
      (f): f is Extract<ReceivedFrame, { type: T }> =>
        f.type === type && where(f as Extract<ReceivedFrame, { type: T }>),
    );
  }

  async until(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) {
        const seen = this.frames.map((f) => `${f.type}${"streamId" in f ? `:${f.streamId}` : ""}`);
        throw new Error(`timed out waiting for ${what}; frames: ${seen.join(" ")}`);
      }
      await sleep(5);
    }
  }

  close(): void {
    this.#compressor.close();
    this.#decompressor.close();
  }
}
