import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Runtime } from "../../../src/runtime/index.ts";
import { WASI_MODULE } from "../../../src/runtime/wasi-abi.ts";
import { collector, guest, logText, spec, tempDir, tolerant, until } from "./helpers.ts";
import { ModuleBuilder, op } from "./wasm-builder.ts";

const dir = tempDir();
const runtime = new Runtime({ workers: 1 });
before(() => runtime.start());
after(async () => {
  await runtime.destroy();
  dir.remove();
});

test("stdin is a channel: written data reaches the guest, closing it is end-of-file", async () => {
  const out = collector();
  const cat = runtime.run(
    spec(dir.path, { module: await guest("cat"), args: ["cat"], stdin: true }),
  );
  cat.onOutput(out.onOutput);
  await cat.writeStdin("first line\n");
  await until(() => out.text() === "first line\n", "the first line back");
  await cat.writeStdin(new TextEncoder().encode("second\n"));
  cat.closeStdin();
  cat.closeStdin();
  const status = await cat.exited;
  assert.equal(status.reason, "Completed");
  assert.deepEqual(logText(cat.spec.logPath), ["first line", "second"]);
  assert.deepEqual(logText(cat.spec.logPath, "stderr"), ["EOF after 18 bytes"]);
  await assert.rejects(cat.writeStdin("late"), { code: "WASMLET_ERR_NOT_RUNNING" });
});

test("input larger than the 64 KiB channel flows through in order", async () => {
  const cat = runtime.run(
    spec(dir.path, { module: await guest("cat"), args: ["cat"], stdin: true }),
  );
  const input = Buffer.alloc(300_000);
  for (let i = 0; i < input.length; i++) input[i] = 0x61 + (i % 26);
  for (let i = 1000; i < input.length; i += 1000) input[i] = 0x0a;
  await cat.writeStdin(input);
  cat.closeStdin();
  const status = await cat.exited;
  assert.equal(status.reason, "Completed");
  assert.equal(logText(cat.spec.logPath).join("\n"), input.toString());
});

test("without stdin the guest reads end-of-file at once and writeStdin rejects", async () => {
  const cat = runtime.run(spec(dir.path, { module: await guest("cat"), args: ["cat"] }));
  await assert.rejects(cat.writeStdin("x"), { code: "WASMLET_ERR_NOT_RUNNING" });
  const status = await cat.exited;
  assert.equal(status.reason, "Completed");
  assert.deepEqual(logText(cat.spec.logPath, "stderr"), ["EOF after 0 bytes"]);
});

test("a guest blocked reading stdin stops at once on request", async () => {
  const cat = runtime.run(
    spec(dir.path, { module: await guest("cat"), args: ["cat"], stdin: true }),
  );
  const out = collector();
  cat.onOutput(out.onOutput);
  // Its echo proves it is in its read loop: reading again is all it does next.
  await cat.writeStdin("x");
  await until(() => out.text() === "x", "the echo");
  const t0 = performance.now();
  const status = await cat.stop(10_000);
  assert.ok(performance.now() - t0 < 2000, "well before the 10 s grace period");
  assert.equal(status.exitCode, 143);
});

test("attach: listeners get live output from when they subscribe until they unsubscribe", async () => {
  const ticker = runtime.run(
    spec(dir.path, { module: await guest("ticker"), args: ["ticker"], env: { TICK_MS: "5" } }),
  );
  await until(
    tolerant(() => logText(ticker.spec.logPath).length >= 2),
    "two logged ticks",
  );
  const out = collector();
  const unsubscribe = ticker.onOutput(out.onOutput);
  await until(() => out.text().split("\n").length >= 4, "three ticks");
  unsubscribe();
  const seen = out.text();
  await until(
    tolerant(() => logText(ticker.spec.logPath).length >= seen.split("\n").length + 10),
    "ten more logged ticks",
  );
  assert.equal(out.text(), seen, "nothing after unsubscribing");
  assert.doesNotMatch(seen, /^tick 1\n/, "nothing from before subscribing");
  // Whole ticks in order, all of which are also in the log.
  const ticks = seen.trim().split("\n");
  const logged = logText(ticker.spec.logPath);
  const first = logged.indexOf(ticks[0]!);
  assert.ok(first > 0);
  assert.deepEqual(logged.slice(first, first + ticks.length), ticks);
  await ticker.stop(0);
});

test("one fd_write takes at most 1 MiB: 64 iovecs over all of a 32 MiB memory reach the host as 1 MiB", async () => {
  // _start: 64 iovecs at 0 (each: base 0, length 32 MiB), fd_write(1 or 2, 0, 64, 1024) and exit
  // with nwritten >> 16 (16 for 1 MiB).
  const b = new ModuleBuilder();
  const write = b.importFunction(WASI_MODULE, "fd_write", ["i32", "i32", "i32", "i32"], ["i32"]);
  const exit = b.importFunction(WASI_MODULE, "proc_exit", ["i32"], []);
  b.memory(512);
  const iovecs: number[] = [];
  for (let i = 0; i < 64; i++) iovecs.push(0, 0, 0, 0, 0, 0, 0, 2);
  b.data(0, iovecs);
  const body = [
    ...[...op.i32(1), ...op.i32(0), ...op.i32(64), ...op.i32(1024), ...op.call(write), ...op.drop],
    ...[...op.i32(1024), ...op.i32Load(), ...op.i32(16), 0x76, ...op.call(exit)],
  ];
  b.exportFunction("_start", b.function("_start", [], [], body));
  const rss = process.memoryUsage().rss;
  const container = runtime.run(spec(dir.path, { module: b.bytes(), args: ["big"] }));
  let largest = 0;
  container.onOutput((_stream, chunk) => {
    largest = Math.max(largest, chunk.length);
  });
  assert.equal((await container.exited).exitCode, 16, "1 MiB written");
  assert.equal(largest, 1024 * 1024, "the attached listener got the 1 MiB, not 2 GiB");
  assert.ok(process.memoryUsage().rss - rss < 256 * 1024 * 1024, "no 2 GiB copy");
});
