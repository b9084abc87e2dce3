import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Runtime } from "../../../src/runtime/index.ts";
import { WASI_MODULE } from "../../../src/runtime/wasi-abi.ts";
import { collector, guest, spec, tempDir } from "./helpers.ts";
import { ModuleBuilder, op } from "./wasm-builder.ts";

const dir = tempDir();
const outside = join(dir.path, "outside");
const vol = join(dir.path, "vol");
const ro = join(dir.path, "ro");
mkdirSync(outside);
writeFileSync(join(outside, "secret.txt"), "TOP SECRET");
mkdirSync(join(vol, "sub"), { recursive: true });
writeFileSync(join(vol, "sub", "inner.txt"), "inner");
symlinkSync("../outside", join(vol, "up"));
symlinkSync(outside, join(vol, "abs"));
symlinkSync(join(outside, "secret.txt"), join(vol, "abs-file"));
symlinkSync("sub/../../outside", join(vol, "deep"));
symlinkSync("sub", join(vol, "inside"));
mkdirSync(join(ro, "dir"), { recursive: true });
writeFileSync(join(ro, "key"), "value");

const mounts = [
  { hostPath: vol, guestPath: "/data", readOnly: false },
  { hostPath: ro, guestPath: "/config", readOnly: true },
];
const runtime = new Runtime({ workers: 1 });
before(() => runtime.start());
after(async () => {
  await runtime.destroy();
  dir.remove();
});

async function probe(...args: string[]): Promise<string[]> {
  const out = collector();
  const container = runtime.run(
    spec(dir.path, { module: await guest("fsprobe"), args: ["fsprobe", ...args], mounts }),
  );
  container.onOutput(out.onOutput);
  const status = await container.exited;
  assert.equal(status.reason, "Completed", status.message);
  return out.text().trimEnd().split("\n");
}

test("a read-only mount can be read but every kind of change fails with EROFS", async () => {
  const lines = await probe(
    "read",
    "/config/key",
    "list",
    "/config",
    "write",
    "/config/key",
    "changed",
    "write",
    "/config/new",
    "x",
    "append",
    "/config/key",
    "more",
    "mkdir",
    "/config/d",
    "rmdir",
    "/config/dir",
    "unlink",
    "/config/key",
    "rename",
    "/config/key",
    "/config/key2",
    "rename",
    "/config/key",
    "/data/stolen",
    "symlink",
    "key",
    "/config/link",
    "link",
    "/config/key",
    "/data/hard",
    "touch",
    "/config/key",
    "truncate",
    "/config/key",
  );
  assert.equal(lines[0], "read /config/key: ok value");
  assert.match(lines[1]!, /^list \/config: ok .*key,/);
  for (const line of lines.slice(2)) assert.match(line, /: error 69 Read-only file system$/);
  assert.equal(readFileSync(join(ro, "key"), "utf8"), "value");
  assert.deepEqual(readdirSync(ro).sort(), ["dir", "key"]);
  assert.equal(existsSync(join(vol, "stolen")), false);
  assert.equal(existsSync(join(vol, "hard")), false);
});

test("a writable mount takes writes, directories, renames and links inside it", async () => {
  const lines = await probe(
    "write",
    "/data/new.txt",
    "abc",
    "append",
    "/data/new.txt",
    "def",
    "mkdir",
    "/data/made",
    "rename",
    "/data/new.txt",
    "/data/made/moved.txt",
    "symlink",
    "made/moved.txt",
    "/data/alias",
    "readlink",
    "/data/alias",
    "read",
    "/data/alias",
    "read",
    "/data/inside/inner.txt",
    "stat",
    "/data/made",
  );
  assert.match(lines.pop()!, /^stat \/data\/made: ok size=\d+ dir=1$/);
  assert.deepEqual(lines, [
    "write /data/new.txt: ok",
    "append /data/new.txt: ok",
    "mkdir /data/made: ok",
    "rename /data/new.txt: ok",
    "symlink /data/alias: ok",
    "readlink /data/alias: ok made/moved.txt",
    "read /data/alias: ok abcdef",
    "read /data/inside/inner.txt: ok inner",
  ]);
  assert.equal(readFileSync(join(vol, "made", "moved.txt"), "utf8"), "abcdef");
});

test("no path reaches outside a mount: .., absolute paths, symlinks out (absolute, relative, via ..)", async () => {
  const lines = await probe(
    "read",
    "/data/../outside/secret.txt",
    "read",
    "/data/up/secret.txt",
    "read",
    "/data/abs/secret.txt",
    "read",
    "/data/abs-file",
    "read",
    "/data/deep/secret.txt",
    "read",
    "/etc/passwd",
    "stat",
    "/data/up",
    "list",
    "/data/up",
    "write",
    "/data/up/pwned",
    "x",
    "mkdir",
    "/data/abs/pwned-dir",
    "symlink",
    "/etc",
    "/data/evil",
    // link(2) of a symlink links the symlink itself: harmless, but reading through it must fail.
    "link",
    "/data/abs-file",
    "/data/hard",
    "read",
    "/data/hard",
  );
  const joined = lines.join("\n");
  assert.doesNotMatch(joined, /TOP SECRET|root:/);
  assert.equal(lines.length, 13);
  assert.equal(lines.splice(11, 1)[0], "link /data/hard: ok");
  for (const line of lines) assert.match(line, /: error (76|44) /, line);
  // Symlink escapes are refused as capability errors, not "not found".
  for (const line of lines.slice(1, 5)) assert.match(line, /error 76 Capabilities insufficient$/);
  assert.deepEqual(readdirSync(outside), ["secret.txt"]);
  assert.equal(existsSync(join(vol, "evil")), false);
});

/** A module that calls path_open once and exits with the errno it got. */
function pathOpen(dirfd: number, path: string, oflags = 0, rights = 0n): Uint8Array {
  const b = new ModuleBuilder();
  const open = b.importFunction(
    WASI_MODULE,
    "path_open",
    ["i32", "i32", "i32", "i32", "i32", "i64", "i64", "i32", "i32"],
    ["i32"],
  );
  const exit = b.importFunction(WASI_MODULE, "proc_exit", ["i32"], []);
  const bytes = new TextEncoder().encode(path);
  b.memory(1).data(64, bytes);
  b.exportFunction(
    "_start",
    b.function(
      "_start",
      [],
      [],
      [
        ...op.i32(dirfd),
        ...op.i32(1),
        ...op.i32(64),
        ...op.i32(bytes.length),
        ...op.i32(oflags),
        ...op.i64(rights),
        ...op.i64(rights),
        ...op.i32(0),
        ...op.i32(8),
        ...op.call(open),
        ...op.call(exit),
      ],
    ),
  );
  return b.bytes();
}

test("raw path_open calls get the sandbox's errno, whatever libc would have sent", async () => {
  const cases: [number, string, number, bigint, number][] = [
    [3, "/etc/passwd", 0, 0n, 76],
    [3, "../outside/secret.txt", 0, 0n, 76],
    [3, "sub/../../outside", 0, 0n, 76],
    [3, "up/secret.txt", 0, 0n, 76],
    [3, "sub\0/x", 0, 0n, 28],
    [3, "", 0, 0n, 44],
    [3, "sub/inner.txt", 0, 2n, 0],
    [0, "sub/inner.txt", 0, 2n, 54],
    [9, "sub/inner.txt", 0, 2n, 8],
    [4, "key", 0, 64n, 69],
    // Go's os.Open on a read-only mount: every file right but the write ones (fd_filestat_set_size
    // included, as Go sends it) opens read-only.
    [4, "key", 0, (1n << 28n) - 1n - (1n | 64n | 256n | (1n << 19n)), 0],
    [4, "key", 0, 1n << 22n, 0],
    [4, "new", 1, 2n, 69],
    [3, "sub/inner.txt", 2, 2n, 54],
    [3, "up", 0, 2n, 76],
  ];
  const results = await Promise.all(
    cases.map(async ([dirfd, path, oflags, rights]) => {
      const container = runtime.run(
        spec(dir.path, { module: pathOpen(dirfd, path, oflags, rights), args: ["raw"], mounts }),
      );
      return (await container.exited).exitCode;
    }),
  );
  assert.deepEqual(
    results,
    cases.map((c) => c[4]),
  );
});

test("a mount whose host directory is missing is a StartError naming it", async () => {
  const container = runtime.run(
    spec(dir.path, {
      module: await guest("hello"),
      args: ["hello"],
      mounts: [{ hostPath: join(dir.path, "missing"), guestPath: "/m", readOnly: true }],
    }),
  );
  const status = await container.exited;
  assert.equal(status.reason, "StartError");
  assert.equal(status.exitCode, 128);
  assert.match(status.message ?? "", /mount \/m: host directory .*missing is unusable/);
  await assert.rejects(container.started, { code: "WASMLET_ERR_START_FAILED" });
});
