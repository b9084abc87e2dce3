// F1: a sibling guest that swaps a directory and a symlink out of the mount while this guest opens
// and creates files through the directory's name. A check-then-open resolver lost this race within
// a few thousand tries (the read came from outside, the created file landed outside); the
// descriptor-based resolver must never lose it.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { Worker } from "node:worker_threads";
import { GuestMemory } from "../../../src/runtime/guest-memory.ts";
import { ALL_RIGHTS, Errno, Oflags } from "../../../src/runtime/wasi-abi.ts";
import { WasiFs } from "../../../src/runtime/wasi-fs.ts";
import { tempDir } from "./helpers.ts";

const dir = tempDir();
after(() => dir.remove());

/** At least this long and this many tries of each kind (the old resolver lost within 0.2 s). */
const RACE_MS = 3000;
const MIN_TRIES = 2000;
const GIVE_UP_MS = 20_000;
const DEPTH = "a/b/c/d";

/** Swaps root/d (a directory) and root/s (a symlink to ../outside) until the shared flag is set. */
const SWAPPER = `
const { renameSync } = require("node:fs");
const { workerData } = require("node:worker_threads");
const { root, stop } = workerData;
const flag = new Int32Array(stop);
let swaps = 0;
while (Atomics.load(flag, 0) === 0) {
  try {
    renameSync(root + "/d", root + "/tmp");
    renameSync(root + "/s", root + "/d");
    renameSync(root + "/d", root + "/s");
    renameSync(root + "/tmp", root + "/d");
    swaps++;
  } catch {}
}
require("node:worker_threads").parentPort.postMessage(swaps);
`;

test("a sibling swapping a directory for a symlink out never lets an open or create escape", async () => {
  const top = realpathSync(dir.path);
  const root = join(top, "root");
  const outside = join(top, "outside");
  for (const base of [join(root, "d"), outside]) mkdirSync(join(base, DEPTH), { recursive: true });
  writeFileSync(join(root, "d", DEPTH, "secret.txt"), "inside");
  writeFileSync(join(outside, DEPTH, "secret.txt"), "OUTSIDE");
  symlinkSync("../outside", join(root, "s"));

  const memory = new GuestMemory(new WebAssembly.Memory({ initial: 1 }));
  const stdio = { readStdin: () => 0, writeOutput: () => 0, waitFor: () => 0 };
  const fs = new WasiFs(memory, stdio, [{ guestPath: "/data", root, readOnly: false }]);
  const ROOT_FD = 3;
  const PATH = 1024;
  const FD_OUT = 64;
  const NREAD = 68;
  const IOV = 128;
  const BUF = 256;
  const bytes = memory.bytes(0, 4096);
  const view = new DataView(bytes.buffer);
  view.setUint32(IOV, BUF, true);
  view.setUint32(IOV + 4, 64, true);

  const open = (path: string, oflags: number): number => {
    const encoded = new TextEncoder().encode(path);
    bytes.set(encoded, PATH);
    const errno = fs.path_open(ROOT_FD, 0, PATH, encoded.length, oflags, ALL_RIGHTS, 0n, 0, FD_OUT);
    return errno === Errno.SUCCESS ? view.getUint32(FD_OUT, true) : -errno;
  };

  const stop = new SharedArrayBuffer(4);
  const swapper = new Worker(SWAPPER, { eval: true, workerData: { root, stop } });
  const swapped = new Promise<number>((resolve) => swapper.once("message", resolve));
  let opened = 0;
  let created = 0;
  const escapes: string[] = [];
  const start = performance.now();
  const racing = () => {
    const elapsed = performance.now() - start;
    if (elapsed > GIVE_UP_MS) return false;
    return elapsed < RACE_MS || opened < MIN_TRIES || created < MIN_TRIES;
  };
  try {
    for (let i = 0; racing() && escapes.length === 0; i++) {
      const fd = open(`d/${DEPTH}/secret.txt`, 0);
      if (fd >= 0) {
        opened++;
        assert.equal(fs.fd_read(fd, IOV, 1, NREAD), Errno.SUCCESS);
        const text = new TextDecoder().decode(
          bytes.subarray(BUF, BUF + view.getUint32(NREAD, true)),
        );
        if (text !== "inside") escapes.push(`read ${JSON.stringify(text)} through d/`);
        fs.fd_close(fd);
      }
      const planted = open(`d/${DEPTH}/planted-${i}`, Oflags.CREAT | Oflags.EXCL);
      if (planted >= 0) {
        created++;
        fs.fd_close(planted);
        if (existsSync(join(outside, DEPTH, `planted-${i}`)))
          escapes.push(`created planted-${i} outside the mount`);
      }
    }
  } finally {
    Atomics.store(new Int32Array(stop), 0, 1);
    fs.closeAll();
  }
  const swaps = await swapped;
  await swapper.terminate();
  assert.deepEqual(escapes, []);
  // The race was really run: both kinds of operation succeeded many times while swaps went on.
  assert.ok(swaps > 100, `only ${swaps} swaps`);
  assert.ok(opened >= MIN_TRIES && created >= MIN_TRIES, `opened ${opened}, created ${created}`);
});
