import assert from "node:assert/strict";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { rotatedLogFiles } from "../../../src/logs/log-writer.ts";
import { Runtime } from "../../../src/runtime/index.ts";
import { WASI_FUNCTIONS, WASI_MODULE } from "../../../src/runtime/wasi-abi.ts";
import { collector, guest, guestBytes, logText, readLog, spec, tempDir, until } from "./helpers.ts";
import { ModuleBuilder, op, type ValType } from "./wasm-builder.ts";

const dir = tempDir();
const runtime = new Runtime({ workers: 1 });
before(() => runtime.start());
after(async () => {
  await runtime.destroy();
  dir.remove();
});

async function startError(module: WebAssembly.Module | Uint8Array, entrypoint?: string) {
  const container = runtime.run(spec(dir.path, { module, args: ["bad"], entrypoint }));
  const status = await container.exited;
  assert.equal(status.reason, "StartError");
  assert.equal(status.exitCode, 128);
  assert.equal(status.startedAt, undefined);
  await assert.rejects(container.started, { code: "WASMLET_ERR_START_FAILED" });
  return status.message ?? "";
}

test("bytes that are not a module, truncated modules and components are StartErrors saying so", async () => {
  const hello = await guestBytes("hello");
  assert.match(
    await startError(new TextEncoder().encode("#!/bin/sh\necho hi\n")),
    /not a WebAssembly module/,
  );
  assert.match(
    await startError(hello.subarray(0, hello.length >> 1)),
    /does not compile|malformed/,
  );
  const component = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]);
  assert.match(await startError(component), /is a WebAssembly component/);
});

test("a module without _start, without memory, or with imports wasmlet lacks names what is wrong", async () => {
  const library = new ModuleBuilder().memory(1);
  library.exportFunction("add", library.function("add", [], [], []));
  assert.match(
    await startError(library.bytes()),
    /no exported function `_start` \(it exports: add\).*WASI command/,
  );
  assert.match(await startError(library.bytes(), "missing"), /no exported function `missing`/);

  const noMemory = new ModuleBuilder();
  noMemory.exportFunction("_start", noMemory.function("_start", [], [], []));
  assert.match(await startError(noMemory.bytes()), /does not export its memory/);

  const foreign = new ModuleBuilder();
  foreign.importFunction("env", "js_log", ["i32"], []);
  foreign.importFunction("wasi_unstable", "fd_write", ["i32", "i32", "i32", "i32"], ["i32"]);
  foreign.importFunction(WASI_MODULE, "sock_bind_v2", ["i32", "i32", "i32"], ["i32"]);
  foreign.importFunction(WASI_MODULE, "fd_write", ["i32", "i32", "i32", "i32"], ["i32"]);
  foreign.memory(1);
  foreign.exportFunction("_start", foreign.function("_start", [], [], []));
  assert.equal(
    await startError(foreign.bytes()),
    "the module imports what wasmlet does not provide: env.js_log, wasi_unstable.fd_write, wasi_snapshot_preview1.sock_bind_v2 (wasmlet provides wasi_snapshot_preview1 only; build for wasm32-wasip1)",
  );
});

test("socket calls on fds 0-3 (sock_accept crashes plain node:wasi) answer ENOTSOCK or EBADF and the node survives", async () => {
  const container = runtime.run(
    spec(dir.path, { module: await guest("sockets"), args: ["sockets"] }),
  );
  const status = await container.exited;
  assert.equal(status.reason, "Completed");
  assert.deepEqual(logText(container.spec.logPath), [
    "sock_accept(0) = 57",
    "sock_accept(1) = 57",
    "sock_accept(2) = 57",
    "sock_accept(3) = 8",
    "sock_recv(0) = 57",
    "sock_send(1) = 57",
    "sock_shutdown(2) = 57",
    "survived",
  ]);
});

test("proc_raise cannot signal wasmlet's process: it returns ENOSYS", async () => {
  for (const signal of [9, 15, 3]) {
    const b = new ModuleBuilder();
    const raise = b.importFunction(WASI_MODULE, "proc_raise", ["i32"], ["i32"]);
    const exit = b.importFunction(WASI_MODULE, "proc_exit", ["i32"], []);
    b.memory(1);
    b.exportFunction(
      "_start",
      b.function("_start", [], [], [...op.i32(signal), ...op.call(raise), ...op.call(exit)]),
    );
    const status = await runtime.run(spec(dir.path, { module: b.bytes(), args: ["raise"] })).exited;
    assert.equal(status.exitCode, 52);
  }
});

test("a guest flooding stdout stays within its log rotation limits and is stopped cleanly", async () => {
  const rss = process.memoryUsage().rss;
  const flood = runtime.run(
    spec(dir.path, {
      id: "flood",
      module: await guest("flood"),
      args: ["flood"],
      logPath: join(dir.path, "flood", "0.log"),
      logRotation: { maxBytes: 256 * 1024, maxFiles: 3 },
    }),
  );
  await until(
    () =>
      rotatedLogFiles(flood.spec.logPath).length === 2 &&
      rotatedLogFiles(flood.spec.logPath)[1]!.n > 20,
    "two rotated log files",
  );
  const status = await flood.stop(1000);
  assert.equal(status.exitCode, 143);
  const files = readdirSync(join(dir.path, "flood")).sort();
  assert.equal(files.length, 3, files.join(","));
  for (const file of files) {
    const lines = readLog(join(dir.path, "flood", file));
    // Only the very last record can be short: the line the guest was writing when it stopped.
    if (file !== "0.log") assert.ok(lines.length > 1500, `${file}: ${lines.length} lines`);
    assert.ok(lines.slice(0, -1).every((l) => l.tag === "F" && l.text.length === 99));
  }
  assert.ok(
    process.memoryUsage().rss - rss < 64 * 1024 * 1024,
    "the host did not buffer the flood",
  );
});

test("a line that never ends is cut into P records of the maximum line size", async () => {
  const container = runtime.run(
    spec(dir.path, {
      module: await guest("flood"),
      args: ["flood"],
      env: { NEWLINES: "0", SIZE: "1000", LINES: "50" },
    }),
  );
  assert.equal((await container.exited).reason, "Completed");
  const lines = readLog(container.spec.logPath);
  assert.deepEqual(
    lines.map((l) => [l.tag, l.text.length]),
    [
      ["P", 16384],
      ["P", 16384],
      ["P", 16384],
      ["F", 50_000 - 3 * 16384],
    ],
  );
});

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A module calling every WASI function (but proc_exit) three times with hostile arguments. */
function fuzzModule(seed: number): Uint8Array {
  const random = mulberry32(seed);
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;
  const i32s = [
    0, 1, 2, 3, 4, 7, 8, 64, 100, 1000, 4096, 65532, 65535, 65536, 131072, 0x7fffffff, -1, -8,
    -65536,
  ];
  const i64s = [0n, 1n, -1n, 2n ** 62n, 2n ** 63n - 1n, -(2n ** 63n), 4096n, 1n << 40n];
  const b = new ModuleBuilder();
  const names = Object.keys(WASI_FUNCTIONS).filter((n) => n !== "proc_exit");
  const imports = names.map((name) => {
    const sig = WASI_FUNCTIONS[name]!;
    return {
      name,
      sig,
      index: b.importFunction(
        WASI_MODULE,
        name,
        [...sig.params] as ValType[],
        [...sig.results] as ValType[],
      ),
    };
  });
  b.memory(2, 4);
  // Things worth pointing at: paths that try to escape, iovecs, subscriptions with zero timeouts.
  b.data(0, "../../../../etc/passwd\0/etc/shadow\0..\0.\0sub/../../x\0");
  b.data(100, new Uint8Array(new Uint32Array([0, 22, 64, 1_000_000, 65530, 100]).buffer));
  b.data(4096, "dir/child");
  const body: number[] = [];
  for (let round = 0; round < 3; round++) {
    for (const fn of [...imports].sort(() => random() - 0.5)) {
      for (const param of fn.sig.params) {
        if (param === "i64")
          body.push(
            ...op.i64(random() < 0.8 ? pick(i64s) : BigInt(Math.floor(random() * 2 ** 40))),
          );
        else body.push(...op.i32(random() < 0.8 ? pick(i32s) : Math.floor(random() * 140_000)));
      }
      body.push(...op.call(fn.index));
      if (fn.sig.results.length) body.push(...op.drop);
    }
  }
  b.exportFunction("_start", b.function("_start", [], [], body));
  return b.bytes();
}

test("guests calling every WASI function with garbage end with a precise status and harm nothing else", async (t) => {
  const outside = join(dir.path, "fuzz-outside");
  const volume = join(dir.path, "fuzz-volume");
  mkdirSync(outside);
  mkdirSync(join(volume, "dir"), { recursive: true });
  writeFileSync(join(outside, "keep.txt"), "keep");
  const neighbour = runtime.run(
    spec(dir.path, { module: await guest("ticker"), args: ["ticker"], env: { TICK_MS: "5" } }),
  );
  const ticks = collector();
  neighbour.onOutput(ticks.onOutput);
  const statuses = await Promise.all(
    [1, 2, 3, 4, 5, 6].map(
      (seed) =>
        runtime.run(
          spec(dir.path, {
            module: fuzzModule(seed),
            args: ["fuzz"],
            mounts: [{ hostPath: volume, guestPath: "/v", readOnly: seed % 2 === 0 }],
            stdin: seed % 3 === 0,
            deadlineMs: 1500,
          }),
        ).exited,
    ),
  );
  t.diagnostic(statuses.map((s) => `${s.reason} ${s.exitCode} ${s.message ?? ""}`).join("; "));
  for (const status of statuses) {
    const precise =
      status.reason === "Completed" ||
      status.reason === "DeadlineExceeded" ||
      (status.reason === "Error" && /^wasm trap: /.test(status.message ?? ""));
    assert.ok(precise, JSON.stringify(status));
  }
  assert.deepEqual(readdirSync(outside), ["keep.txt"]);
  const before = ticks.text().length;
  await until(() => ticks.text().length > before + 20, "more ticks");
  assert.equal(neighbour.running, true);
  await neighbour.stop(0);
  const after = runtime.run(spec(dir.path, { module: await guest("hello"), args: ["hello"] }));
  assert.equal((await after.exited).reason, "Completed");
});
