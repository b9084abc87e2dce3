// A minimal WebSocket client (RFC 6455) for tests that need a subprotocol `ws`, undici and Node's
// WebSocket all refuse to send: `SPDY/3.1+portforward.k8s.io` is not an RFC 7230 token, but it is
// what kubectl offers (through Go's gorilla/websocket, which does not check). It does the opening
// handshake over http.request, masks what it sends, and reads unfragmented server frames.
import { createHash, randomBytes } from "node:crypto";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest, type RequestOptions } from "node:https";
import type { Socket } from "node:net";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const OPCODE = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

export class RawWebSocket {
  readonly response: IncomingMessage;
  readonly socket: Socket;
  /** The close code the server sent, once the connection is over (1006: none). */
  readonly closed: Promise<number>;
  #buffer = Buffer.alloc(0);
  #message: Buffer[] = [];
  #messageBinary = true;
  #closeCode = 1006;
  #onMessage: (data: Buffer, binary: boolean) => void = () => {};

  /** Connects over http: or https: (`tls`: ca, cert, key for https). */
  static connect(url: string, protocol: string, tls: RequestOptions = {}): Promise<RawWebSocket> {
    const key = randomBytes(16).toString("base64");
    return new Promise((resolve, reject) => {
      const send = url.startsWith("https:") ? httpsRequest : httpRequest;
      const request = send(url, {
        ...tls,
        agent: false, // an upgrade's connection is never reused
        headers: {
          connection: "Upgrade",
          upgrade: "websocket",
          "sec-websocket-version": "13",
          "sec-websocket-key": key,
          "sec-websocket-protocol": protocol,
        },
      });
      request.on("upgrade", (response, socket, head) => {
        const accept = createHash("sha1")
          .update(key + GUID)
          .digest("base64");
        if (response.headers["sec-websocket-accept"] !== accept) {
          socket.destroy();
          reject(new Error("bad Sec-WebSocket-Accept"));
          return;
        }
        resolve(new RawWebSocket(response, socket, head));
      });
      request.on("response", (response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => {
          body += chunk.toString();
        });
        response.on("end", () => reject(new Error(`status ${response.statusCode}: ${body}`)));
      });
      request.on("error", reject);
      request.end();
    });
  }

  private constructor(response: IncomingMessage, socket: Socket, head: Buffer) {
    this.response = response;
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once("close", () => resolve(this.#closeCode)));
    socket.on("error", () => {});
    socket.on("data", (chunk: Buffer) => this.#receive(chunk));
    if (head.length > 0) this.#receive(head);
  }

  /** The subprotocol the server chose. */
  get protocol(): string {
    return String(this.response.headers["sec-websocket-protocol"] ?? "");
  }

  onMessage(listener: (data: Buffer, binary: boolean) => void): void {
    this.#onMessage = listener;
  }

  send(data: Buffer | string): void {
    this.#sendFrame(typeof data === "string" ? OPCODE.text : OPCODE.binary, Buffer.from(data));
  }

  close(code = 1000): void {
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code);
    this.#sendFrame(OPCODE.close, payload);
  }

  terminate(): void {
    this.socket.destroy();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  #sendFrame(opcode: number, payload: Buffer): void {
    if (this.socket.destroyed) return;
    const length = payload.length;
    const header =
      length < 126 ? Buffer.alloc(2) : length < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    if (length < 126) header[1] = 0x80 | length;
    else if (length < 65536) {
      header[1] = 0x80 | 126;
      header.writeUInt16BE(length, 2);
    } else {
      header[1] = 0x80 | 127;
      header.writeBigUInt64BE(BigInt(length), 2);
    }
    const mask = randomBytes(4);
    const masked = Buffer.allocUnsafe(length);
    for (let i = 0; i < length; i++) masked[i] = (payload[i] as number) ^ (mask[i & 3] as number);
    this.socket.write(Buffer.concat([header, mask, masked]));
  }

  #receive(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      if (this.#buffer.length < 2) return;
      const first = this.#buffer[0] as number;
      let length = (this.#buffer[1] as number) & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (this.#buffer.length < 4) return;
        length = this.#buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (this.#buffer.length < 10) return;
        length = Number(this.#buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (this.#buffer.length < offset + length) return;
      const payload = this.#buffer.subarray(offset, offset + length);
      this.#buffer = this.#buffer.subarray(offset + length);
      this.#frame(first & 0x0f, (first & 0x80) !== 0, payload);
    }
  }

  #frame(opcode: number, fin: boolean, payload: Buffer): void {
    switch (opcode) {
      case OPCODE.close:
        this.#closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.close(this.#closeCode === 1005 ? 1000 : this.#closeCode);
        this.socket.end();
        return;
      case OPCODE.ping:
        this.#sendFrame(OPCODE.pong, payload);
        return;
      case OPCODE.pong:
        return;
      default:
        if (opcode !== OPCODE.continuation) this.#messageBinary = opcode === OPCODE.binary;
        this.#message.push(Buffer.from(payload));
        if (!fin) return;
        this.#onMessage(Buffer.concat(this.#message), this.#messageBinary);
        this.#message = [];
    }
  }
}
