// Guests sharing one worker thread: whatever one of them does — trap, overflow its stack, hit its
// memory limit, exit, call imports with garbage — the others keep their pace; and when the thread
// itself dies, every guest on it is reported ended with the reason, and the runtime goes on.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { after, test } from "node:test";
import { DescriptorBudget } from "../../../src/runtime/descriptor-budget.ts";
import { Runtime } from "../../../src/runtime/index.ts";
import { InstanceHandle } from "../../../src/runtime/instance.ts";
import { WASI_MODULE } from "../../../src/runtime/wasi-abi.ts";
import { WorkerPool } from "../../../src/runtime/worker-pool.ts";
import { guest, logText, spec, tempDir, until } from "./helpers.ts";
import { ModuleBuilder, op } from "./wasm-builder.ts";

const MiB = 1024 * 1024;
const dir = tempDir();
after(() => dir.remove());

/** One module, an export per way of dying. */
function faults(): Uint8Array {
  const b = new ModuleBuilder();
  const write = b.importFunction(WASI_MODULE, "fd_write", ["i32", "i32", "i32", "i32"], ["i32"]);
  const poll = b.importFunction(WASI_MODULE, "poll_oneoff", ["i32", "i32", "i32", "i32"], ["i32"]);
  const accept = b.importFunction(WASI_MODULE, "sock_accept", ["i32", "i32", "i32"], ["i32"]);
  const exit = b.importFunction(WASI_MODULE, "proc_exit", ["i32"], []);
  b.memory(2, 2);
  const recurse = b.function("recurse", [], [], op.call(4));
  b.exportFunction("trap", b.function("trap", [], [], op.unreachable));
  b.exportFunction("overflow", b.function("overflow", [], [], op.call(recurse)));
  // memory.grow by 100 pages (refused: the memory is at its 2-page limit), then a store out of it.
  b.exportFunction(
    "grow",
    b.function(
      "grow",
      [],
      [],
      [...op.i32(100), 0x40, 0x00, ...op.drop, ...op.i32(-4), ...op.i32(1), ...op.i32Store()],
    ),
  );
  b.exportFunction("exit", b.function("exit", [], [], [...op.i32(3), ...op.call(exit)]));
  // Garbage to the host: wild pointers and counts, a socket call, then exit 7.
  const hostile = [
    ...[
      ...op.i32(1),
      ...op.i32(-16),
      ...op.i32(0x7fffffff),
      ...op.i32(-1),
      ...op.call(write),
      ...op.drop,
    ],
    ...[
      ...op.i32(-64),
      ...op.i32(-64),
      ...op.i32(1000),
      ...op.i32(-4),
      ...op.call(poll),
      ...op.drop,
    ],
    ...[...op.i32(0), ...op.i32(0), ...op.i32(-4), ...op.call(accept), ...op.drop],
    ...[...op.i32(7), ...op.call(exit)],
  ];
  b.exportFunction("hostile", b.function("hostile", [], [], hostile));
  return b.bytes();
}

test("a guest's fault never disturbs the 50 guests beside it on its worker", async () => {
  const runtime = new Runtime({ workers: 1 });
  await runtime.start();
  try {
    const ticker = await guest("ticker");
    const neighbours = Array.from({ length: 50 }, () =>
      runtime.run(spec(dir.path, { module: ticker, args: ["t"], env: { TICK_MS: "20" } })),
    );
    await Promise.all(neighbours.map((n) => n.started));
    const bytes = faults();
    const expected: Record<string, [string, number, RegExp]> = {
      trap: ["Error", 134, /unreachable/],
      overflow: ["Error", 134, /call stack exhausted/],
      grow: ["OOMKilled", 137, /limit/],
      exit: ["Error", 3, /./],
      hostile: ["Error", 7, /./],
    };
    const t0 = performance.now();
    for (let round = 0; round < 3; round++) {
      for (const [entrypoint, [reason, code, message]] of Object.entries(expected)) {
        const status = await runtime.run(
          spec(dir.path, {
            module: bytes,
            args: [entrypoint],
            entrypoint,
            // Only `grow` runs at its limit; the others have room to spare.
            memoryLimitBytes: entrypoint === "grow" ? 2 * 65536 : 64 * MiB,
          }),
        ).exited;
        assert.equal(status.reason, reason, `${entrypoint}: ${JSON.stringify(status)}`);
        assert.equal(status.exitCode, code, entrypoint);
        assert.match(status.message ?? "exited", message, entrypoint);
      }
    }
    // Let the neighbours tick for a while after the faults, then count: a tick every 20 ms.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const elapsed = performance.now() - t0;
    await Promise.all(neighbours.map((n) => n.stop(0)));
    const counts = neighbours.map((n) => logText(n.spec.logPath).length);
    const ideal = elapsed / 20;
    assert.ok(
      Math.min(...counts) >= ideal * 0.6,
      `ticks per neighbour ${Math.min(...counts)}..${Math.max(...counts)}, ideally ${ideal.toFixed(0)}`,
    );
    for (const n of neighbours) assert.equal((await n.exited).exitCode, 137);
  } finally {
    await runtime.destroy();
  }
});

test("a worker thread that dies ends its guests with the reason; the pool replaces it", async () => {
  const pool = new WorkerPool({
    workers: 1,
    descriptors: new DescriptorBudget(1000),
    logger: undefined,
  });
  await pool.start();
  try {
    const ticker = await guest("ticker");
    const onExit = () => {};
    const run = (id: string) =>
      new InstanceHandle(
        {
          id,
          module: ticker,
          args: ["t"],
          env: { TICK_MS: "60000" },
          mounts: [],
          entrypoint: "_start",
          memoryLimitBytes: 64 * MiB,
          memoryGroup: id,
          cpuLimitMillis: undefined,
          dedicated: false,
          stdin: false,
          output: { kind: "log", logPath: `${dir.path}/${id}.log`, maxLineBytes: 16384 },
          deadlineMs: undefined,
          network: undefined,
        },
        { pool, logger: undefined, onExit },
      );
    const guests = [run("a"), run("b"), run("c")];
    await Promise.all(guests.map((g) => g.started));
    // The one shared worker: kill its thread as a crash would.
    const probe = await pool.place("probe", { onMessage() {}, onExit() {} });
    probe.detach("probe");
    await probe.terminate();
    for (const g of guests) {
      const status = await g.exited;
      assert.equal(status.reason, "Error", JSON.stringify(status));
      assert.match(status.message ?? "", /worker thread/);
    }
    assert.equal(pool.stats().workers, 1, "replaced");
    const next = run("d");
    await next.started;
    await next.stop(0);
  } finally {
    await pool.destroy();
  }
});

/** Opens `f` in its first preopen until an open fails, then sleeps (poll_oneoff) until stopped. */
function fileHoarder(): Uint8Array {
  const b = new ModuleBuilder();
  const open = b.importFunction(
    WASI_MODULE,
    "path_open",
    ["i32", "i32", "i32", "i32", "i32", "i64", "i64", "i32", "i32"],
    ["i32"],
  );
  const write = b.importFunction(WASI_MODULE, "fd_write", ["i32", "i32", "i32", "i32"], ["i32"]);
  const poll = b.importFunction(WASI_MODULE, "poll_oneoff", ["i32", "i32", "i32", "i32"], ["i32"]);
  b.memory(1);
  b.data(64, "f");
  // A clock subscription at 256: relative, 10 s.
  b.data(256 + 8, [0]);
  b.data(256 + 24, [0x00, 0xe4, 0x0b, 0x54, 0x02, 0x00, 0x00, 0x00]);
  // The errno that ended the opens, printed as one byte at 32 (iovec at 16).
  b.data(16, [32, 0, 0, 0, 1, 0, 0, 0]);
  const openOnce = [
    ...[...op.i32(3), ...op.i32(0), ...op.i32(64), ...op.i32(1), ...op.i32(0)],
    ...[...op.i64(2), ...op.i64(0), ...op.i32(0), ...op.i32(4), ...op.call(open)],
  ];
  const body = [
    // local0 = errno of path_open; loop while it is 0
    ...[0x03, 0x40, ...openOnce, 0x22, 0x00, 0x45, 0x0d, 0x00, 0x0b],
    // memory[32] = errno; fd_write(1, iovec 16, 1, 8)
    ...[...op.i32(32), ...op.localGet(0), 0x3a, 0x00, 0x00],
    ...[...op.i32(1), ...op.i32(16), ...op.i32(1), ...op.i32(8), ...op.call(write), ...op.drop],
    ...op.loop([
      ...op.i32(256),
      ...op.i32(512),
      ...op.i32(1),
      ...op.i32(8),
      ...op.call(poll),
      ...op.drop,
    ]),
  ];
  b.exportFunction("_start", b.function("_start", [], [], body, ["i32"]));
  return b.bytes();
}

test("guests together hold no more host descriptors than the node's budget: past it, ENFILE", async () => {
  const volume = `${dir.path}/files`;
  mkdirSync(volume);
  writeFileSync(`${volume}/f`, "x");
  const runtime = new Runtime({ workers: 1, maxGuestDescriptors: 60 });
  await runtime.start();
  try {
    const fds = () => readdirSync("/proc/self/fd").length;
    const before = fds();
    const hoarders = [0, 1, 2].map(() =>
      runtime.run(
        spec(dir.path, {
          module: fileHoarder(),
          args: ["hoard"],
          mounts: [{ hostPath: volume, guestPath: "/v", readOnly: true }],
        }),
      ),
    );
    const out = (c: (typeof hoarders)[0]) => readFileSync(c.spec.logPath).subarray(-2, -1)[0];
    for (const c of hoarders) {
      await c.started;
      await until(
        () => existsSync(c.spec.logPath) && readFileSync(c.spec.logPath).length > 0,
        "the guest's first output",
      );
    }
    // Each guest opened until the node's budget of 60 was spent, and was told ENFILE (41).
    assert.deepEqual(
      hoarders.map((c) => out(c)),
      [41, 41, 41],
    );
    assert.ok(fds() - before <= 60 + 10, `${fds() - before} descriptors more than before`);
    await Promise.all(hoarders.map((c) => c.stop(0)));
    await until(() => fds() <= before + 3, "the descriptors to close");
  } finally {
    await runtime.destroy();
  }
});

test("a container and its execs share its memory limit: the exec that crosses it is OOMKilled", async () => {
  // _start: grow by 40 pages (2.5 MiB), then spin. Two instances need 82 pages; the limit is 64.
  const b = new ModuleBuilder();
  b.memory(1);
  const body = [...op.i32(40), 0x40, 0x00, ...op.drop, ...op.loop([])];
  b.exportFunction("_start", b.function("_start", [], [], body));
  const runtime = new Runtime({ workers: 1 });
  await runtime.start();
  try {
    const container = runtime.run(
      spec(dir.path, { module: b.bytes(), args: ["main"], memoryLimitBytes: 4 * MiB }),
    );
    await container.started;
    await until(() => container.memoryBytes() >= 41 * 65536, "41 pages of memory");
    const exec = container.exec({ args: ["extra"], onOutput: () => {} });
    const status = await exec.exited;
    assert.equal(status.reason, "OOMKilled", JSON.stringify(status));
    assert.match(
      status.message ?? "",
      /the container and its execs hold \d+ bytes .* limit of 4194304/,
    );
    assert.equal(container.running, true, "the container itself runs on");
    await container.stop(0);
  } finally {
    await runtime.destroy();
  }
});
