// Code-bearing caches live in a directory only this user can write.
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { privateTempDir } from "../../../src/runtime/private-dir.ts";

const root = mkdtempSync(join(tmpdir(), "wasmlet-private-"));
const saved = process.env.TMPDIR;
process.env.TMPDIR = root;
after(() => {
  process.env.TMPDIR = saved;
  rmSync(root, { recursive: true, force: true });
});

test("the shared directory is reused when it is this user's and private", () => {
  const dir = privateTempDir("cache");
  assert.equal(dir, join(root, `cache-${process.getuid!()}`));
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.equal(privateTempDir("cache"), dir);
});

test("a directory others can write, or a file in the way, is passed over for a fresh one", () => {
  const open = join(root, `open-${process.getuid!()}`);
  mkdirSync(open);
  chmodSync(open, 0o777);
  const instead = privateTempDir("open");
  assert.notEqual(instead, open);
  assert.equal(statSync(instead).mode & 0o777, 0o700);

  writeFileSync(join(root, `file-${process.getuid!()}`), "x");
  const fresh = privateTempDir("file");
  assert.ok(statSync(fresh).isDirectory());
  assert.notEqual(fresh, join(root, `file-${process.getuid!()}`));
});
