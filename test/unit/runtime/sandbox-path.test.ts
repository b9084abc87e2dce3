import assert from "node:assert/strict";
import { mkdirSync, realpathSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { resolveBeneath } from "../../../src/runtime/sandbox-path.ts";
import { Errno } from "../../../src/runtime/wasi-abi.ts";
import { tempDir } from "./helpers.ts";

const dir = tempDir();
after(() => dir.remove());
const top = realpathSync(dir.path);
const root = join(top, "root");
mkdirSync(join(root, "a", "b"), { recursive: true });
mkdirSync(join(top, "out"));
writeFileSync(join(root, "a", "b", "file"), "x");
symlinkSync("a/b", join(root, "ab"));
symlinkSync("../..", join(root, "a", "b", "up2"));
symlinkSync("../../../out", join(root, "a", "b", "out"));
symlinkSync("loop", join(root, "loop"));
symlinkSync("missing", join(root, "dangling"));
symlinkSync("file", join(root, "a", "b", "self"));

const resolve = (path: string, follow = true, base = root) => {
  const r = resolveBeneath(base, root, path, follow);
  return r.ok ? r.host.slice(root.length) || "/" : r.errno;
};

test("paths resolve inside the directory, following symlinks that stay inside", () => {
  assert.equal(resolve("a/b/file"), "/a/b/file");
  assert.equal(resolve("ab/file"), "/a/b/file");
  assert.equal(resolve("a/./b//file"), "/a/b/file");
  assert.equal(resolve("a/b/../b/file"), "/a/b/file");
  assert.equal(resolve("."), "/");
  assert.equal(resolve("a/b/up2"), "/");
  assert.equal(resolve("a/b/self"), "/a/b/file");
  assert.equal(resolve("a/b/self", false), "/a/b/self");
  assert.equal(
    resolve("dangling"),
    "/missing",
    "a dangling link resolves to where a file would be created",
  );
  assert.equal(resolve("a/new-file"), "/a/new-file");
});

test("nothing resolves outside: .., absolute paths and symlinks out are ENOTCAPABLE", () => {
  assert.equal(resolve(".."), Errno.ENOTCAPABLE);
  assert.equal(resolve("a/../.."), Errno.ENOTCAPABLE);
  assert.equal(resolve("/etc/passwd"), Errno.ENOTCAPABLE);
  assert.equal(resolve("a/b/out/x"), Errno.ENOTCAPABLE);
  assert.equal(resolve("a/b/up2/.."), Errno.ENOTCAPABLE);
  assert.equal(resolve("ab/../../.."), Errno.ENOTCAPABLE);
  // Relative to a subdirectory, its parent is outside too (WASI: the base directory bounds).
  assert.equal(resolve("..", true, join(root, "a")), Errno.ENOTCAPABLE);
});

test("bad paths get the POSIX errno", () => {
  assert.equal(resolve(""), Errno.ENOENT);
  assert.equal(resolve("a\0b"), Errno.EINVAL);
  assert.equal(resolve("loop"), Errno.ELOOP);
  assert.equal(resolve("loop", false), "/loop");
  assert.equal(resolve("missing/x"), Errno.ENOENT);
  assert.equal(resolve("a/b/file/x"), Errno.ENOTDIR);
  assert.equal(resolve("a/b/file/"), Errno.ENOTDIR);
});

test("a directory descriptor whose directory was swapped for a symlink out is refused", () => {
  const base = join(root, "moving");
  mkdirSync(base);
  assert.equal(resolve(".", true, base), "/moving");
  renameSync(base, join(root, "moved"));
  symlinkSync("../out", base);
  assert.equal(resolve(".", true, base), Errno.ENOTCAPABLE);
});
