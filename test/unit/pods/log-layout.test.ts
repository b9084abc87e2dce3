import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { InstanceRegistry } from "../../../src/pods/instance-registry.ts";
import {
  containerLogPath,
  newInstanceLog,
  podLogDir,
  previousLogPath,
} from "../../../src/pods/log-layout.ts";

const root = await mkdtemp(join(tmpdir(), "wasmlet-logs-"));
after(() => rm(root, { recursive: true, force: true }));

test("log layout like /var/log/pods; a new instance never reuses a file; only current and previous are kept", async () => {
  const dir = podLogDir(root, "ns", "web", "u1");
  assert.equal(dir, join(root, "ns_web_u1"));
  assert.equal(containerLogPath(dir, "app", 3), join(dir, "app", "3.log"));
  assert.deepEqual(newInstanceLog(dir, "app", 0), {
    index: 0,
    path: containerLogPath(dir, "app", 0),
  });
  for (const n of [0, 1, 2, 3]) await writeFile(containerLogPath(dir, "app", n), `log ${n}`);
  assert.equal(
    newInstanceLog(dir, "app", 2).index,
    4,
    "a crash between start and status must not reuse 3.log",
  );
  assert.deepEqual(
    (await readdir(join(dir, "app"))).sort(),
    ["3.log"],
    "only the previous is kept",
  );
  assert.equal(await previousLogPath(dir, "app", 4), containerLogPath(dir, "app", 3));
  assert.equal(newInstanceLog(dir, "app", 9).index, 9);
});

test("the instance registry refuses a second live instance of one container", () => {
  const registry = new InstanceRegistry();
  registry.claim("u", "app", "i1");
  assert.throws(() => registry.claim("u", "app", "i2"), { code: "WASMLET_ERR_DUPLICATE_INSTANCE" });
  registry.claim("u", "other", "i3");
  registry.release("u", "app", "wrong");
  assert.equal(registry.live("u", "app"), "i1");
  registry.release("u", "app", "i1");
  registry.claim("u", "app", "i2");
  assert.equal(registry.size, 2);
});
