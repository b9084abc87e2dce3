import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ManagedProcess } from "../../../src/devcluster/managed-process.ts";
import { assertPortFree, freePort } from "../../../src/devcluster/ports.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wasmlet-proc-"));
});
after(() => rm(dir, { recursive: true, force: true }));

test("a port in use is reported with the component that wanted it", async () => {
  const server = createServer().listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  const { port } = server.address() as { port: number };
  try {
    await assert.rejects(assertPortFree("127.0.0.1", port, "kube-apiserver"), {
      code: "WASMLET_ERR_PORT_IN_USE",
      message: `kube-apiserver: port 127.0.0.1:${port} is already in use`,
    });
  } finally {
    server.close();
  }
  await assertPortFree("127.0.0.1", await freePort(), "kube-apiserver");
});

test("free ports come from below the kernel's ephemeral range, so no outgoing connection takes them", async () => {
  const low = Number.parseInt(await readFile("/proc/sys/net/ipv4/ip_local_port_range", "utf8"), 10);
  for (const host of ["127.0.0.1", "0.0.0.0"]) {
    const port = await freePort(host);
    assert.ok(port >= 10_000 && port < low, `${port} is not in [10000, ${low})`);
    await assertPortFree("0.0.0.0", port, "test");
  }
});

test("a component that dies before it is ready is named with the tail of its log", async () => {
  const child = new ManagedProcess({
    name: "fake-apiserver",
    command: "sh",
    args: ["-c", "echo starting; echo 'fatal: bad flag --nope' >&2; exit 3"],
    logFile: join(dir, "fake.log"),
  });
  await assert.rejects(
    child.waitUntil(async () => false, 10_000),
    (error: Error & { code: string }) => {
      assert.equal(error.code, "WASMLET_ERR_COMPONENT_EXITED");
      assert.match(error.message, /^fake-apiserver exited \(code 3\)/);
      assert.match(error.message, /fatal: bad flag --nope/);
      return true;
    },
  );
});

test("a component that never becomes ready times out with its log tail, and stop() ends it", async () => {
  const child = new ManagedProcess({
    name: "sleeper",
    command: "sh",
    args: ["-c", "echo waiting forever; exec sleep 60"],
    logFile: join(dir, "sleeper.log"),
  });
  await assert.rejects(
    child.waitUntil(async () => false, 500),
    /sleeper was not ready after 1 s[\s\S]*waiting forever/,
  );
  assert.equal(child.running, true);
  await child.stop(1000);
  assert.equal(child.running, false);
  await child.stop();
});
