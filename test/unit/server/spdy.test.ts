// SPDY/3.1 framing, header compression and the server session, driven over an in-process duplex
// pair by the test client (spdy-client.ts). The header fixtures are real: bytes that
// github.com/moby/spdystream's framer (what kubectl uses) wrote for kubectl's port-forward streams.
import assert from "node:assert/strict";
import { type Duplex, duplexPair } from "node:stream";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { inflateSync, constants as zlibConstants } from "node:zlib";
import {
  DEFAULT_WINDOW,
  decodeHeaderBlock,
  dictionaryDigest,
  encodeHeaderBlock,
  type Frame,
  FrameReader,
  GoAwayStatus,
  HEADER_DICTIONARY,
  HeaderCompressor,
  HeaderDecompressor,
  MAX_BUFFERED_PER_STREAM,
  RstStatus,
  SettingId,
  SpdyProtocolError,
  SpdySession,
  type SpdySessionOptions,
  type SpdyStream,
  serializeFrame,
} from "../../../src/server/spdy.ts";
import { SpdyTestClient } from "./spdy-client.ts";

const T = { timeout: 20_000 };

/** SYN_STREAM frames 1 (streamtype error) and 3 (data), port 8080, requestid 0, from spdystream. */
const GO_SYN_STREAM_1 =
  "800300010000003e0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45e0" +
  "1c60616061c0c0c0c0590489c64c50f2663400000000ffff";
const GO_SYN_STREAM_3 = "800300010000001800000003000000000000c2aa19540e2512d60b000000ffff";

function headers(entries: Record<string, string | string[]>): Map<string, string[]> {
  return new Map(Object.entries(entries).map(([k, v]) => [k, [v].flat()]));
}

function parseAll(bytes: Buffer): Frame[] {
  const reader = new FrameReader();
  reader.push(bytes);
  const frames: Frame[] = [];
  for (let frame = reader.next(); frame; frame = reader.next()) frames.push(frame);
  assert.equal(reader.buffered, 0, "no bytes left over");
  return frames;
}

describe("SPDY framing", () => {
  it("builds the SPDY/3 header dictionary byte for byte", () => {
    assert.equal(HEADER_DICTIONARY.length, 1423);
    // sha256 of headerDictionary in github.com/moby/spdystream@v0.5.1/spdy/dictionary.go
    assert.equal(
      dictionaryDigest(),
      "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02",
    );
  });

  const frames: Frame[] = [
    { type: "data", streamId: 1, fin: false, data: Buffer.from("hello") },
    { type: "data", streamId: 0x7fffffff, fin: true, data: Buffer.alloc(0) },
    {
      type: "syn_stream",
      streamId: 3,
      associatedStreamId: 1,
      priority: 7,
      slot: 2,
      fin: true,
      unidirectional: true,
      headerBlock: Buffer.from([1, 2, 3]),
    },
    { type: "syn_reply", streamId: 5, fin: true, headerBlock: Buffer.from([9, 9]) },
    { type: "rst_stream", streamId: 7, status: RstStatus.CANCEL },
    {
      type: "settings",
      clearPersisted: true,
      settings: [
        { id: SettingId.INITIAL_WINDOW_SIZE, flags: 1, value: 1 << 20 },
        { id: SettingId.MAX_CONCURRENT_STREAMS, flags: 0, value: 100 },
      ],
    },
    { type: "ping", id: 0xfffffffe },
    { type: "goaway", lastGoodStreamId: 9, status: GoAwayStatus.PROTOCOL_ERROR },
    { type: "headers", streamId: 11, fin: false, headerBlock: Buffer.alloc(0) },
    { type: "window_update", streamId: 0, delta: 0x7fffffff },
    { type: "unknown", frameType: 10, flags: 0, payload: Buffer.from("credential") },
  ];

  it("parses every frame it serializes, whole or a byte at a time", () => {
    const bytes = Buffer.concat(frames.map(serializeFrame));
    assert.deepEqual(parseAll(bytes), frames);
    const reader = new FrameReader();
    const parsed: Frame[] = [];
    for (const byte of bytes) {
      reader.push(Buffer.from([byte]));
      for (let frame = reader.next(); frame; frame = reader.next()) parsed.push(frame);
    }
    assert.deepEqual(parsed, frames);
  });

  it("lays frames out as SPDY/3 does", () => {
    const ping = serializeFrame({ type: "ping", id: 1 });
    assert.equal(ping.toString("hex"), "80030006000000040000" + "0001");
    const data = serializeFrame({ type: "data", streamId: 3, fin: true, data: Buffer.from("ab") });
    assert.equal(data.toString("hex"), "00000003010000026162");
    const update = serializeFrame({ type: "window_update", streamId: 1, delta: 0x8000 });
    assert.equal(update.toString("hex"), "800300090000000800000001" + "00008000");
  });

  it("rejects malformed frames as protocol errors", () => {
    const bad: [string, Buffer][] = [
      ["SPDY/2", Buffer.from("8002000600000004000000001".slice(0, 24), "hex")],
      ["RST_STREAM status 0", Buffer.from("80030003000000080000000100000000", "hex")],
      ["data on stream 0", Buffer.from("0000000000000000", "hex")],
      ["PING of 5 bytes", Buffer.from("800300060000000500000001ff", "hex")],
      ["SETTINGS with missing entries", Buffer.from("80030004000000040000000a", "hex")],
      ["oversized control frame", Buffer.from("8003000100ffffff", "hex")],
    ];
    for (const [what, bytes] of bad) {
      const reader = new FrameReader();
      reader.push(bytes);
      assert.throws(() => reader.next(), SpdyProtocolError, what);
    }
  });

  it("encodes name/value blocks with NUL-joined values and lowercase names", () => {
    const block = encodeHeaderBlock(headers({ Port: "8080", accept: ["a", "b"] }));
    assert.equal(
      block.toString("hex"),
      "00000002" +
        "00000004" +
        Buffer.from("port").toString("hex") +
        "00000004" +
        Buffer.from("8080").toString("hex") +
        "00000006" +
        Buffer.from("accept").toString("hex") +
        "00000003" +
        Buffer.from("a\0b").toString("hex"),
    );
    assert.deepEqual(decodeHeaderBlock(block), headers({ port: "8080", accept: ["a", "b"] }));
    assert.throws(() => decodeHeaderBlock(block.subarray(0, block.length - 1)), SpdyProtocolError);
    assert.throws(
      () => decodeHeaderBlock(Buffer.concat([block, Buffer.from([0])])),
      SpdyProtocolError,
    );
  });

  it("decompresses kubectl's header blocks with the dictionary, in one context per direction", async () => {
    const [first, second] = [GO_SYN_STREAM_1, GO_SYN_STREAM_3].map(
      (hex) => parseAll(Buffer.from(hex, "hex"))[0],
    );
    assert.equal(first?.type, "syn_stream");
    assert.equal(second?.type, "syn_stream");
    if (first?.type !== "syn_stream" || second?.type !== "syn_stream") return;
    assert.equal(first.streamId, 1);
    assert.equal(second.streamId, 3);
    const decompressor = new HeaderDecompressor();
    assert.deepEqual(
      await decompressor.decompress(first.headerBlock),
      headers({ port: "8080", requestid: "0", streamtype: "error" }),
    );
    // The second block refers back to the first: only the same context can read it.
    assert.deepEqual(
      await decompressor.decompress(second.headerBlock),
      headers({ port: "8080", requestid: "0", streamtype: "data" }),
    );
    await assert.rejects(
      new HeaderDecompressor().decompress(second.headerBlock),
      SpdyProtocolError,
    );
    decompressor.close();
  });

  it("compresses header blocks any zlib with the dictionary reads, each ending in a sync flush", async () => {
    const compressor = new HeaderCompressor();
    const one = await compressor.compress(headers({ streamtype: "data", port: "80" }));
    const two = await compressor.compress(new Map());
    assert.equal(one.subarray(-4).toString("hex"), "0000ffff");
    assert.equal(two.subarray(-4).toString("hex"), "0000ffff");
    const inflated = inflateSync(Buffer.concat([one, two]), {
      dictionary: HEADER_DICTIONARY,
      finishFlush: zlibConstants.Z_SYNC_FLUSH,
    });
    const firstBlock = encodeHeaderBlock(headers({ streamtype: "data", port: "80" }));
    assert.deepEqual(inflated, Buffer.concat([firstBlock, Buffer.from([0, 0, 0, 0])]));
    compressor.close();
  });

  it("refuses a header block that inflates without bound", async () => {
    const compressor = new HeaderCompressor();
    const bomb = await compressor.compress(headers({ x: "a".repeat(4 * 1024 * 1024) }));
    assert.ok(bomb.length < 64 * 1024, "the block is small");
    await assert.rejects(new HeaderDecompressor().decompress(bomb), /inflates past/);
    compressor.close();
  });
});

/** A session over an in-process duplex pair, and the client at the other end. */
function connect(options: Partial<SpdySessionOptions> & Pick<SpdySessionOptions, "onStream">) {
  const [server, client] = duplexPair();
  const session = new SpdySession(server, options);
  const spdy = new SpdyTestClient((bytes) => client.write(bytes));
  client.on("data", (chunk: Buffer) => spdy.receive(chunk));
  client.on("error", () => {});
  client.on("end", () => client.end()); // as a peer does when the server ends the connection
  return { session, spdy, server, client };
}

function echo(stream: SpdyStream): boolean {
  stream.pipe(stream);
  return true;
}

function windowUpdates(spdy: SpdyTestClient, streamId: number): number {
  return spdy.frames.reduce(
    (sum, f) => (f.type === "window_update" && f.streamId === streamId ? sum + f.delta : sum),
    0,
  );
}

describe("SpdySession", () => {
  it(
    "accepts a stream with SYN_REPLY and carries data both ways until both sides finish",
    T,
    async () => {
      const { session, spdy } = connect({ onStream: echo });
      const id = await spdy.open({ hello: "world" });
      await spdy.until("the reply", () => spdy.find("syn_reply") !== undefined);
      assert.deepEqual(spdy.find("syn_reply")?.headers, new Map());
      spdy.write(id, "ping ");
      spdy.write(id, "pong");
      await spdy.until("the echo", () => spdy.text(id) === "ping pong");
      assert.equal(session.streamCount, 1);
      spdy.finish(id);
      await spdy.until("the FIN", () => spdy.ended(id) === "fin");
      await spdy.until("the stream to be over", () => session.streamCount === 0);
      session.close();
    },
  );

  it("gives the stream its headers and refuses the streams the handler refuses", T, async () => {
    const seen: string[] = [];
    const { session, spdy } = connect({
      onStream: (stream) => {
        seen.push(`${stream.id}:${stream.header("Port")}`);
        return stream.header("port") === "1";
      },
    });
    await spdy.open({ port: "2" });
    const accepted = await spdy.open({ port: "1" });
    await spdy.until("answers", () => spdy.frames.length >= 2);
    assert.deepEqual(seen, ["1:2", "3:1"]);
    assert.equal(spdy.find("rst_stream")?.streamId, 1);
    assert.equal(spdy.find("rst_stream")?.status, RstStatus.REFUSED_STREAM);
    assert.equal(spdy.find("syn_reply")?.streamId, accepted);
    session.close();
  });

  it("refuses stream ids that are even or go backwards", T, async () => {
    const { session, spdy } = connect({ onStream: () => true });
    await spdy.open({}, { id: 5 });
    await spdy.open({}, { id: 3 });
    await spdy.open({}, { id: 8 });
    await spdy.until("answers", () => spdy.frames.length >= 3);
    const resets = spdy.frames.filter((f) => f.type === "rst_stream");
    assert.deepEqual(
      resets.map((f) => f.type === "rst_stream" && [f.streamId, f.status]),
      [
        [3, RstStatus.PROTOCOL_ERROR],
        [8, RstStatus.PROTOCOL_ERROR],
      ],
    );
    session.close();
  });

  it("echoes the client's pings and ignores replies to its own", T, async () => {
    const { session, spdy } = connect({ onStream: () => true });
    const id = spdy.ping();
    spdy.send({ type: "ping", id: 2 });
    await spdy.until("the pong", () => spdy.find("ping") !== undefined);
    await sleep(20);
    assert.deepEqual(
      spdy.frames.filter((f) => f.type === "ping"),
      [{ type: "ping", id }],
    );
    session.close();
  });

  it("stops sending at the peer's windows and resumes on WINDOW_UPDATE", T, async () => {
    const size = 200 * 1024;
    let written = false;
    const { session, spdy } = connect({
      onStream: (stream) => {
        stream.end(Buffer.alloc(size, 7), () => {
          written = true;
        });
        return true;
      },
    });
    const id = await spdy.open({});
    await spdy.until("a window's worth", () => spdy.data(id).length === DEFAULT_WINDOW);
    await sleep(50);
    assert.equal(spdy.data(id).length, DEFAULT_WINDOW, "nothing past the stream window");
    assert.equal(written, false);

    spdy.send({ type: "window_update", streamId: id, delta: DEFAULT_WINDOW });
    await sleep(50);
    assert.equal(spdy.data(id).length, DEFAULT_WINDOW, "the session window is spent too");

    spdy.send({ type: "window_update", streamId: 0, delta: 1 << 20 });
    await spdy.until("the second window", () => spdy.data(id).length === 2 * DEFAULT_WINDOW);
    await sleep(50);
    assert.equal(spdy.data(id).length, 2 * DEFAULT_WINDOW);

    spdy.send({ type: "window_update", streamId: id, delta: 1 << 20 });
    await spdy.until("everything", () => spdy.ended(id) === "fin");
    assert.equal(spdy.data(id).length, size);
    assert.ok(written, "the write completed");
    session.close();
  });

  it("applies SETTINGS_INITIAL_WINDOW_SIZE to the streams' windows", T, async () => {
    const { session, spdy } = connect({
      onStream: (stream) => {
        stream.write(Buffer.alloc(50_000));
        return true;
      },
    });
    spdy.send({
      type: "settings",
      clearPersisted: false,
      settings: [{ id: SettingId.INITIAL_WINDOW_SIZE, flags: 0, value: 10_000 }],
    });
    const id = await spdy.open({});
    await spdy.until("the small window", () => spdy.data(id).length === 10_000);
    await sleep(50);
    assert.equal(spdy.data(id).length, 10_000);
    spdy.send({
      type: "settings",
      clearPersisted: false,
      settings: [{ id: SettingId.INITIAL_WINDOW_SIZE, flags: 0, value: 30_000 }],
    });
    await spdy.until("the window grown by 20000", () => spdy.data(id).length === 30_000);
    session.close();
  });

  it(
    "without respecting windows (kubectl) sends everything, and waits for a backed-up transport",
    T,
    async () => {
      const size = 4 * 1024 * 1024;
      let accepted = 0;
      let source: SpdyStream | undefined;
      const { session, spdy, client } = connect({
        respectPeerWindows: false,
        onStream: (stream) => {
          source = stream;
          const chunk = Buffer.alloc(64 * 1024, 1);
          const pump = () => {
            while (accepted < size) {
              accepted += chunk.length;
              if (!stream.write(chunk)) return void stream.once("drain", pump);
            }
            stream.end();
          };
          pump();
          return true;
        },
      });
      client.pause(); // a client that does not read
      const id = await spdy.open({});
      await sleep(200);
      const waiting = accepted;
      assert.ok(waiting < 1024 * 1024, `the stream took only a bounded amount (${waiting} bytes)`);
      assert.ok(source && source.writableLength <= 2 * 64 * 1024, "little queued in the stream");
      client.resume();
      await spdy.until("everything", () => spdy.ended(id) === "fin", 10_000);
      assert.equal(spdy.data(id).length, size);
      assert.equal(spdy.find("rst_stream"), undefined);
      session.close();
    },
  );

  it("gives window back as the reader consumes, not before", T, async () => {
    let target: SpdyStream | undefined;
    const { session, spdy } = connect({
      onStream: (stream) => {
        target = stream;
        stream.pause();
        return true;
      },
    });
    const id = await spdy.open({});
    for (let i = 0; i < 4; i++) spdy.write(id, Buffer.alloc(16 * 1024));
    await spdy.until("the reply", () => spdy.find("syn_reply") !== undefined);
    await sleep(50);
    assert.equal(windowUpdates(spdy, id), 0, "nothing consumed, nothing given back");
    let read = 0;
    target?.on("data", (chunk: Buffer) => {
      read += chunk.length;
    });
    target?.resume();
    await spdy.until("window updates", () => windowUpdates(spdy, id) >= DEFAULT_WINDOW);
    assert.equal(read, DEFAULT_WINDOW);
    assert.equal(windowUpdates(spdy, id), DEFAULT_WINDOW);
    assert.equal(windowUpdates(spdy, 0), DEFAULT_WINDOW);
    session.close();
  });

  it("stops reading the transport while a stream holds too much unread data", T, async () => {
    let target: SpdyStream | undefined;
    const { session, spdy, server } = connect({
      onStream: (stream) => {
        target = stream;
        stream.pause();
        return true;
      },
    });
    const id = await spdy.open({});
    const total = 2 * MAX_BUFFERED_PER_STREAM;
    for (let sent = 0; sent < total; sent += 32 * 1024) spdy.write(id, Buffer.alloc(32 * 1024));
    spdy.finish(id);
    await spdy.until("the transport paused", () => server.isPaused());
    await sleep(50);
    const held = target?.readableLength ?? 0;
    assert.ok(
      held <= MAX_BUFFERED_PER_STREAM + 32 * 1024,
      `at most one frame past the limit: ${held}`,
    );
    let read = 0;
    target?.on("data", (chunk: Buffer) => {
      read += chunk.length;
    });
    const ended = new Promise((resolve) => target?.once("end", resolve));
    target?.resume();
    await ended;
    assert.equal(read, total);
    assert.equal(server.isPaused(), false);
    session.close();
  });

  it("destroys a stream the peer resets, and resets one destroyed here", T, async () => {
    const streams: SpdyStream[] = [];
    const { session, spdy } = connect({
      onStream: (stream) => {
        streams.push(stream);
        return true;
      },
    });
    const first = await spdy.open({});
    const second = await spdy.open({});
    await spdy.until(
      "both replies",
      () => spdy.frames.filter((f) => f.type === "syn_reply").length === 2,
    );
    const closed = new Promise((resolve) => streams[0]?.once("close", resolve));
    spdy.reset(first, RstStatus.CANCEL);
    await closed;
    assert.equal(streams[0]?.peerResetStatus, RstStatus.CANCEL);
    streams[1]?.destroy();
    await spdy.until("the reset", () => spdy.ended(second) === "reset");
    assert.equal(spdy.find("rst_stream")?.status, RstStatus.CANCEL);
    assert.equal(spdy.ended(first), undefined, "no reset answers a reset");
    assert.equal(session.streamCount, 0);
    session.close();
  });

  it(
    "ends with GOAWAY(PROTOCOL_ERROR) on a protocol error, destroying its streams",
    T,
    async () => {
      let stream: SpdyStream | undefined;
      const { session, spdy, client } = connect({
        onStream: (s) => {
          stream = s;
          return true;
        },
      });
      await spdy.open({});
      await spdy.until("the reply", () => spdy.find("syn_reply") !== undefined);
      client.write(Buffer.from("80020001000000000000", "hex")); // a SPDY/2 frame
      assert.match(await session.closed, /protocol error: SPDY version 2/);
      assert.equal(spdy.find("goaway")?.status, GoAwayStatus.PROTOCOL_ERROR);
      assert.equal(spdy.find("goaway")?.lastGoodStreamId, 1);
      assert.ok(stream?.destroyed);
    },
  );

  it("ends when idle, when the peer goes away, and when the transport closes", T, async () => {
    const idle = connect({ onStream: () => true, idleTimeoutMs: 100 });
    assert.match(await idle.session.closed, /idle timeout/);
    assert.equal(idle.spdy.find("goaway")?.status, GoAwayStatus.OK);

    const away = connect({ onStream: () => true });
    away.spdy.send({ type: "goaway", lastGoodStreamId: 0, status: GoAwayStatus.OK });
    assert.match(await away.session.closed, /went away/);

    let stream: SpdyStream | undefined;
    const cut = connect({
      onStream: (s) => {
        stream = s;
        return true;
      },
    });
    await cut.spdy.open({});
    await cut.spdy.until("the reply", () => cut.spdy.find("syn_reply") !== undefined);
    (cut.server as Duplex).destroy(); // the socket under the session goes away
    assert.match(await cut.session.closed, /closed/);
    assert.ok(stream?.destroyed, "the stream is destroyed with the connection");
  });
});
