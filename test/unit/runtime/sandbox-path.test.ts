import assert from "node:assert/strict";
import {
  closeSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  renameSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { openDirectory, resolveBeneath } from "../../../src/runtime/sandbox-path.ts";
import { Errno } from "../../../src/runtime/wasi-abi.ts";
import { tempDir } from "./helpers.ts";

const dir = tempDir();
const held: number[] = [];
after(() => {
  for (const fd of held) closeSync(fd);
  dir.remove();
});
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

const rootFd = openDirectory(root);
held.push(rootFd);

/** Where a resolution lands, as a path below the root, or its errno. */
const resolve = (path: string, follow = true, base = rootFd) => {
  const r = resolveBeneath(base, path, follow);
  if (!r.ok) return r.errno;
  try {
    const where = readlinkSync(`/proc/self/fd/${r.dir}`);
    const full = r.name === undefined ? where : `${where}/${r.name}`;
    return full.slice(root.length) || "/";
  } finally {
    r.close();
  }
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
  const a = openDirectory(join(root, "a"));
  held.push(a);
  assert.equal(resolve("..", true, a), Errno.ENOTCAPABLE);
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

test("a held directory is followed wherever it moves; a symlink in its old place is ignored", () => {
  mkdirSync(join(root, "moving"));
  writeFileSync(join(root, "moving", "f"), "x");
  const moving = openDirectory(join(root, "moving"));
  held.push(moving);
  renameSync(join(root, "moving"), join(root, "moved"));
  symlinkSync("../out", join(root, "moving"));
  assert.equal(resolve("f", true, moving), "/moved/f");
  assert.equal(resolve(".", true, moving), "/moved");
});

test("over-long paths fail as in the kernel, and a resolution releases what it held", () => {
  assert.equal(resolve("a/".repeat(2049)), Errno.ENAMETOOLONG);
  const before = readdirSync("/proc/self/fd").length;
  for (let i = 0; i < 100; i++) {
    resolve("a/b/file");
    resolve("a/b/up2/a/b/missing");
    resolve("a/b/out/x");
  }
  assert.equal(readdirSync("/proc/self/fd").length, before);
});
