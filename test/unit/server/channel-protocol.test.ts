// The channel protocols' pure parts: negotiation, query decoding, framing and status encoding,
// checked against what the kubelet (wsstream, cri-streaming remotecommand) does.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import {
  ChannelConnection,
  type ChannelProtocol,
  type ChannelSocket,
  decodeFrame,
  encodeFrame,
  encodeStatus,
  exitCodeStatus,
  internalErrorStatus,
  isWebSocketUpgrade,
  negotiateProtocol,
  offeredProtocols,
  parseStreamOptions,
  successStatus,
} from "../../../src/server/channel-protocol.ts";

describe("channel protocol", () => {
  it("negotiates the first offered subprotocol it knows, in the client's order", () => {
    assert.equal(negotiateProtocol("v5.channel.k8s.io, v4.channel.k8s.io"), "v5.channel.k8s.io");
    assert.equal(negotiateProtocol("v4.channel.k8s.io,v5.channel.k8s.io"), "v4.channel.k8s.io");
    // kubectl's list: v3 and v2 exist only over SPDY.
    assert.equal(
      negotiateProtocol("v3.channel.k8s.io, v2.channel.k8s.io, channel.k8s.io"),
      "channel.k8s.io",
    );
    assert.equal(
      negotiateProtocol(["v9.channel.k8s.io", "v4.base64.channel.k8s.io"]),
      "v4.base64.channel.k8s.io",
    );
    assert.equal(negotiateProtocol("base64.channel.k8s.io"), "base64.channel.k8s.io");
    assert.equal(negotiateProtocol(undefined), "", "none offered: channel.k8s.io semantics");
    assert.equal(negotiateProtocol("  "), "");
    assert.equal(negotiateProtocol("V5.channel.K8S.io, chat"), undefined, "names are exact");
    assert.deepEqual(offeredProtocols(" a ,, b,c "), ["a", "b", "c"]);
  });

  it("recognises WebSocket upgrades only", () => {
    assert.equal(isWebSocketUpgrade({ upgrade: "websocket", connection: "Upgrade" }), true);
    assert.equal(
      isWebSocketUpgrade({ upgrade: "WebSocket", connection: "keep-alive, upgrade" }),
      true,
    );
    assert.equal(isWebSocketUpgrade({ upgrade: "SPDY/3.1", connection: "Upgrade" }), false);
    assert.equal(isWebSocketUpgrade({ upgrade: "websocket" }), false);
    assert.equal(isWebSocketUpgrade({}), false);
  });

  it("decodes the streams as the kubelet: exactly 1, tty drops stderr, one is required", () => {
    assert.deepEqual(parseStreamOptions(new URLSearchParams("input=1&output=1&error=1")), {
      stdin: true,
      stdout: true,
      stderr: true,
      tty: false,
    });
    assert.deepEqual(parseStreamOptions(new URLSearchParams("output=1&error=1&tty=1")), {
      stdin: false,
      stdout: true,
      stderr: false,
      tty: true,
    });
    // The kubelet's names take "1" only; the pod API's names (for direct clients) also "true".
    assert.deepEqual(parseStreamOptions(new URLSearchParams("output=true&stdin=true&error=0")), {
      stdin: true,
      stdout: false,
      stderr: false,
      tty: false,
    });
    assert.equal(
      parseStreamOptions(new URLSearchParams("output=0&stdout=1&input=1")).stdout,
      false,
    );
    for (const query of ["", "output=true", "tty=1&error=1", "input=yes&command=ls"]) {
      assert.throws(() => parseStreamOptions(new URLSearchParams(query)), {
        code: "WASMLET_ERR_BAD_REQUEST",
        message: "you must specify at least 1 of stdin, stdout, stderr",
      });
    }
  });

  it("decodes binary frames, and v5's stream close", () => {
    const v5 = "v5.channel.k8s.io";
    assert.deepEqual(decodeFrame(v5, Buffer.from([0, 104, 105])), {
      kind: "data",
      channel: 0,
      data: Buffer.from("hi"),
    });
    assert.deepEqual(decodeFrame(v5, Buffer.from([4])), {
      kind: "data",
      channel: 4,
      data: Buffer.alloc(0),
    });
    assert.deepEqual(decodeFrame(v5, Buffer.from([255, 0])), { kind: "close", channel: 0 });
    assert.equal(decodeFrame(v5, Buffer.from([255])).kind, "fatal");
    assert.equal(decodeFrame(v5, Buffer.from([255, 0, 0])).kind, "fatal");
    assert.equal(decodeFrame(v5, Buffer.from([255, 5])).kind, "fatal");
    assert.deepEqual(decodeFrame(v5, Buffer.alloc(0)), { kind: "ignore" });
    assert.deepEqual(decodeFrame(v5, Buffer.from([5, 1])), { kind: "ignore" });
    // Before v5, 255 is just an unknown channel.
    assert.deepEqual(decodeFrame("v4.channel.k8s.io", Buffer.from([255, 0])), { kind: "ignore" });
    assert.deepEqual(decodeFrame("", Buffer.from([0, 1])), {
      kind: "data",
      channel: 0,
      data: Buffer.from([1]),
    });
  });

  it("decodes base64 frames: an ASCII channel digit, then base64", () => {
    const b64 = "v4.base64.channel.k8s.io";
    assert.deepEqual(decodeFrame(b64, Buffer.from(`0${Buffer.from("hi\n").toString("base64")}`)), {
      kind: "data",
      channel: 0,
      data: Buffer.from("hi\n"),
    });
    assert.deepEqual(decodeFrame(b64, Buffer.from("0")), {
      kind: "data",
      channel: 0,
      data: Buffer.alloc(0),
    });
    assert.deepEqual(decodeFrame(b64, Buffer.from("0aGk")), { kind: "ignore" }, "padding required");
    assert.deepEqual(decodeFrame(b64, Buffer.from("0a*==")), { kind: "ignore" });
    assert.deepEqual(decodeFrame(b64, Buffer.from("9aGk=")), { kind: "ignore" });
    assert.deepEqual(decodeFrame(b64, Buffer.from("/aGk=")), { kind: "ignore" });
    assert.deepEqual(decodeFrame("base64.channel.k8s.io", Buffer.from([0, 0x30])), {
      kind: "ignore",
    });
  });

  it("encodes frames: a channel byte, or a channel digit and base64 text", () => {
    assert.deepEqual(
      encodeFrame("v5.channel.k8s.io", 1, Buffer.from("out")),
      Buffer.from([1, 111, 117, 116]),
    );
    assert.deepEqual(encodeFrame("channel.k8s.io", 2, new Uint8Array(0)), Buffer.from([2]));
    assert.equal(encodeFrame("v4.base64.channel.k8s.io", 2, Buffer.from("err\n")), "2ZXJyCg==");
    assert.equal(encodeFrame("base64.channel.k8s.io", 1, new Uint8Array(0)), "1");
  });

  it("encodes statuses as metav1.Status JSON (v4, v5) or the v1 bare message", () => {
    const json: ChannelProtocol[] = [
      "v5.channel.k8s.io",
      "v4.channel.k8s.io",
      "v4.base64.channel.k8s.io",
    ];
    for (const protocol of json) {
      assert.equal(
        encodeStatus(protocol, successStatus())?.toString(),
        '{"metadata":{},"status":"Success"}',
      );
      assert.equal(
        encodeStatus(protocol, exitCodeStatus(3))?.toString(),
        '{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: command terminated with exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}',
      );
    }
    assert.deepEqual(
      JSON.parse(String(encodeStatus("v5.channel.k8s.io", internalErrorStatus("boom")))),
      {
        metadata: {},
        status: "Failure",
        message: "Internal error occurred: boom",
        reason: "InternalError",
        details: { causes: [{ message: "boom" }] },
        code: 500,
      },
    );
    assert.match(
      exitCodeStatus(134, "wasm trap: unreachable").message ?? "",
      /exit code 134 \(wasm trap: unreachable\)$/,
    );
    for (const protocol of ["channel.k8s.io", "base64.channel.k8s.io", ""] as const) {
      assert.equal(encodeStatus(protocol, successStatus()), undefined);
      assert.equal(
        encodeStatus(protocol, exitCodeStatus(2))?.toString(),
        "command terminated with non-zero exit code: command terminated with exit code 2",
      );
    }
  });
});

/** The transport side of a server WebSocket, recording what the connection does with it. */
class RecordingSocket extends EventEmitter implements ChannelSocket {
  readonly protocol = "v5.channel.k8s.io";
  bufferedAmount = 0;
  readonly sent: (Buffer | string)[] = [];
  readonly callbacks: (() => void)[] = [];
  readonly calls: string[] = [];

  send(data: Buffer | string, callback?: (error?: Error) => void): void {
    this.sent.push(data);
    if (callback) this.callbacks.push(() => callback());
  }
  close(code?: number): void {
    this.calls.push(`close ${code}`);
  }
  pause(): void {
    this.calls.push("pause");
  }
  resume(): void {
    this.calls.push("resume");
  }
}

const ALL = { stdin: true, stdout: true, stderr: false, tty: false };
const frame = (...bytes: (number | string | Buffer)[]) =>
  Buffer.concat(bytes.map((b) => (typeof b === "number" ? Buffer.from([b]) : Buffer.from(b))));

describe("ChannelConnection", () => {
  it("announces itself on the lowest channel it writes", () => {
    for (const [options, channel] of [
      [ALL, 1],
      [{ ...ALL, stdout: false, stderr: true }, 2],
      [{ ...ALL, stdout: false }, 3],
    ] as const) {
      const socket = new RecordingSocket();
      new ChannelConnection(socket, "v5.channel.k8s.io", options, {});
      assert.deepEqual(socket.sent, [Buffer.from([channel])]);
    }
  });

  it("stops reading while stdin is backed up, and reads again once it drains", async () => {
    const socket = new RecordingSocket();
    const pending: (() => void)[] = [];
    const received: number[] = [];
    let ended = false;
    new ChannelConnection(socket, "v5.channel.k8s.io", ALL, {
      stdin: (data) => {
        received.push(data.length);
        return new Promise<void>((resolve) => pending.push(resolve));
      },
      stdinEnd: () => {
        ended = true;
      },
    });
    const chunk = Buffer.alloc(512 * 1024);
    for (let i = 0; i < 3; i++) socket.emit("message", frame(0, chunk));
    socket.emit("message", frame(255, 0));
    socket.emit("message", frame(0, "after the close: dropped"));
    assert.deepEqual(socket.calls, ["pause"], "paused past 1 MiB in flight");
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(ended, false, "stdin ends only after every chunk before it");
      pending.shift()?.();
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(received, [chunk.length, chunk.length, chunk.length]);
    assert.deepEqual(socket.calls, ["pause", "resume"]);
    assert.equal(ended, true);
  });

  it("asks writers to wait when output backs up, and drops lossy output far behind", async () => {
    const socket = new RecordingSocket();
    const connection = new ChannelConnection(socket, "v5.channel.k8s.io", ALL, {});
    assert.equal(connection.write(1, Buffer.from("a")), undefined);
    assert.equal(connection.write(2, Buffer.from("stderr not asked for")), undefined);
    assert.equal(socket.sent.length, 2, "the announcement and stdout only");
    socket.bufferedAmount = 2 * 1024 * 1024;
    const waiting = connection.write(1, Buffer.from("b"));
    assert.ok(waiting, "backed up: wait until this chunk is flushed");
    let flushed = false;
    void waiting.then(() => {
      flushed = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(flushed, false);
    socket.callbacks.at(-1)?.();
    await waiting;
    assert.equal(connection.writeLossy(1, Buffer.from("c")), true);
    socket.bufferedAmount = 5 * 1024 * 1024;
    assert.equal(connection.writeLossy(1, Buffer.from("d")), false);
    assert.deepEqual(socket.sent.at(-1), Buffer.from([1, 0x63]));
  });

  it("finishes with the status and a normal close, then ignores the client", () => {
    const socket = new RecordingSocket();
    let gone = "";
    const input: string[] = [];
    const connection = new ChannelConnection(socket, "v5.channel.k8s.io", ALL, {
      stdin: (data) => {
        input.push(data.toString());
        return undefined;
      },
      gone: (reason) => {
        gone = reason;
      },
    });
    connection.finish({ status: "Success" });
    connection.finish({ status: "Failure" });
    socket.emit("message", frame(0, "late"));
    socket.emit("close");
    assert.deepEqual(socket.sent.slice(1), [
      Buffer.from([3, ...Buffer.from('{"metadata":{},"status":"Success"}')]),
    ]);
    assert.deepEqual(socket.calls, ["close 1000"]);
    assert.deepEqual([input, gone, connection.closed], [[], "", true]);
  });

  it("treats a protocol error or a closed socket as the client going away", () => {
    const broken = new RecordingSocket();
    const reasons: string[] = [];
    new ChannelConnection(broken, "v5.channel.k8s.io", ALL, {
      gone: (reason) => reasons.push(reason),
    });
    broken.emit("message", frame(255, 0, 0));
    broken.emit("close");
    assert.deepEqual(broken.calls, ["close 1002"]);
    assert.equal(reasons.length, 1);
    assert.match(reasons[0] ?? "", /^protocol error: a single channel byte must follow/);

    const closed = new RecordingSocket();
    const connection = new ChannelConnection(closed, "v5.channel.k8s.io", ALL, {
      gone: (reason) => reasons.push(reason),
    });
    closed.emit("close");
    assert.equal(reasons.at(-1), "the client closed the connection");
    assert.equal(connection.write(1, Buffer.from("x")), undefined);
    connection.finish({ status: "Success" });
    assert.equal(closed.sent.length, 1, "nothing written after the client left");
  });
});
