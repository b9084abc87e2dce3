import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { Runtime } from "../../../src/runtime/index.ts";
import { WASI_MODULE } from "../../../src/runtime/wasi-abi.ts";
import { guest, spec, tempDir, until } from "./helpers.ts";
import { ModuleBuilder, op } from "./wasm-builder.ts";

const dir = tempDir();
const runtimes: Runtime[] = [];
after(async () => {
  await Promise.all(runtimes.map((r) => r.destroy()));
  dir.remove();
});

/** Threads of this process whose name starts with `prefix` (the workers name theirs). */
function threadsNamed(prefix: string): number {
  return readdirSync("/proc/self/task").filter((task) => {
    try {
      return readFileSync(`/proc/self/task/${task}/comm`, "utf8").startsWith(prefix);
    } catch {
      return false;
    }
  }).length;
}

/** A runtime destroyed after the tests even when one fails. */
function newRuntime(options: ConstructorParameters<typeof Runtime>[0]): Runtime {
  const runtime = new Runtime(options);
  runtimes.push(runtime);
  return runtime;
}

test("run() needs start(); start, close and destroy are idempotent; a closed runtime runs nothing", async () => {
  const runtime = newRuntime({ workers: 1 });
  const module = await guest("hello");
  assert.throws(() => runtime.run(spec(dir.path, { module, args: ["hello"] })), {
    code: "WASMLET_ERR_RUNTIME_NOT_STARTED",
  });
  const first = runtime.start();
  assert.equal(runtime.start(), first);
  await runtime.ready;
  assert.deepEqual(runtime.stats(), { running: 0, guests: 0, workers: 1, busyWorkers: 0 });
  const done = runtime.run(spec(dir.path, { module, args: ["hello"] }));
  assert.equal((await done.exited).reason, "Completed");
  await Promise.all([runtime.close(), runtime.close()]);
  assert.throws(() => runtime.run(spec(dir.path, { module, args: ["hello"] })), {
    code: "WASMLET_ERR_RUNTIME_CLOSED",
  });
  await runtime.destroy();
  await runtime.destroy();
});

test("invalid specs are refused synchronously with the field named", async () => {
  const runtime = newRuntime({ workers: 1 });
  await runtime.start();
  const module = await guest("hello");
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ args: [] }, /args must be a non-empty array/],
    [{ env: { "A=B": "x" } }, /env name "A=B" is invalid/],
    [
      { mounts: [{ hostPath: "/tmp", guestPath: "data", readOnly: true }] },
      /mounts\[0\].guestPath must be an absolute path/,
    ],
    [
      { mounts: [{ hostPath: "/tmp", guestPath: "/a/../b", readOnly: true }] },
      /must be normalised/,
    ],
    [
      {
        mounts: [
          { hostPath: "/tmp", guestPath: "/a", readOnly: true },
          { hostPath: "/var", guestPath: "/a/", readOnly: false },
        ],
      },
      /two mounts at \/a/,
    ],
    [{ memoryLimitBytes: 1000 }, /memoryLimitBytes must be a number of at least 65536/],
    [{ module: "not a module" }, /module must be a compiled WebAssembly.Module/],
    [{ logRotation: { maxBytes: 0, maxFiles: 2 } }, /logRotation.maxBytes/],
  ];
  for (const [fields, message] of bad) {
    assert.throws(
      () => runtime.run({ ...spec(dir.path, { module, args: ["hello"] }), ...fields } as never),
      {
        code: "WASMLET_ERR_INVALID_SPEC",
        message,
      },
    );
  }
  const ticker = runtime.run(
    spec(dir.path, {
      id: "same",
      module: await guest("ticker"),
      args: ["t"],
      env: { TICK_MS: "60000" },
    }),
  );
  assert.throws(() => runtime.run(spec(dir.path, { id: "same", module, args: ["hello"] })), {
    code: "WASMLET_ERR_DUPLICATE_CONTAINER",
  });
  assert.equal(runtime.container("same"), ticker);
  assert.deepEqual(runtime.containers(), [ticker]);
  await ticker.stop(0);
  assert.equal(runtime.container("same"), undefined);
  assert.throws(() => new Runtime({ workers: 0 }), { code: "WASMLET_ERR_INVALID_SPEC" });
  await runtime.destroy();
});

test("close() stops running containers gracefully; destroy() kills them", async () => {
  const runtime = newRuntime({ workers: 1, closeGracePeriodMs: 5000 });
  await runtime.start();
  const sleeper = runtime.run(
    spec(dir.path, { module: await guest("ticker"), args: ["t"], env: { TICK_MS: "60000" } }),
  );
  await sleeper.started;
  await runtime.close();
  assert.equal((await sleeper.exited).exitCode, 143);

  const other = newRuntime({ workers: 1 });
  await other.start();
  const loop = other.run(spec(dir.path, { module: await guest("cpuloop"), args: ["loop"] }));
  await loop.started;
  await other.destroy();
  const status = await loop.exited;
  assert.deepEqual([status.exitCode, status.message], [137, "killed: the runtime was destroyed"]);
});

test("guests share the workers: each new one goes to the worker with the fewest", async () => {
  const runtime = newRuntime({ workers: 2 });
  await runtime.start();
  const module = await guest("ticker");
  const sleepers = Array.from({ length: 6 }, () =>
    runtime.run(spec(dir.path, { module, args: ["t"], env: { TICK_MS: "60000" } })),
  );
  await Promise.all(sleepers.map((c) => c.started));
  assert.deepEqual(runtime.stats(), { running: 6, guests: 6, workers: 2, busyWorkers: 2 });
  assert.equal(threadsNamed("wasmlet-guests"), 2, "six guests, two threads");
  const exec = sleepers[0]!.exec({ args: ["t"], onOutput: () => {} });
  await exec.started;
  assert.equal(runtime.stats().guests, 7);
  await Promise.all(sleepers.map((c) => c.stop(0)));
  await exec.exited;
  assert.deepEqual(runtime.stats(), { running: 0, guests: 0, workers: 2, busyWorkers: 0 });
  await runtime.destroy();
});

test("a container with exclusive CPU gets a thread of its own, shared with its execs, retired after it", async () => {
  const runtime = newRuntime({ workers: 1 });
  await runtime.start();
  const dedicatedThreads = () => threadsNamed("wasmlet-guest-d");
  const module = await guest("ticker");
  const shared = runtime.run(spec(dir.path, { module, args: ["t"], env: { TICK_MS: "60000" } }));
  const own = runtime.run(
    spec(dir.path, { module, args: ["t"], env: { TICK_MS: "60000" }, exclusiveCpu: true }),
  );
  await Promise.all([shared.started, own.started]);
  assert.deepEqual(runtime.stats(), { running: 2, guests: 2, workers: 2, busyWorkers: 2 });
  assert.equal(dedicatedThreads(), 1);
  const exec = own.exec({ args: ["t"], onOutput: () => {} });
  await exec.started;
  // The exec joined its container's thread: still two threads, each busy.
  assert.deepEqual(runtime.stats(), { running: 2, guests: 3, workers: 2, busyWorkers: 2 });
  await own.stop(0);
  await exec.exited;
  await until(
    () => runtime.stats().workers === 1 && dedicatedThreads() === 0,
    "the dedicated thread to end",
  );
  await shared.stop(0);
  await runtime.destroy();
});

test("a guest killed while it holds open files leaks no host descriptor", async () => {
  const volume = join(dir.path, "fds");
  mkdirSync(volume);
  for (let i = 0; i < 20; i++) writeFileSync(join(volume, `f${i}`), "x");
  // Opens f0..f19 (path_open with fd out-pointer 4), then loops forever without WASI calls.
  const b = new ModuleBuilder();
  const open = b.importFunction(
    WASI_MODULE,
    "path_open",
    ["i32", "i32", "i32", "i32", "i32", "i64", "i64", "i32", "i32"],
    ["i32"],
  );
  b.memory(1);
  const body: number[] = [];
  for (let i = 0; i < 20; i++) {
    b.data(64 + i * 8, `f${i}`);
    const length = `f${i}`.length;
    body.push(...op.i32(3), ...op.i32(0), ...op.i32(64 + i * 8), ...op.i32(length), ...op.i32(0));
    body.push(...op.i64(2), ...op.i64(0), ...op.i32(0), ...op.i32(4), ...op.call(open), ...op.drop);
  }
  body.push(...op.loop([]));
  b.exportFunction("_start", b.function("_start", [], [], body));
  const runtime = newRuntime({ workers: 1 });
  await runtime.start();
  const fds = () => readdirSync("/proc/self/fd").length;
  await runtime.run(spec(dir.path, { module: await guest("hello"), args: ["warm"] })).exited;
  const before = fds();
  const container = runtime.run(
    spec(dir.path, {
      module: b.bytes(),
      args: ["holder"],
      mounts: [{ hostPath: volume, guestPath: "/v", readOnly: true }],
    }),
  );
  await container.started;
  await until(() => fds() >= before + 20, "the descriptors to open");
  await container.stop(0);
  await until(() => fds() <= before + 1, "the descriptors to close");
  await runtime.destroy();
});
