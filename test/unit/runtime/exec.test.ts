import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Runtime } from "../../../src/runtime/index.ts";
import { collector, guest, spec, tempDir, until } from "./helpers.ts";

const dir = tempDir();
const data = join(dir.path, "data");
mkdirSync(data);
writeFileSync(join(data, "greeting.txt"), "hello from the volume");
const runtime = new Runtime({ workers: 1 });
before(() => runtime.start());
after(async () => {
  await runtime.destroy();
  dir.remove();
});

async function runningTicker(module: WebAssembly.Module) {
  const container = runtime.run(
    spec(dir.path, {
      module,
      args: ["ticker"],
      env: { TICK_MS: "60000", ROLE: "main" },
      mounts: [{ hostPath: data, guestPath: "/data", readOnly: true }],
    }),
  );
  await container.started;
  return container;
}

test("exec runs another instance of the module with other argv and the container's env and mounts", async () => {
  const container = runtime.run(
    spec(dir.path, {
      module: await guest("fsprobe"),
      args: ["fsprobe", "wait"],
      env: { ROLE: "main" },
      mounts: [{ hostPath: data, guestPath: "/data", readOnly: true }],
      stdin: true,
    }),
  );
  await container.started;
  const out = collector();
  const exec = container.exec({
    args: ["fsprobe", "env", "ROLE", "read", "/data/greeting.txt", "write", "/data/x", "no"],
    onOutput: out.onOutput,
  });
  const status = await exec.exited;
  assert.equal(status.reason, "Completed");
  assert.equal(
    out.text(),
    "env ROLE: main\nread /data/greeting.txt: ok hello from the volume\nwrite /data/x: error 69 Read-only file system\n",
  );
  assert.equal(container.running, true);
  container.closeStdin();
  assert.equal((await container.exited).reason, "Completed");
});

test("stopping an exec leaves its container running", async () => {
  const ticker = await runningTicker(await guest("ticker"));
  const out = collector();
  const exec = ticker.exec({ args: ["ticker"], onOutput: out.onOutput });
  await until(() => out.text().includes("tick 1"), "the first tick");
  const status = await exec.stop(1000);
  assert.equal(status.exitCode, 143);
  assert.equal(out.text(), "tick 1\n");
  assert.equal(ticker.running, true);
  await ticker.stop(0);
});

test("exec streams stdin in and stdout/stderr out, and resolves to the exit code", async () => {
  const container = runtime.run(
    spec(dir.path, {
      module: await guest("cat"),
      args: ["cat"],
      env: { EXIT_CODE: "5" },
      stdin: true,
      mounts: [{ hostPath: data, guestPath: "/data", readOnly: true }],
    }),
  );
  await container.started;
  const out = collector();
  const exec = container.exec({ args: ["cat", "--exec"], stdin: true, onOutput: out.onOutput });
  await exec.started;
  await exec.writeStdin("over the wire\n");
  exec.closeStdin();
  const status = await exec.exited;
  assert.equal(status.exitCode, 5, "the container's env reached the exec");
  assert.equal(out.text("stdout"), "over the wire\n");
  assert.equal(out.text("stderr"), "EOF after 14 bytes\n");
  assert.equal(container.running, true, "the exec's end does not end the container");
  container.closeStdin();
  assert.equal((await container.exited).exitCode, 5);
});

test("exec output has backpressure: a slow consumer gets everything in order", async () => {
  const main = runtime.run(
    spec(dir.path, { module: await guest("cat"), args: ["cat"], stdin: true }),
  );
  await main.started;
  // The exec reruns cat; feed it more than the 1 MiB in flight it may have, and consume slowly.
  const chunks: Buffer[] = [];
  const exec = main.exec({
    args: ["cat"],
    stdin: true,
    onOutput: async (stream, chunk) => {
      if (stream !== "stdout") return;
      if (chunks.length % 4 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      chunks.push(Buffer.from(chunk));
    },
  });
  const input = Buffer.alloc(1.5 * 1024 * 1024);
  for (let i = 0; i < input.length; i++) input[i] = i % 251;
  await exec.writeStdin(input);
  exec.closeStdin();
  assert.equal((await exec.exited).exitCode, 0);
  assert.ok(Buffer.concat(chunks).equals(input));
  main.closeStdin();
  await main.exited;
});

test("exec needs a running container, and dies with it", async () => {
  const done = runtime.run(spec(dir.path, { module: await guest("hello"), args: ["hello"] }));
  await done.exited;
  assert.throws(() => done.exec({ args: ["hello"], onOutput: () => {} }), {
    code: "WASMLET_ERR_NOT_RUNNING",
  });
  const ticker = await runningTicker(await guest("ticker"));
  assert.throws(() => ticker.exec({ args: [], onOutput: () => {} }), {
    code: "WASMLET_ERR_INVALID_SPEC",
  });
  const exec = ticker.exec({ args: ["ticker"], onOutput: () => {} });
  await exec.started;
  await ticker.stop(0);
  const status = await exec.exited;
  assert.equal(status.exitCode, 137);
  assert.match(status.message ?? "", /container exited/);
});
