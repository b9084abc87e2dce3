import assert from "node:assert/strict";
import { lstat, mkdtemp, readdir, readFile, readlink, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  type Payload,
  validatePayloadPath,
  writeAtomic,
} from "../../../src/volumes/atomic-writer.ts";

const root = await mkdtemp(join(tmpdir(), "wasmlet-atomic-"));
after(() => rm(root, { recursive: true, force: true }));

const payload = (entries: Record<string, string>, mode = 0o644): Payload =>
  new Map(Object.entries(entries).map(([k, v]) => [k, { data: Buffer.from(v), mode }]));

test("writes ..data → timestamped dir and visible symlinks; updates swap atomically", async () => {
  const dir = join(root, "cm");
  assert.equal(await writeAtomic(dir, payload({ "a.conf": "one", "nested/b.txt": "two" })), true);
  assert.equal((await lstat(join(dir, "a.conf"))).isSymbolicLink(), true);
  assert.equal(await readlink(join(dir, "a.conf")), "..data/a.conf");
  assert.equal(await readlink(join(dir, "nested")), "..data/nested");
  assert.match(
    await readlink(join(dir, "..data")),
    /^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.[0-9a-f]+$/,
  );
  assert.equal(await readFile(join(dir, "nested/b.txt"), "utf8"), "two");
  const first = await readlink(join(dir, "..data"));

  // Same content: nothing changes.
  assert.equal(await writeAtomic(dir, payload({ "a.conf": "one", "nested/b.txt": "two" })), false);
  assert.equal(await readlink(join(dir, "..data")), first);

  // New content: new timestamped dir, removed key disappears, old dir removed.
  assert.equal(await writeAtomic(dir, payload({ "a.conf": "uno", "c.txt": "three" })), true);
  const second = await readlink(join(dir, "..data"));
  assert.notEqual(second, first);
  assert.equal(await readFile(join(dir, "a.conf"), "utf8"), "uno");
  assert.equal(await readFile(join(dir, "c.txt"), "utf8"), "three");
  const entries = (await readdir(dir)).sort();
  assert.deepEqual(entries, ["..data", second, "a.conf", "c.txt"].sort());
});

test("file modes are exact, and a mode change alone is an update", async () => {
  const dir = join(root, "modes");
  await writeAtomic(dir, payload({ key: "v" }, 0o400));
  assert.equal((await stat(join(dir, "key"))).mode & 0o777, 0o400);
  assert.equal(await writeAtomic(dir, payload({ key: "v" }, 0o640)), true);
  assert.equal((await stat(join(dir, "key"))).mode & 0o777, 0o640);
});

test("payload paths must be relative, without '..'", () => {
  for (const bad of ["/etc/passwd", "../x", "a/../../x", "..hidden", ""]) {
    assert.throws(() => validatePayloadPath(bad), { code: "WASMLET_ERR_VOLUME_PATH" }, bad);
  }
  validatePayloadPath("a/b/c.txt");
});
