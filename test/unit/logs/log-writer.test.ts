import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseCriLine } from "../../../src/logs/cri-format.ts";
import { CriLogWriter, rotatedLogFiles } from "../../../src/logs/log-writer.ts";

const root = mkdtempSync(join(tmpdir(), "wasmlet-logs-"));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `dir${++n}`, "0.log");

let clock = 1_700_000_000_000_000_000n;
const now = () => clock++;

function records(path: string) {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => {
      const r = parseCriLine(Buffer.from(l));
      assert.ok(r, `not a CRI line: ${l}`);
      return `${r.stream} ${r.tag} ${r.content.toString()}`;
    });
}

test("complete lines are on disk when write() returns; unfinished ones wait for the newline", () => {
  const path = fresh();
  const writer = new CriLogWriter({ path, now });
  writer.write("stdout", Buffer.from("one\ntwo\nthr"));
  assert.deepEqual(records(path), ["stdout F one", "stdout F two"]);
  writer.write("stderr", Buffer.from("err"));
  writer.write("stdout", Buffer.from("ee\n"));
  assert.deepEqual(records(path), ["stdout F one", "stdout F two", "stdout F three"]);
  writer.write("stderr", Buffer.from("or\n\n"));
  assert.deepEqual(records(path).slice(3), ["stderr F error", "stderr F "]);
  writer.close();
  writer.close();
});

test("lines longer than maxLineBytes become P records; close() ends an open line as F", () => {
  const path = fresh();
  const writer = new CriLogWriter({ path, now, maxLineBytes: 4 });
  writer.write("stdout", Buffer.from("abcdefghij\nxy"));
  writer.write("stdout", Buffer.from("z"));
  writer.close();
  assert.deepEqual(records(path), [
    "stdout P abcd",
    "stdout P efgh",
    "stdout F ij",
    "stdout F xyz",
  ]);
});

test("flushPartial() makes an unfinished line visible as P and the rest follows as F", () => {
  const path = fresh();
  const writer = new CriLogWriter({ path, now });
  writer.write("stdout", Buffer.from("progress: "));
  writer.flushPartial();
  writer.write("stdout", Buffer.from("50%\n"));
  writer.close();
  assert.deepEqual(records(path), ["stdout P progress: ", "stdout F 50%"]);
});

test("rotation renames to increasing numbers, keeps maxFiles in all and never splits a record", () => {
  const path = fresh();
  const writer = new CriLogWriter({ path, now, rotation: { maxBytes: 200, maxFiles: 3 } });
  const lines: string[] = [];
  for (let i = 0; i < 40; i++) {
    const text = `line ${i} ${"x".repeat(i % 7)}`;
    lines.push(`stdout F ${text}`);
    writer.write("stdout", Buffer.from(`${text}\n`));
  }
  writer.close();
  assert.ok(writer.rotations >= 5, `rotated ${writer.rotations} times`);
  const rotated = rotatedLogFiles(path);
  assert.equal(rotated.length, 2, "maxFiles 3 = current + 2 rotated");
  assert.deepEqual(
    rotated.map((f) => f.n),
    [writer.rotations - 1, writer.rotations],
  );
  for (const file of [...rotated.map((f) => f.path), path]) assert.ok(statSync(file).size <= 200);
  // Reading rotated files in order, then the current one, gives the newest lines in order.
  const read = [...rotated.flatMap((f) => records(f.path)), ...records(path)];
  assert.deepEqual(read, lines.slice(lines.length - read.length));
  assert.deepEqual(
    readdirSync(join(path, "..")).sort(),
    ["0.log", ...rotated.map((f) => `0.log.${f.n}`)].sort(),
  );
});

test("a record larger than maxBytes still gets a file of its own", () => {
  const path = fresh();
  const writer = new CriLogWriter({ path, now, rotation: { maxBytes: 50, maxFiles: 2 } });
  writer.write("stdout", Buffer.from(`${"y".repeat(100)}\nshort\n`));
  writer.close();
  const [older] = rotatedLogFiles(path);
  assert.ok(older);
  assert.deepEqual(records(older.path), [`stdout F ${"y".repeat(100)}`]);
  assert.deepEqual(records(path), ["stdout F short"]);
});

test("a writer reopening a log appends and continues the numbering; maxFiles 1 keeps no history", () => {
  const path = fresh();
  const first = new CriLogWriter({ path, now, rotation: { maxBytes: 60, maxFiles: 4 } });
  for (let i = 0; i < 6; i++) first.write("stdout", Buffer.from(`first ${i}\n`));
  first.close();
  const before = rotatedLogFiles(path).map((f) => f.n);
  const second = new CriLogWriter({ path, now, rotation: { maxBytes: 60, maxFiles: 4 } });
  for (let i = 0; i < 3; i++) second.write("stdout", Buffer.from(`second ${i}\n`));
  second.close();
  const after = rotatedLogFiles(path).map((f) => f.n);
  assert.ok(Math.max(...after) > Math.max(...before), `${before} then ${after}`);
  assert.ok(after.length <= 3);

  const single = fresh();
  const writer = new CriLogWriter({ path: single, now, rotation: { maxBytes: 40, maxFiles: 1 } });
  for (let i = 0; i < 5; i++) writer.write("stdout", Buffer.from(`only ${i}\n`));
  writer.close();
  assert.deepEqual(rotatedLogFiles(single), []);
  assert.deepEqual(records(single), ["stdout F only 4"]);
});

test("impossible options and unwritable paths fail with registered codes", () => {
  assert.throws(
    () => new CriLogWriter({ path: fresh(), rotation: { maxBytes: 10, maxFiles: 0 } }),
    {
      code: "WASMLET_ERR_LOG_OPTIONS",
    },
  );
  assert.throws(() => new CriLogWriter({ path: fresh(), maxLineBytes: 0 }), {
    code: "WASMLET_ERR_LOG_OPTIONS",
  });
  const file = join(root, "a-file");
  writeFileSync(file, "");
  assert.throws(() => new CriLogWriter({ path: join(file, "0.log") }), {
    code: "WASMLET_ERR_LOG_WRITE",
  });
  assert.equal(existsSync(join(file, "0.log")), false);
});

test("a write cut short by a full disk leaves no half record; the next line starts clean", () => {
  // A file size limit (SIGXFSZ ignored) cuts writes short like ENOSPC does: the write that
  // crosses it lands in part, the next one fails.
  const path = fresh();
  const script = `
    import { CriLogWriter } from ${JSON.stringify(new URL("../../../src/logs/log-writer.ts", import.meta.url).pathname)};
    const writer = new CriLogWriter({ path: ${JSON.stringify(path)} });
    const failures = [];
    for (let i = 1; i <= 40; i++) {
      try { writer.write("stdout", Buffer.from("line " + i + " " + "x".repeat(60) + "\\n")); }
      catch (error) { failures.push(i); }
    }
    try { writer.write("stdout", Buffer.from("short\\n")); } catch { failures.push("short"); }
    console.log(JSON.stringify(failures));`;
  const child = spawnSync(
    "bash",
    [
      "-c",
      `trap '' XFSZ; ulimit -f 1; exec "$0" --input-type=module -e "$1"`,
      process.execPath,
      script,
    ],
    { encoding: "utf8" },
  );
  assert.equal(child.status, 0, child.stderr);
  const failures = JSON.parse(child.stdout) as (number | string)[];
  assert.ok(failures.length > 0, "the limit was reached");
  assert.ok(!failures.includes("short"), "a record that fits is written after the failures");
  const text = readFileSync(path, "utf8");
  assert.ok(text.endsWith("\n"));
  const kept = records(path);
  assert.equal(kept.at(-1), "stdout F short");
  for (const record of kept.slice(0, -1)) assert.match(record, /^stdout F line \d+ x{60}$/);
});
