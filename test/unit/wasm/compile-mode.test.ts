// compileWasm: an optimized compile gives a module that runs, keeps the event loop turning, really
// is TurboFan code from the start (checked with V8's natives in a child process), is kept apart
// from V8's cache of lazily compiled modules, and leaves lazy compiles lazy.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { pathToFileURL } from "node:url";
import { isWasmletError } from "../../../src/errors.ts";
import {
  COMPILE_MODE_SECTION,
  compileWasm,
  compileWindowStats,
  startupFlag,
} from "../../../src/wasm/compile-mode.ts";
import { instrumentYieldPoints } from "../../../src/wasm/yield-points.ts";
import { computeModule, expectedRun } from "./compute-module.ts";

const dir = mkdtempSync(join(tmpdir(), "wasmlet-compile-mode-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const BIG = { functions: 2000, ops: 16 };
const imports = () => ({ wasmlet: { yield: () => 1000 } });

test("an optimized compile runs off the event loop and gives a module that runs", async () => {
  const bytes = instrumentYieldPoints(computeModule(BIG));
  await compileWasm(computeModule({ functions: 1 }), "optimized"); // loads fetch's Response once
  const windows = compileWindowStats.windows;
  const gaps: number[] = [];
  let last = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    gaps.push(now - last);
    last = now;
  }, 5);
  const began = performance.now();
  const module = await compileWasm(bytes, "optimized");
  const took = performance.now() - began;
  clearInterval(ticker);
  gaps.push(performance.now() - last);
  const longest = Math.max(...gaps);
  // The event loop turned all along: no single stall near the whole compile.
  assert.ok(gaps.length >= 3, `only ${gaps.length} timer ticks in a ${took.toFixed(0)} ms compile`);
  assert.ok(
    longest < Math.max(100, took / 2),
    `a ${longest.toFixed(0)} ms stall in a ${took.toFixed(0)} ms compile`,
  );
  assert.equal(compileWindowStats.windows, windows + 1);
  assert.ok(compileWindowStats.lastWindowMs <= took);
  assert.equal(WebAssembly.Module.customSections(module, COMPILE_MODE_SECTION).length, 1);
  const run = new WebAssembly.Instance(module, imports()).exports.run as (n: number) => number;
  assert.equal(run(50), expectedRun(BIG, 50));
});

test("lazy compiles are plain WebAssembly.compile; bad bytes fail in both modes and close the window", async () => {
  const bytes = computeModule({ functions: 3 });
  const lazy = await compileWasm(bytes);
  assert.equal(WebAssembly.Module.customSections(lazy, COMPILE_MODE_SECTION).length, 0);
  await assert.rejects(compileWasm(new Uint8Array([1, 2, 3]), "optimized"), (e) =>
    isWasmletError(e, "WASMLET_ERR_NOT_WASM"),
  );
  const broken = bytes.slice(0, bytes.length - 3);
  await assert.rejects(compileWasm(broken, "optimized"), WebAssembly.CompileError);
  await assert.rejects(compileWasm(broken), WebAssembly.CompileError);
  // Nothing is left waiting for a window that never closes.
  const again = await compileWasm(bytes);
  assert.ok(again instanceof WebAssembly.Module);
  await assert.rejects(compileWasm(bytes, "fast" as never), /unknown compile mode fast/);
});

test("startupFlag reads V8 flags from the command line and NODE_OPTIONS", () => {
  const saved = { argv: process.execArgv, options: process.env.NODE_OPTIONS };
  try {
    process.env.NODE_OPTIONS = "--no-liftoff --max-old-space-size=100";
    Object.defineProperty(process, "execArgv", { value: [], configurable: true });
    assert.equal(startupFlag("liftoff", true), false);
    assert.equal(startupFlag("wasm-lazy-compilation", true), true);
    Object.defineProperty(process, "execArgv", {
      value: ["--liftoff", "--no_wasm_lazy_compilation"],
      configurable: true,
    });
    assert.equal(startupFlag("liftoff", true), true, "the command line comes after NODE_OPTIONS");
    assert.equal(startupFlag("wasm-lazy-compilation", true), false);
  } finally {
    Object.defineProperty(process, "execArgv", { value: saved.argv, configurable: true });
    if (saved.options === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = saved.options;
  }
});

test("V8's own view (natives syntax): optimized is TurboFan before any call, lazy stays lazy", () => {
  // %Is…Function are V8 test natives: they need --allow-natives-syntax, hence a child process.
  const compileMode = pathToFileURL(join(import.meta.dirname, "../../../src/wasm/compile-mode.ts"));
  const builder = pathToFileURL(join(import.meta.dirname, "compute-module.ts"));
  const script = join(dir, "tiers.mjs");
  writeFileSync(
    script,
    `
import { compileWasm } from ${JSON.stringify(compileMode.href)};
import { computeModule } from ${JSON.stringify(builder.href)};
const tier = (module) => {
  const f = new WebAssembly.Instance(module).exports.f0;
  return %IsUncompiledWasmFunction(f) ? "uncompiled" : %IsLiftoffFunction(f) ? "liftoff"
    : %IsTurboFanFunction(f) ? "turbofan" : "other";
};
const out = {};
const a = computeModule({ functions: 50, salt: 1 });
// The same bytes compiled lazily first: V8's module cache must not hand that module back.
out.lazyFirst = tier(await compileWasm(a));
out.optimizedSameBytes = tier(await compileWasm(a, "optimized"));
// An optimized compile and a lazy one started together: the lazy one is not made eager.
const big = computeModule({ functions: 1500, ops: 16, salt: 2 });
const small = computeModule({ functions: 50, salt: 3 });
const [optimized, lazy] = await Promise.all([compileWasm(big, "optimized"), compileWasm(small)]);
out.concurrentOptimized = tier(optimized);
out.concurrentLazy = tier(lazy);
// After the window, a fresh lazy compile is lazy and a first call gets Liftoff code.
const later = await compileWasm(computeModule({ functions: 50, salt: 4 }));
out.laterLazy = tier(later);
const f = new WebAssembly.Instance(later).exports.f0;
f(3);
out.laterFirstCall = %IsLiftoffFunction(f) ? "liftoff" : %IsTurboFanFunction(f) ? "turbofan" : "other";
console.log(JSON.stringify(out));
`,
  );
  const output = execFileSync(process.execPath, ["--allow-natives-syntax", script], {
    encoding: "utf8",
    env: { ...process.env, NODE_OPTIONS: "" },
  });
  assert.deepEqual(JSON.parse(output.trim().split("\n").pop()!), {
    lazyFirst: "uncompiled",
    optimizedSameBytes: "turbofan",
    concurrentOptimized: "turbofan",
    concurrentLazy: "uncompiled",
    laterLazy: "uncompiled",
    laterFirstCall: "liftoff",
  });
});
