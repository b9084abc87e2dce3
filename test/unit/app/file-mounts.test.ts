// Single-file mounts (finding F7): a read-only file mount is never written through, whatever other
// file mounts share its guest directory, and a writable one still writes through to the host file.
import assert from "node:assert/strict";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { planMounts } from "../../../src/app/file-mounts.ts";
import { directoryMounts, WasiRuntimePort } from "../../../src/app/runtime-port.ts";
import type { RunMount } from "../../../src/pods/ports.ts";
import { Runtime } from "../../../src/runtime/index.ts";
import { guest, logText } from "../runtime/helpers.ts";

const root = mkdtempSync(join(tmpdir(), "wasmlet-file-mounts-"));
after(() => rmSync(root, { recursive: true, force: true }));

let counter = 0;
/** A fresh directory with a read-only host file, a writable host file and a scratch root. */
function fixture(): { host: string; ro: string; rw: string; scratch: string } {
  const base = join(root, String(++counter));
  const host = join(base, "host");
  mkdirSync(host, { recursive: true });
  const ro = join(host, "ro.conf");
  const rw = join(host, "rw.state");
  writeFileSync(ro, "host original\n", { mode: 0o644 });
  writeFileSync(rw, "state 1\n", { mode: 0o644 });
  return { host, ro, rw, scratch: join(base, "scratch") };
}

const file = (hostPath: string, guestPath: string, readOnly: boolean): RunMount => ({
  hostPath,
  guestPath,
  readOnly,
  kind: "file",
});

test("plan: a read-only file beside a writable one is copied into the writable directory, the writable one linked", () => {
  const plan = planMounts(
    [
      { hostPath: "/v/data", guestPath: "/data", readOnly: false, kind: "directory" },
      file("/h/ro.conf", "/etc/app/ro.conf", true),
      file("/h/rw.state", "/etc/app/rw.state", false),
      file("/h/a", "/etc/only-ro/a", true),
      file("/h/b", "/etc/only-ro/b", true),
    ],
    "/scratch",
  );
  assert.deepEqual(plan.mounts, [
    { hostPath: "/v/data", guestPath: "/data", readOnly: false },
    { hostPath: "/scratch/0", guestPath: "/etc/app", readOnly: false },
    { hostPath: "/scratch/1", guestPath: "/etc/only-ro", readOnly: true },
  ]);
  const how = plan.scratch.flatMap((d) => d.files.map((f) => [f.guestPath, f.method]));
  assert.deepEqual(how, [
    ["/etc/app/ro.conf", "copy"],
    ["/etc/app/rw.state", "link"],
    ["/etc/only-ro/a", "link"],
    ["/etc/only-ro/b", "link"],
  ]);
  // The invariant: no read-only file is linked into a directory the guest can write.
  for (const dir of plan.scratch) {
    for (const f of dir.files) {
      if (f.readOnly && !dir.readOnly) assert.equal(f.method, "copy", f.guestPath);
    }
  }
});

test("plan: two files at one guest path, or files in a directory that is itself a mount, are refused", () => {
  assert.throws(
    () => planMounts([file("/h/a", "/etc/x", true), file("/h/b", "/etc/x", false)], "/s"),
    (error: Error & { code?: string }) =>
      error.code === "WASMLET_ERR_FILE_MOUNT" &&
      /\/etc\/x: another file is mounted there/.test(error.message),
  );
  assert.throws(
    () =>
      planMounts(
        [
          { hostPath: "/v", guestPath: "/etc", readOnly: false, kind: "directory" },
          file("/h/a", "/etc/x", true),
        ],
        "/s",
      ),
    { code: "WASMLET_ERR_FILE_MOUNT" },
  );
});

test("F7: a read-only host file sharing a guest directory with a writable file mount is not written through", () => {
  const { ro, rw, scratch } = fixture();
  const mounts = directoryMounts(
    [file(ro, "/etc/app/ro.conf", true), file(rw, "/etc/app/rw.state", false)],
    scratch,
  );
  assert.equal(mounts.length, 1);
  const dir = mounts[0]!;
  assert.equal(dir.guestPath, "/etc/app");
  assert.equal(dir.readOnly, false, "the directory holds a writable file mount");
  assert.deepEqual(readdirSync(dir.hostPath).sort(), ["ro.conf", "rw.state"]);

  // The guest writes through the writable mount of the directory (as root, permissions do not
  // stop it): whatever happens to what it sees, the host file is untouched.
  const exposed = join(dir.hostPath, "ro.conf");
  assert.equal(readFileSync(exposed, "utf8"), "host original\n");
  try {
    writeFileSync(exposed, "written by the guest\n");
  } catch {}
  assert.equal(readFileSync(ro, "utf8"), "host original\n", "the host file is unchanged");
  assert.notEqual(statSync(exposed).ino, statSync(ro).ino, "a copy, not a hard link");
  assert.equal(statSync(exposed).mode & 0o222, 0, "the copy has no write permission");

  // The writable file mount still writes through to its host file (bind-mount semantics).
  writeFileSync(join(dir.hostPath, "rw.state"), "state 2\n");
  assert.equal(readFileSync(rw, "utf8"), "state 2\n");
});

test("two files at one guest path are refused before either host file can be touched", () => {
  const { ro, rw, scratch } = fixture();
  assert.throws(
    () => directoryMounts([file(ro, "/etc/x", true), file(rw, "/etc/x", false)], scratch),
    { code: "WASMLET_ERR_FILE_MOUNT" },
  );
  assert.equal(readFileSync(ro, "utf8"), "host original\n");
  assert.equal(readFileSync(rw, "utf8"), "state 1\n");
});

test("a directory of read-only file mounts only is mounted read-only with links (host updates are seen)", () => {
  const { ro, host, scratch } = fixture();
  const other = join(host, "other.conf");
  writeFileSync(other, "other\n");
  const mounts = directoryMounts(
    [file(ro, "/etc/app/ro.conf", true), file(other, "/etc/app/other.conf", true)],
    scratch,
  );
  assert.deepEqual(mounts, [
    { hostPath: join(scratch, "0"), guestPath: "/etc/app", readOnly: true },
  ]);
  writeFileSync(ro, "updated on the host\n");
  assert.equal(readFileSync(join(scratch, "0", "ro.conf"), "utf8"), "updated on the host\n");
});

test("a read-only symlink beside a writable file is re-created, never followed into a copy of its target", () => {
  const { host, rw, scratch } = fixture();
  const secret = join(root, "secret.txt");
  writeFileSync(secret, "TOP SECRET");
  const link = join(host, "link.conf");
  symlinkSync(secret, link);
  const [dir] = directoryMounts(
    [file(link, "/etc/app/link.conf", true), file(rw, "/etc/app/rw.state", false)],
    scratch,
  );
  const placed = join(dir!.hostPath, "link.conf");
  assert.ok(lstatSync(placed).isSymbolicLink());
  assert.equal(readlinkSync(placed), secret, "the sandbox resolves it inside the guest directory");
});

test("a read-only socket beside a writable file mount is refused with both mount paths named", async () => {
  const { host, rw, scratch } = fixture();
  const socket = join(host, "app.sock");
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  try {
    assert.throws(
      () =>
        directoryMounts(
          [file(socket, "/run/app.sock", true), file(rw, "/run/rw.state", false)],
          scratch,
        ),
      (error: Error & { code?: string }) =>
        error.code === "WASMLET_ERR_FILE_MOUNT" &&
        /a socket/.test(error.message) &&
        /\/run\/rw\.state/.test(error.message),
    );
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test("a file on another file system is copied, and a device there is refused rather than read forever", (t) => {
  const { scratch } = fixture();
  mkdirSync(scratch, { recursive: true });
  let other: string;
  try {
    other = mkdtempSync("/dev/shm/wasmlet-file-mounts-");
  } catch {
    t.skip("no /dev/shm");
    return;
  }
  t.after(() => rmSync(other, { recursive: true, force: true }));
  if (statSync(other).dev === statSync(scratch).dev) {
    t.skip("/dev/shm is on the scratch directory's file system");
    return;
  }
  const ro = join(other, "ro.conf");
  writeFileSync(ro, "elsewhere\n", { mode: 0o644 });
  const [dir] = directoryMounts([file(ro, "/etc/app/ro.conf", true)], scratch);
  assert.equal(dir!.readOnly, true);
  const placed = join(dir!.hostPath, "ro.conf");
  assert.equal(readFileSync(placed, "utf8"), "elsewhere\n");
  assert.equal(statSync(placed).mode & 0o222, 0, "a read-only copy has no write permission");

  if (!existsSync("/dev/null") || statSync("/dev/null").dev === statSync(scratch).dev) return;
  assert.throws(
    () => directoryMounts([file("/dev/null", "/dev/null", false)], join(scratch, "dev")),
    (error: Error & { code?: string }) =>
      error.code === "WASMLET_ERR_FILE_MOUNT" && /a character device/.test(error.message),
  );
});

test("through the runtime: the guest cannot change a read-only host file beside a writable one", async () => {
  const { ro, rw, scratch, host } = fixture();
  const runtime = new Runtime({ workers: 1 });
  await runtime.start();
  try {
    const port = new WasiRuntimePort({
      runtime,
      logRotation: { maxBytes: 1 << 20, maxFiles: 2 },
      scratchDir: scratch,
    });
    const logPath = join(host, "..", "probe.log");
    const handle = port.run({
      id: "probe",
      module: await guest("fsprobe"),
      args: [
        "fsprobe",
        "write",
        "/etc/app/ro.conf",
        "overwritten by the guest",
        "write",
        "/etc/app/rw.state",
        "state from the guest",
      ],
      env: {},
      mounts: [file(ro, "/etc/app/ro.conf", true), file(rw, "/etc/app/rw.state", false)],
      workingDir: "/",
      stdin: false,
      logPath,
      labels: { namespace: "ns", pod: "p", uid: "u", container: "c" },
    });
    const status = await handle.exited;
    assert.equal(status.exitCode, 0, logText(logPath).join("\n"));
    assert.match(logText(logPath).join("\n"), /^write \/etc\/app\/rw\.state: ok$/m);
    assert.equal(readFileSync(ro, "utf8"), "host original\n", "the host file is unchanged");
    assert.equal(readFileSync(rw, "utf8"), "state from the guest", "writes through");
    assert.equal(existsSync(join(scratch, "probe")), false, "the scratch directory is removed");
  } finally {
    await runtime.destroy();
  }
});
