import assert from "node:assert/strict";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, type TestContext, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Worker } from "node:worker_threads";
import { formatRfc3339Nano, readContainerLog } from "../../../src/logs/log-reader.ts";
import { CriLogWriter, rotatedLogFiles } from "../../../src/logs/log-writer.ts";
import { until } from "../../support/until.ts";

const root = mkdtempSync(join(tmpdir(), "wasmlet-log-reader-"));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const fresh = () => join(root, `dir${++dirs}`, "0.log");

const T0 = 1_700_000_000_000_000_000n;
const MS = 1_000_000n;
/** A writer clock that moves 1 ms per call: the n-th write is at T0 + n ms. */
function clock(): () => bigint {
  let t = T0;
  return () => {
    t += MS;
    return t;
  };
}
const ts = (n: number) => formatRfc3339Nano(T0 + BigInt(n) * MS);

async function collect(iterable: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of iterable) chunks.push(chunk);
  return Buffer.concat(chunks).toString();
}

const recordCount = (file: string) => readFileSync(file, "utf8").split("\n").length - 1;

/** A log of `count` stdout lines `line i`, rotated into several files (none deleted). */
function rotatedLog(count: number): { path: string; lines: string[] } {
  const path = fresh();
  const writer = new CriLogWriter({
    path,
    now: clock(),
    rotation: { maxBytes: 300, maxFiles: 100 },
  });
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    lines.push(`line ${i}`);
    writer.write("stdout", Buffer.from(`line ${i}\n`));
  }
  writer.close();
  assert.ok(rotatedLogFiles(path).length >= 3, "the log spans several files");
  return { path, lines };
}

/** stdout and stderr interleaved, with a flushed partial line on stdout cut by a stderr line. */
function interleavedLog(): string {
  const path = fresh();
  const writer = new CriLogWriter({ path, now: clock() });
  writer.write("stdout", Buffer.from("out1\n")); // t1
  writer.write("stderr", Buffer.from("err1\n")); // t2
  writer.write("stdout", Buffer.from("par")); // t3, kept
  writer.flushPartial(); // t4: stdout P "par"
  writer.write("stderr", Buffer.from("e2\n")); // t5
  writer.write("stdout", Buffer.from("tial\n")); // t6: stdout F "tial"
  writer.close();
  return path;
}

/** Paths of files this process holds open under `dir`. */
/**
 * How many times a follower went idle: each wait for a change arms its safety-net poll, whose
 * delay (`POLL_MS`, given to the reader; 50 ms when there is no directory to watch) no other
 * timer here uses.
 */
const POLL_MS = 10_000;
function idleWaits(t: TestContext, pollMs = POLL_MS): () => number {
  const spy = t.mock.method(globalThis, "setTimeout");
  return () => spy.mock.calls.filter((call) => call.arguments[1] === pollMs).length;
}

/**
 * Starts the follower's next read and resolves once it waits for a change, idle, with the read
 * still pending (wrapped: an async function would otherwise wait for it).
 */
async function nextWhenIdle(
  reader: AsyncIterator<Buffer>,
  waits: () => number,
): Promise<{ next: Promise<IteratorResult<Buffer>> }> {
  const before = waits();
  const next = reader.next();
  await until(() => waits() > before, "the follower to wait for a change");
  return { next };
}

function openFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir)) out.push(target);
    } catch {}
  }
  return out;
}

test("formatRfc3339Nano trims trailing zeros like Go's time.RFC3339Nano", () => {
  assert.equal(formatRfc3339Nano(1_700_000_000_123_456_789n), "2023-11-14T22:13:20.123456789Z");
  assert.equal(formatRfc3339Nano(1_700_000_000_120_000_000n), "2023-11-14T22:13:20.12Z");
  assert.equal(formatRfc3339Nano(1_700_000_000_000_000_000n), "2023-11-14T22:13:20Z");
  assert.equal(formatRfc3339Nano(1_700_000_000_000_000_100n), "2023-11-14T22:13:20.0000001Z");
});

test("the whole log reads across rotated files in order; a missing log is empty", async () => {
  const { path, lines } = rotatedLog(60);
  assert.equal(await collect(readContainerLog(path)), `${lines.join("\n")}\n`);
  assert.equal(await collect(readContainerLog(join(root, "nowhere", "0.log"))), "");
});

test("tailLines takes the last N records across rotated files, at any file boundary", async () => {
  const { path, lines } = rotatedLog(60);
  const files = [...rotatedLogFiles(path).map((f) => f.path), path];
  const current = recordCount(path);
  const previous = recordCount(files.at(-2)!);
  const cases = [0, 1, 2, 7, current, current + 1, current + previous, current + previous + 1];
  for (const n of [...cases, 59, 60, 61, 1000]) {
    const expected = n === 0 ? "" : `${lines.slice(-n).join("\n")}\n`;
    assert.equal(await collect(readContainerLog(path, { tailLines: n })), expected, `tail ${n}`);
  }
});

test("P records join into one line; timestamps prefix lines, not pieces", async () => {
  const path = fresh();
  const writer = new CriLogWriter({ path, now: clock(), maxLineBytes: 4 });
  writer.write("stdout", Buffer.from("abcdefghij\nxy\n")); // t1: P abcd, P efgh, F ij, F xy
  writer.close();
  assert.equal(await collect(readContainerLog(path)), "abcdefghij\nxy\n");
  assert.equal(
    await collect(readContainerLog(path, { timestamps: true })),
    `${ts(1)} abcdefghij\n${ts(1)} xy\n`,
  );
  // tailLines counts records, like the kubelet: the last two are "F ij" and "F xy".
  assert.equal(await collect(readContainerLog(path, { tailLines: 2 })), "ij\nxy\n");
});

test("stream selects stdout or stderr; interleaved partial lines come out as the kubelet's", async () => {
  const path = interleavedLog();
  assert.equal(await collect(readContainerLog(path)), "out1\nerr1\npare2\ntial\n");
  assert.equal(
    await collect(readContainerLog(path, { stream: "stdout", timestamps: true })),
    `${ts(1)} out1\n${ts(4)} partial\n`,
  );
  assert.equal(
    await collect(readContainerLog(path, { stream: "stderr", timestamps: true })),
    `${ts(2)} err1\n${ts(5)} e2\n`,
  );
  // Both streams: one "start of line" flag across streams, as in the kubelet.
  assert.equal(
    await collect(readContainerLog(path, { timestamps: true })),
    `${ts(1)} out1\n${ts(2)} err1\n${ts(4)} pare2\n${ts(6)} tial\n`,
  );
});

test("sinceNs keeps records at or after the bound, also combined with a tail", async () => {
  const path = interleavedLog();
  assert.equal(
    await collect(readContainerLog(path, { sinceNs: T0 + 2n * MS })),
    "err1\npare2\ntial\n",
  );
  assert.equal(
    await collect(readContainerLog(path, { sinceNs: T0 + 2n * MS + 1n })),
    "pare2\ntial\n",
  );
  assert.equal(await collect(readContainerLog(path, { sinceNs: T0 + 7n * MS })), "");
  // The tail is taken first (last 3 records), then the time filter, like the kubelet.
  assert.equal(
    await collect(readContainerLog(path, { tailLines: 3, sinceNs: T0 + 5n * MS })),
    "e2\ntial\n",
  );
});

test("limitBytes stops after exactly that many bytes, timestamps included", async () => {
  const { path, lines } = rotatedLog(60);
  const all = `${lines.join("\n")}\n`;
  for (const limit of [1, 10, 300, all.length - 1, all.length, all.length + 5]) {
    assert.equal(await collect(readContainerLog(path, { limitBytes: limit })), all.slice(0, limit));
  }
  const stamped = await collect(readContainerLog(path, { timestamps: true }));
  assert.equal(
    await collect(readContainerLog(path, { timestamps: true, limitBytes: 45 })),
    stamped.slice(0, 45),
  );
  assert.equal(stamped.split("\n")[0], `${ts(1)} line 0`);
});

test("options are checked when the reader is made", () => {
  const path = fresh();
  for (const options of [
    { tailLines: -1 },
    { tailLines: 1.5 },
    { limitBytes: 0 },
    { pollIntervalMs: 0 },
  ]) {
    assert.throws(() => readContainerLog(path, options), { code: "WASMLET_ERR_LOG_READ_OPTIONS" });
  }
});

test("a record still being written is not shown; once the writer is gone a torn record is", async () => {
  const path = fresh();
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(
    path,
    "2023-11-14T22:13:20.000000001Z stdout F one\nnot a CRI line\n2023-11-14T22:13:20.000000002Z stdout F tw",
  );
  assert.equal(await collect(readContainerLog(path)), "one\n");
  // Followed after the exit: the torn record comes out as the kubelet reads it, with no newline.
  assert.equal(
    await collect(readContainerLog(path, { follow: true, exited: Promise.resolve() })),
    "one\ntw",
  );
});

test("follow shows a new line within 100 ms of its write", async (t) => {
  const waits = idleWaits(t);
  const path = fresh();
  const writer = new CriLogWriter({ path });
  const controller = new AbortController();
  const reader = readContainerLog(path, {
    follow: true,
    signal: controller.signal,
    pollIntervalMs: POLL_MS,
  });
  try {
    const latencies: number[] = [];
    for (let i = 0; i < 8; i++) {
      const { next } = await nextWhenIdle(reader, waits);
      const start = performance.now();
      writer.write("stdout", Buffer.from(`tick ${i}\n`));
      const { value } = await next;
      latencies.push(performance.now() - start);
      assert.equal(value?.toString(), `tick ${i}\n`);
    }
    process.stderr.write(`latencies ${latencies.map((l) => l.toFixed(1)).join(", ")} ms\n`);
    assert.ok(
      Math.max(...latencies) < 100,
      `latencies ${latencies.map((l) => l.toFixed(1)).join(", ")} ms`,
    );
  } finally {
    controller.abort();
    await reader.return();
    writer.close();
  }
});

test("tail then follow: the last N records, then what is written next", async () => {
  const path = fresh();
  const writer = new CriLogWriter({ path });
  for (let i = 0; i < 5; i++) writer.write("stdout", Buffer.from(`old ${i}\n`));
  let exit!: () => void;
  const exited = new Promise<void>((resolve) => {
    exit = resolve;
  });
  // The tail is read first; only once it has arrived is more written (not a fixed wait).
  const chunks: Buffer[] = [];
  let tailRead!: () => void;
  const tail = new Promise<void>((resolve) => {
    tailRead = resolve;
  });
  const output = (async () => {
    for await (const chunk of readContainerLog(path, { follow: true, tailLines: 2, exited })) {
      chunks.push(chunk);
      if (Buffer.concat(chunks).toString() === "old 3\nold 4\n") tailRead();
    }
    return Buffer.concat(chunks).toString();
  })();
  await tail;
  writer.write("stdout", Buffer.from("new 0\nnew 1\n"));
  writer.close();
  exit();
  assert.equal(await output, "old 3\nold 4\nnew 0\nnew 1\n");
});

test("following across rotations under the real writer loses and repeats nothing", async () => {
  const path = fresh();
  const writer = new CriLogWriter({ path, rotation: { maxBytes: 256, maxFiles: 1000 } });
  let exit!: () => void;
  const exited = new Promise<void>((resolve) => {
    exit = resolve;
  });
  const output = collect(readContainerLog(path, { follow: true, exited }));
  const expected: string[] = [];
  let seed = 7;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let burst = 0; burst < 60; burst++) {
    // Bursts of up to ~3 files, so several rotations often happen between two reads.
    const lines = 1 + random(30);
    for (let i = 0; i < lines; i++) {
      const line = `burst ${burst} line ${i} ${"x".repeat(random(40))}`;
      expected.push(line);
      writer.write(random(4) === 0 ? "stderr" : "stdout", Buffer.from(`${line}\n`));
    }
    await sleep(random(4));
  }
  writer.write("stdout", Buffer.from("no newline at the end"));
  writer.close();
  exit();
  expected.push("no newline at the end");
  assert.ok(writer.rotations > 50, `rotated ${writer.rotations} times`);
  assert.equal(await output, `${expected.join("\n")}\n`);
});

/** Runs a CriLogWriter in a worker, as wasmlet does, writing `flood <i>` lines as fast as it can. */
function floodInWorker(
  path: string,
  lines: number,
  rotation: { maxBytes: number; maxFiles: number },
): Promise<number> {
  const worker = new Worker(
    `const { parentPort, workerData: w } = require("node:worker_threads");
    import(w.writer).then(({ CriLogWriter }) => {
      const writer = new CriLogWriter({ path: w.path, rotation: w.rotation });
      for (let i = 0; i < w.lines; i++) writer.write("stdout", Buffer.from("flood " + i + "\\n"));
      writer.close();
      parentPort.postMessage(writer.rotations);
    });`,
    {
      eval: true,
      workerData: {
        writer: new URL("../../../src/logs/log-writer.ts", import.meta.url).href,
        path,
        lines,
        rotation,
      },
    },
  );
  return new Promise<number>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  }).finally(() => worker.terminate());
}

test("following a flood written by another thread, rotating hundreds of times, is exact", async () => {
  const path = fresh();
  const lines = 20_000;
  const done = floodInWorker(path, lines, { maxBytes: 4096, maxFiles: 1e6 });
  const output = collect(readContainerLog(path, { follow: true, exited: done }));
  assert.ok((await done) > 200, `rotated ${await done} times`);
  const expected = Array.from({ length: lines }, (_, i) => `flood ${i}\n`).join("");
  const got = await output;
  assert.equal(got.length, expected.length);
  assert.ok(got === expected, "every line once, in order");
});

test("a follower outrun by pruning skips what was deleted, never repeats, ends at the end", async () => {
  const path = fresh();
  const lines = 10_000;
  const done = floodInWorker(path, lines, { maxBytes: 400, maxFiles: 2 });
  const reader = readContainerLog(path, { follow: true, exited: done });
  const received: number[] = [];
  let text = "";
  for await (const chunk of reader) {
    text += chunk.toString();
    const cut = text.lastIndexOf("\n") + 1;
    for (const line of text.slice(0, cut).split("\n").slice(0, -1)) {
      assert.match(line, /^flood \d+$/);
      received.push(Number(line.slice(6)));
    }
    text = text.slice(cut);
    if (received.length <= 100) {
      // A slow client at first: the file it reads and the next ones are deleted meanwhile.
      while ((rotatedLogFiles(path)[0]?.n ?? 0) < 10) await sleep(1);
    }
  }
  assert.equal(text, "");
  for (let i = 1; i < received.length; i++)
    assert.ok(received[i]! > received[i - 1]!, `${received[i]} after ${received[i - 1]}`);
  assert.equal(received.at(-1), lines - 1);
  assert.ok(received.length < lines, "the slow start lost the pruned files");
});

test("a follower idle at the end catches up through many rotations at once", async (t) => {
  const waits = idleWaits(t);
  const path = fresh();
  const writer = new CriLogWriter({ path, rotation: { maxBytes: 100, maxFiles: 50 } });
  writer.write("stdout", Buffer.from("first\n"));
  const reader = readContainerLog(path, { follow: true, pollIntervalMs: POLL_MS });
  assert.equal((await reader.next()).value?.toString(), "first\n");
  const { next: pending } = await nextWhenIdle(reader, waits);
  const lines = Array.from({ length: 40 }, (_, i) => `flood ${i}`);
  writer.write("stdout", Buffer.from(`${lines.join("\n")}\n`));
  assert.ok(writer.rotations >= 10, `rotated ${writer.rotations} times`);
  let text = (await pending).value?.toString() ?? "";
  while (text !== `${lines.join("\n")}\n` && text.length < 2000) {
    const { value, done } = await reader.next();
    if (done) break;
    text += value.toString();
  }
  assert.equal(text, `${lines.join("\n")}\n`);
  await reader.return();
  writer.close();
});

test("follow ends after the exit once everything is out, whatever was written before", async (t) => {
  const waits = idleWaits(t);
  const path = fresh();
  const writer = new CriLogWriter({ path });
  let exit!: () => void;
  const exited = new Promise<void>((resolve) => {
    exit = resolve;
  });
  const started = performance.now();
  const output = collect(readContainerLog(path, { follow: true, exited, pollIntervalMs: POLL_MS }));
  writer.write("stdout", Buffer.from("a\n"));
  await until(() => waits() > 0, "the follower to wait for a change");
  writer.write("stderr", Buffer.from("b\nunfinished"));
  writer.close(); // ends the open line as an F record
  exit();
  assert.equal(await output, "a\nb\nunfinished\n");
  assert.ok(performance.now() - started < 1000, "ended at the exit, not at a poll");
  // A container that is not running: follow reads to the end and stops.
  assert.equal(
    await collect(readContainerLog(path, { follow: true, exited: Promise.resolve() })),
    "a\nb\nunfinished\n",
  );
});

test("follow waits for a log that does not exist yet", async (t) => {
  // Nor does its directory: the follower polls at the fallback rate.
  const waits = idleWaits(t, 50);
  const path = fresh();
  let exit!: () => void;
  const exited = new Promise<void>((resolve) => {
    exit = resolve;
  });
  const output = collect(readContainerLog(path, { follow: true, exited, pollIntervalMs: POLL_MS }));
  await until(() => waits() > 0, "the follower to wait for the log");
  const writer = new CriLogWriter({ path });
  writer.write("stdout", Buffer.from("hello\n"));
  writer.close();
  exit();
  assert.equal(await output, "hello\n");
});

test("abort ends a follower at once and releases its files", async (t) => {
  const waits = idleWaits(t);
  const path = fresh();
  const writer = new CriLogWriter({ path });
  for (let i = 0; i < 10; i++) writer.write("stdout", Buffer.from(`line ${i}\n`));
  writer.close();
  const controller = new AbortController();
  const reader = readContainerLog(path, {
    follow: true,
    signal: controller.signal,
    pollIntervalMs: POLL_MS,
  });
  let text = "";
  while (!text.includes("line 9")) text += (await reader.next()).value?.toString() ?? "";
  assert.ok(openFilesUnder(dirname(path)).length > 0, "the follower holds the current file");
  const { next: pending } = await nextWhenIdle(reader, waits);
  const start = performance.now();
  controller.abort();
  assert.deepEqual(await pending, { value: undefined, done: true });
  assert.ok(performance.now() - start < 100);
  assert.deepEqual(openFilesUnder(dirname(path)), []);
});

test("ending the iteration stops a waiting follower too, without a signal", async (t) => {
  const waits = idleWaits(t);
  const path = fresh();
  const writer = new CriLogWriter({ path });
  writer.write("stdout", Buffer.from("only line\n"));
  writer.close();
  const reader = readContainerLog(path, { follow: true, pollIntervalMs: POLL_MS });
  assert.equal((await reader.next()).value?.toString(), "only line\n");
  const { next: pending } = await nextWhenIdle(reader, waits); // waits for lines that never come
  const start = performance.now();
  assert.deepEqual(await reader.return(), { value: undefined, done: true });
  assert.deepEqual(await pending, { value: undefined, done: true });
  assert.ok(performance.now() - start < 100);
  assert.deepEqual(openFilesUnder(dirname(path)), []);
});
