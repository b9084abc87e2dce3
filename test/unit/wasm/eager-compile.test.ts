// --eager-compile: with the flags set at start, every function of a newly compiled module is
// TurboFan code before its first call; without them a function is compiled (by Liftoff) only when
// first called. Checked with V8's test natives, which need --allow-natives-syntax: a child process.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { pathToFileURL } from "node:url";
import { ModuleBuilder, op } from "../runtime/wasm-builder.ts";

const dir = mkdtempSync(join(tmpdir(), "wasmlet-eager-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function tierOfFirstFunction(eager: boolean): { beforeCall: string; afterCall: string } {
  const b = new ModuleBuilder();
  b.exportFunction("f", b.function("f", ["i32"], ["i32"], [...op.localGet(0), ...op.i32(3), 0x6c]));
  const wasm = join(dir, "f.wasm");
  writeFileSync(wasm, b.bytes());
  const eagerModule = pathToFileURL(
    join(import.meta.dirname, "../../../src/wasm/eager-compile.ts"),
  );
  const script = join(dir, `tier-${eager}.mjs`);
  writeFileSync(
    script,
    `
import { readFileSync } from "node:fs";
import { enableEagerCompile } from ${JSON.stringify(eagerModule.href)};
if (${eager}) enableEagerCompile();
const tier = (f) => %IsUncompiledWasmFunction(f) ? "uncompiled" : %IsLiftoffFunction(f) ? "liftoff"
  : %IsTurboFanFunction(f) ? "turbofan" : "other";
const keep = setInterval(() => {}, 1000);
const module = await WebAssembly.compile(readFileSync(${JSON.stringify(wasm)}));
clearInterval(keep);
const f = new WebAssembly.Instance(module).exports.f;
const beforeCall = tier(f);
f(2);
console.log(JSON.stringify({ beforeCall, afterCall: tier(f) }));
`,
  );
  const output = execFileSync(process.execPath, ["--allow-natives-syntax", script], {
    encoding: "utf8",
    env: { ...process.env, NODE_OPTIONS: "" },
  });
  return JSON.parse(output.trim().split("\n").pop()!);
}

test("with --eager-compile every function is optimized before its first call", () => {
  assert.deepEqual(tierOfFirstFunction(true), { beforeCall: "turbofan", afterCall: "turbofan" });
});

test("by default a function is compiled by the baseline tier when first called", () => {
  assert.deepEqual(tierOfFirstFunction(false), { beforeCall: "uncompiled", afterCall: "liftoff" });
});
