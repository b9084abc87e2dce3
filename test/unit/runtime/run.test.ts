import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Runtime } from "../../../src/runtime/index.ts";
import { WASI_MODULE } from "../../../src/runtime/wasi-abi.ts";
import { collector, guest, logText, readLog, spec, tempDir } from "./helpers.ts";
import { ModuleBuilder, op } from "./wasm-builder.ts";

const dir = tempDir();
const runtime = new Runtime({ workers: 1 });
before(() => runtime.start());
after(async () => {
  await runtime.destroy();
  dir.remove();
});

test("a guest runs to completion: argv, env, stdout and stderr land in the CRI log", async () => {
  const container = runtime.run(
    spec(dir.path, {
      module: await guest("hello"),
      args: ["hello", "a b", ""],
      env: { GREETING: "hi=there" },
    }),
  );
  const startedAt = await container.started;
  const status = await container.exited;
  assert.equal(status.exitCode, 0);
  assert.equal(status.reason, "Completed");
  assert.equal(status.message, undefined);
  assert.equal(status.startedAt, startedAt);
  assert.ok(status.finishedAt >= startedAt);
  assert.deepEqual(logText(container.spec.logPath), [
    "hello from wasm",
    "arg[0]=hello",
    "arg[1]=a b",
    "arg[2]=",
    "env GREETING=hi=there",
  ]);
  assert.deepEqual(logText(container.spec.logPath, "stderr"), ["hello on stderr"]);
  assert.ok(readLog(container.spec.logPath).every((l) => l.tag === "F"));
  assert.equal(container.running, false);
  assert.equal(runtime.container(container.id), undefined);
});

test("a non-zero exit is Error with the code; workingDir becomes $PWD", async () => {
  const container = runtime.run(
    spec(dir.path, {
      module: await guest("hello"),
      args: ["hello"],
      env: { EXIT_CODE: "42" },
      workingDir: "/work",
    }),
  );
  const status = await container.exited;
  assert.deepEqual(
    [status.exitCode, status.reason, status.message],
    [42, "Error", "exited with code 42"],
  );
  assert.ok(logText(container.spec.logPath).includes("env PWD=/work"));
});

test("a Go (GOOS=wasip1) guest runs, sleeps and exits with its code", async () => {
  const out = collector();
  const container = runtime.run(
    spec(dir.path, {
      module: await guest("hello-go"),
      args: ["hello-go", "x"],
      env: { SLEEP_MS: "30", EXIT_CODE: "7" },
    }),
  );
  container.onOutput(out.onOutput);
  const status = await container.exited;
  assert.equal(status.exitCode, 7);
  assert.ok(status.finishedAt.getTime() - status.startedAt!.getTime() >= 25);
  assert.match(out.text(), /hello from Go wasm\narg\[0\]=hello-go\narg\[1\]=x\n/);
  assert.ok(logText(container.spec.logPath).includes("env SLEEP_MS=30"));
});

test("another export can be the entrypoint (runwasi path#func); a reactor's _initialize runs first", async () => {
  const b = new ModuleBuilder();
  const fdWrite = b.importFunction(WASI_MODULE, "fd_write", ["i32", "i32", "i32", "i32"], ["i32"]);
  b.memory(1).data(16, "init\n").data(32, "main\n");
  // iovecs at 0 ({16,5}) and 8 ({32,5})
  b.data(0, new Uint8Array(new Uint32Array([16, 5, 32, 5]).buffer));
  const write = (iov: number) => [
    ...op.i32(1),
    ...op.i32(iov),
    ...op.i32(1),
    ...op.i32(100),
    ...op.call(fdWrite),
    ...op.drop,
  ];
  b.exportFunction("_initialize", b.function("initialize", [], [], write(0)));
  b.exportFunction("serve", b.function("serve", [], [], write(8)));
  const out = collector();
  const container = runtime.run(
    spec(dir.path, { module: b.bytes(), args: ["reactor"], entrypoint: "serve" }),
  );
  container.onOutput(out.onOutput);
  const status = await container.exited;
  assert.equal(status.reason, "Completed");
  assert.equal(out.text(), "init\nmain\n");
});
