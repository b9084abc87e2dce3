import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Container } from "../../../src/runtime/index.ts";
import { Runtime } from "../../../src/runtime/index.ts";
import { collector, guest, logText, spec, tempDir, until } from "./helpers.ts";

/**
 * Started, and past libc's start-up WASI calls: now only computing. Start-up takes well under a
 * millisecond of CPU; 20 ms of the guest's own CPU time are spent in its loop.
 */
async function computing(container: Container): Promise<void> {
  await container.started;
  for (;;) {
    const { user, system } = await container.cpuUsage();
    if (user + system >= 20_000) return;
    await new Promise((resolve) => setTimeout(resolve, 5)); // polls, does not synchronise
  }
}

const dir = tempDir();
const runtime = new Runtime({ workers: 1 });
before(() => runtime.start());
after(async () => {
  await runtime.destroy();
  dir.remove();
});

test("a sleeping guest stops at once on request: exit 143, its neighbours run on", async () => {
  const out = collector();
  const ticker = runtime.run(
    spec(dir.path, { module: await guest("ticker"), args: ["ticker"], env: { TICK_MS: "60000" } }),
  );
  ticker.onOutput(out.onOutput);
  await until(() => out.text().includes("tick 1"), "the first tick");
  const t0 = performance.now();
  const status = await ticker.stop(30_000);
  const took = performance.now() - t0;
  assert.ok(took < 2000, `stop took ${took} ms of a 30 s grace period`);
  assert.deepEqual(
    [status.exitCode, status.reason, status.signal, status.message],
    [143, "Error", 15, "stopped on request"],
  );
  assert.deepEqual(logText(ticker.spec.logPath), ["tick 1"]);
  const next = runtime.run(spec(dir.path, { module: await guest("hello"), args: ["hello"] }));
  assert.equal((await next.exited).reason, "Completed");
});

test("a CPU-bound guest that ignores the request is killed after the grace period: exit 137", async () => {
  const loop = runtime.run(spec(dir.path, { module: await guest("cpuloop"), args: ["cpuloop"] }));
  await computing(loop);
  const t0 = performance.now();
  const status = await loop.stop(150);
  const took = performance.now() - t0;
  assert.ok(took >= 140 && took < 3000, `killed after ${took} ms: ${JSON.stringify(status)}`);
  assert.equal(status.exitCode, 137);
  assert.equal(status.reason, "Error");
  assert.equal(status.signal, 9);
  assert.match(status.message ?? "", /still running 150 ms after the stop request/);
});

test("stop(0) kills now; a second stop() shortens a long grace period; stop after exit is a no-op", async () => {
  const loop = runtime.run(spec(dir.path, { module: await guest("cpuloop"), args: ["cpuloop"] }));
  await computing(loop);
  const t0 = performance.now();
  void loop.stop(60_000);
  const status = await loop.stop(0);
  // A kill reaches a computing guest at its next yield point.
  assert.ok(performance.now() - t0 < 50, "at once, well before the 60 s grace period");
  assert.equal(status.exitCode, 137);
  assert.equal(await loop.stop(10), status);
});

test("deadlineMs ends a looping guest and a sleeping guest with DeadlineExceeded", async () => {
  const loop = runtime.run(
    spec(dir.path, { module: await guest("cpuloop"), args: ["cpuloop"], deadlineMs: 100 }),
  );
  const sleeper = runtime.run(
    spec(dir.path, {
      module: await guest("ticker"),
      args: ["ticker"],
      env: { TICK_MS: "60000" },
      deadlineMs: 100,
    }),
  );
  for (const status of await Promise.all([loop.exited, sleeper.exited])) {
    assert.equal(status.reason, "DeadlineExceeded");
    assert.equal(status.exitCode, 137);
    const ran = status.finishedAt.getTime() - status.startedAt!.getTime();
    assert.ok(ran >= 95 && ran < 3000, `ran ${ran} ms`);
  }
});

test("stopping one container leaves a neighbour running undisturbed", async () => {
  const out = collector();
  const neighbour = runtime.run(
    spec(dir.path, { module: await guest("ticker"), args: ["ticker"], env: { TICK_MS: "10" } }),
  );
  neighbour.onOutput(out.onOutput);
  const loop = runtime.run(spec(dir.path, { module: await guest("cpuloop"), args: ["cpuloop"] }));
  await computing(loop);
  await loop.stop(0);
  const ticks = out.text().split("\n").length;
  await until(() => out.text().split("\n").length > ticks + 3, "more ticks");
  assert.equal(neighbour.running, true);
  const status = await neighbour.stop(1000);
  assert.equal(status.exitCode, 143);
});
