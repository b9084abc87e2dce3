// instrumentYieldPoints: hand-assembled modules for each instruction family (checked by V8's own
// validator before and after, and run to compare results and count yield calls), every real test
// guest run under node:wasi with and without yield points, and malformed input.
import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { WASI } from "node:wasi";
import { isWasmletError } from "../../../src/errors.ts";
import {
  INITIAL_FUEL,
  instrumentYieldPoints,
  YIELD_IMPORT,
  YIELD_POINTS,
} from "../../../src/wasm/yield-points.ts";
import { buildGuest, type GuestName } from "../../support/guests.ts";
import { ModuleBuilder, op, sleb, uleb } from "../runtime/wasm-builder.ts";

// --- a raw assembler for what ModuleBuilder lacks ---------------------------------------------

type Bytes = number[];
const I32 = 0x7f;
const I64 = 0x7e;
const FUNCREF = 0x70;
const EXNREF = 0x69;
const EMPTY = 0x40;
const END = 0x0b;
const vec = (items: Bytes[]) => [...uleb(items.length), ...items.flat()];
const str = (text: string) => vec([...new TextEncoder().encode(text)].map((b) => [b]));
const section = (id: number, content: Bytes) => [id, ...uleb(content.length), ...content];
const wasm = (...sections: Bytes[]) =>
  new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...sections.flat()]);
const valtypes = (types: (number | Bytes)[]) =>
  vec(types.map((t) => (typeof t === "number" ? [t] : t)));
const funcType = (params: (number | Bytes)[], results: (number | Bytes)[]) => [
  0x60,
  ...valtypes(params),
  ...valtypes(results),
];
const types = (...entries: Bytes[]) => section(1, vec(entries));
const funcImport = (module: string, name: string, type: number) => [
  ...str(module),
  ...str(name),
  0x00,
  ...uleb(type),
];
const imports = (...entries: Bytes[]) => section(2, vec(entries));
const functions = (...typeIndices: number[]) => section(3, vec(typeIndices.map((t) => uleb(t))));
const exports = (...entries: [string, number, number][]) =>
  section(7, vec(entries.map(([name, kind, index]) => [...str(name), kind, ...uleb(index)])));
/**
 * A function body: locals as [count, type] pairs, then the code (the final `end` is added). Code
 * is a list of bytes and of byte lists (an instruction or a few per line), nested up to 3 deep.
 */
type Code = (number | Code)[];
const body = (code: Code, locals: [number, Bytes][] = []) => {
  const content = [
    ...vec(locals.map(([n, t]) => [...uleb(n), ...t])),
    ...(code.flat(3) as number[]),
    END,
  ];
  return [...uleb(content.length), ...content];
};
const codeSection = (...bodies: Bytes[]) => section(10, [...uleb(bodies.length), ...bodies.flat()]);
const i32 = (v: number) => [0x41, ...sleb(v)];
const i64 = (v: bigint) => [0x42, ...sleb(v)];
const ADD = 0x6a;
const DROP = 0x1a;
const loop = (...code: Bytes) => [0x03, EMPTY, ...code, END];

type Exports = Record<string, unknown>;
const run = (e: Exports, name: string, ...args: unknown[]) =>
  (e[name] as (...a: unknown[]) => unknown)(...args);

/** A yield import that counts its calls and hands out `fuel` each time. */
function yieldCounter(fuel: number) {
  const counter = {
    calls: 0,
    fn: () => {
      counter.calls++;
      return fuel;
    },
  };
  return counter;
}

function instantiate(bytes: Uint8Array, imports: WebAssembly.Imports = {}): Exports {
  return new WebAssembly.Instance(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), imports)
    .exports as Exports;
}

/** Validates the module, instruments it, validates that, and instantiates both. */
function both(
  bytes: Uint8Array,
  imports: WebAssembly.Imports = {},
  initialFuel = 1,
  fuel = 1,
): { original: Exports; instrumented: Exports; yields: ReturnType<typeof yieldCounter> } {
  assert.ok(WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>), "hand-built module is valid");
  const out = instrumentYieldPoints(bytes, { initialFuel });
  assert.ok(WebAssembly.validate(out), "instrumented module is valid");
  const yields = yieldCounter(fuel);
  return {
    original: instantiate(bytes, imports),
    instrumented: instantiate(out, { ...imports, [YIELD_IMPORT.module]: { yield: yields.fn } }),
    yields,
  };
}

function expectFailure(bytes: Uint8Array, code: string, message: RegExp): void {
  assert.throws(
    () => instrumentYieldPoints(bytes),
    (error: unknown) => {
      assert.ok(isWasmletError(error, code), `expected ${code}, got ${String(error)}`);
      assert.match((error as Error).message, message);
      return true;
    },
  );
}

// --- shapes and the index shift -------------------------------------------------------------

test("the description names the import the runtime must provide", () => {
  assert.deepEqual(YIELD_IMPORT, { module: "wasmlet", name: "yield" });
  assert.equal(YIELD_POINTS.yieldImport, YIELD_IMPORT);
  assert.equal(YIELD_POINTS.initialFuel, INITIAL_FUEL);
});

test("calls, exports, start, element segments of every flavour, tables and ref.func still reach the same functions", () => {
  // Functions: 0 env.base (import), 1 one, 2 two, 3 sum, 4 init (start), 5 viaTable,
  // 6 viaRef, 7 tail, 8 fillPassive, 9 viaTable2. Globals: 0 env.g (import), 1 gref, 2 started.
  const T_I32 = 0; // [] -> [i32], the yield import's type: reused, not added
  const T_I32_I32 = 1;
  const T_VOID = 2;
  const bytes = wasm(
    types(funcType([], [I32]), funcType([I32], [I32]), funcType([], [])),
    imports(funcImport("env", "base", T_I32), [...str("env"), ...str("g"), 0x03, I32, 0x00]),
    functions(T_I32, T_I32, T_I32, T_VOID, T_I32_I32, T_I32, T_I32, T_VOID, T_I32_I32),
    section(
      4,
      vec([
        [FUNCREF, 0x00, 10],
        [0x40, 0x00, FUNCREF, 0x00, 2, 0xd2, 3, END], // table 1: every slot ref.func $sum
      ]),
    ),
    section(
      6,
      vec([
        [FUNCREF, 0x00, 0xd2, 2, END], // gref = ref.func $two
        [I32, 0x01, ...i32(0), END], // started
      ]),
    ),
    exports(
      ["base", 0, 0],
      ["one", 0, 1],
      ["sum", 0, 3],
      ["viaTable", 0, 5],
      ["viaRef", 0, 6],
      ["tail", 0, 7],
      ["fillPassive", 0, 8],
      ["viaTable2", 0, 9],
      ["started", 3, 2],
      ["gref", 3, 1],
      ["t1", 1, 1],
    ),
    section(8, uleb(4)),
    section(
      9,
      vec([
        [0x00, ...i32(0), END, ...vec([[1], [2]])], // 0: table 0 at 0: one two
        [0x01, 0x00, ...vec([[1]])], // 1: passive: one
        [0x02, 0x00, ...i32(2), END, 0x00, ...vec([[2], [1]])], // 2: table 0 at 2: two one
        [0x03, 0x00, ...vec([[6]])], // 3: declarative
        [
          0x04,
          ...i32(4),
          END,
          ...vec([
            [0xd2, 1, END],
            [0xd0, FUNCREF, END],
          ]),
        ], // 4: at 4: one null
        [0x05, FUNCREF, ...vec([[0xd2, 2, END]])], // 5: passive: two
        [0x06, 0x00, ...i32(6), END, FUNCREF, ...vec([[0xd2, 2, END]])], // 6: at 6: two
        [0x07, FUNCREF, ...vec([[0xd2, 7, END]])], // 7: declarative
        [0x00, ...i32(9), END, ...vec([[0]])], // 8: at 9: the import
      ]),
    ),
    codeSection(
      body(i32(1)),
      body(i32(2)),
      body([0x10, 1, 0x10, 2, ADD, 0x10, 0, ADD]),
      body([0x10, 2, 0x24, 2]),
      body([0x20, 0, 0x11, T_I32, 0]),
      body([0xd2, 2, 0x14, T_I32]),
      body([0x12, 1]),
      // table.init elem 1 at 7, table.init elem 5 at 8
      body([i32(7), i32(0), i32(1), 0xfc, 12, 1, 0, i32(8), i32(0), i32(1), 0xfc, 12, 5, 0]),
      body([0x20, 0, 0x11, T_I32, 1]),
    ),
  );
  const env = { env: { base: () => 100, g: 5 } };
  const { original, instrumented } = both(bytes, env, INITIAL_FUEL, INITIAL_FUEL);
  const out = instrumentYieldPoints(bytes);
  assert.deepEqual(
    WebAssembly.Module.exports(new WebAssembly.Module(out)),
    WebAssembly.Module.exports(new WebAssembly.Module(bytes)),
  );
  assert.deepEqual(WebAssembly.Module.imports(new WebAssembly.Module(out)), [
    { module: "env", name: "base", kind: "function" },
    { module: "env", name: "g", kind: "global" },
    { module: "wasmlet", name: "yield", kind: "function" },
  ]);
  // The existing [] -> [i32] type was reused: the type section is byte for byte the same.
  const typeSection = bytes.subarray(8, 8 + 2 + bytes[9]!);
  assert.deepEqual(out.subarray(8, 8 + typeSection.length), typeSection);

  for (const e of [original, instrumented]) {
    assert.equal((e.started as WebAssembly.Global).value, 2, "the start function ran");
    assert.equal(run(e, "base"), 100);
    assert.equal(run(e, "one"), 1);
    assert.equal(run(e, "sum"), 103);
    assert.equal(run(e, "viaRef"), 2);
    assert.equal(run(e, "tail"), 1);
    assert.equal(((e.gref as WebAssembly.Global).value as () => number)(), 2);
    assert.equal(((e.t1 as WebAssembly.Table).get(1) as () => number)(), 103);
    assert.equal(run(e, "viaTable2", 0), 103);
    const table = [1, 2, 2, 1, 1, undefined, 2, undefined, undefined, 100];
    // Every function in table 0 has the called type, so a trap here means an empty slot. V8 says
    // "null function or function signature mismatch" in Node 24, "function signature mismatch"
    // in Node 26.
    const emptySlot = /null|uninit|signature mismatch/;
    for (const [slot, expected] of table.entries()) {
      if (expected === undefined) assert.throws(() => run(e, "viaTable", slot), emptySlot);
      else assert.equal(run(e, "viaTable", slot), expected, `table slot ${slot}`);
    }
    run(e, "fillPassive");
    assert.equal(run(e, "viaTable", 7), 1);
    assert.equal(run(e, "viaTable", 8), 2);
  }
});

test("a loop of N iterations calls yield once the initial fuel is spent, then every `fuel` iterations", () => {
  const builder = new ModuleBuilder();
  const spin = builder.function(
    "spin",
    ["i32"],
    ["i32"],
    [
      0x03,
      EMPTY,
      ...op.localGet(1),
      ...op.i32(1),
      ADD,
      0x22,
      1, // local.tee $i
      ...op.localGet(0),
      0x49, // i32.lt_u
      0x0d,
      0, // br_if 0
      END,
      ...op.localGet(1),
    ],
    ["i32"],
  );
  builder.exportFunction("spin", spin);
  const bytes = builder.bytes();
  for (const [n, fuel] of [
    [1_000_000, 1000],
    [5_000, 1000],
    [123_457, 7],
  ] as const) {
    const yields = yieldCounter(fuel);
    const e = instantiate(instrumentYieldPoints(bytes), { wasmlet: { yield: yields.fn } });
    assert.equal(run(e, "spin", n), n);
    // One unit at the function entry, one per iteration.
    const spent = n + 1;
    const expected = spent < INITIAL_FUEL ? 0 : 1 + Math.floor((spent - INITIAL_FUEL) / fuel);
    assert.equal(yields.calls, expected, `n=${n} fuel=${fuel}`);
  }
});

test("yield can stop the guest by throwing; the fuel it returns is used as is", () => {
  // A loop of 10^7 iterations (not an endless one: without yield points this test must fail,
  // not hang). Yield is called after 50, 60 and 70 units of fuel, and the third call throws.
  const builder = new ModuleBuilder();
  const spin = [
    ...[0x03, EMPTY, ...op.localGet(0), ...op.i32(1), ADD, 0x22, 0], // loop; $i += 1
    ...[...op.i32(10_000_000), 0x49, 0x0d, 0, END], // br_if $i < 10^7
  ];
  builder.exportFunction("spin", builder.function("spin", [], [], spin, ["i32"]));
  const out = instrumentYieldPoints(builder.bytes(), { initialFuel: 50 });
  let calls = 0;
  let spent = 0;
  const e = instantiate(out, {
    wasmlet: {
      yield: () => {
        spent = calls === 0 ? 50 : spent + 10;
        if (++calls === 3) throw new Error(`stop after ${spent}`);
        return 10;
      },
    },
  });
  assert.throws(() => run(e, "spin"), /stop after 70/);
  assert.equal(calls, 3);
});

test("function names survive in the name section: a trap's stack names the original function", () => {
  const builder = new ModuleBuilder();
  builder.importFunction("env", "f", [], []);
  const helper = builder.function("helper", [], [], [...op.unreachable]);
  builder.exportFunction("boom", builder.function("boom", [], [], op.call(helper)));
  const out = instrumentYieldPoints(builder.bytes());
  const e = instantiate(out, { env: { f: () => {} }, wasmlet: { yield: () => 1000 } });
  const error = (() => {
    try {
      run(e, "boom");
    } catch (caught) {
      return caught as Error;
    }
    return undefined;
  })();
  assert.ok(error instanceof WebAssembly.RuntimeError);
  // helper was function 1 and is function 2 now (the yield import comes before it).
  assert.match(error.stack ?? "", /at helper \(wasm:\/\/wasm\/[0-9a-f]+:wasm-function\[2\]/);
  assert.match(error.stack ?? "", /at boom \(wasm:\/\/wasm\/[0-9a-f]+:wasm-function\[3\]/);
});

test("the name section's function, local and label names are shifted; other subsections and custom sections pass through", () => {
  const names = (fn: number) =>
    [
      [0, ...str("mod")],
      [
        1,
        ...vec([
          [0, ...str("imp")],
          [fn + 1, ...str("a")],
          [fn + 2, ...str("b")],
        ]),
      ],
      [
        2,
        ...vec([
          [fn + 1, ...vec([[0, ...str("x")]])],
          [fn + 2, ...vec([[0, ...str("y")]])],
        ]),
      ],
      [3, ...vec([[fn + 2, ...vec([[0, ...str("l")]])]])],
      [7, ...vec([[0, ...str("g")]])],
    ].flatMap(([id, ...content]) => [id!, ...uleb(content.length), ...content]);
  const nameSection = (fn: number) => section(0, [...str("name"), ...names(fn)]);
  const other = section(0, [...str("producers"), 1, 2, 3, 0x10, 0x05]);
  const hints = section(0, [...str("metadata.code.branch_hint"), ...vec([[1, 0, 0, 1, 1]])]);
  const module = (fn: number, ...extra: Bytes[]) =>
    wasm(
      types(funcType([I32], [])),
      imports(funcImport("env", "imp", 0)),
      functions(0, 0),
      section(6, vec([[I32, 0x01, ...i32(0), END]])),
      codeSection(body([0x02, EMPTY, END]), body([0x03, EMPTY, END])),
      ...extra,
      nameSection(fn),
    );
  const out = instrumentYieldPoints(module(0, other, hints));
  assert.ok(WebAssembly.validate(out));
  const m = new WebAssembly.Module(out);
  assert.deepEqual(
    new Uint8Array(WebAssembly.Module.customSections(m, "name")[0]!),
    new Uint8Array(names(1)),
  );
  assert.deepEqual(
    new Uint8Array(WebAssembly.Module.customSections(m, "producers")[0]!),
    new Uint8Array([1, 2, 3, 0x10, 0x05]),
  );
  assert.equal(WebAssembly.Module.customSections(m, "metadata.code.branch_hint").length, 0);
  // A malformed name section is dropped, the module is still instrumented.
  const broken = wasm(
    types(funcType([], [])),
    functions(0),
    codeSection(body([])),
    section(0, [...str("name"), 1, 5, 9, 9]),
  );
  const fixed = new WebAssembly.Module(instrumentYieldPoints(broken));
  assert.equal(WebAssembly.Module.customSections(fixed, "name").length, 0);
});

test("a module without type, import or global sections gets them, in section order", () => {
  const empty = wasm();
  const out = instrumentYieldPoints(empty);
  assert.ok(WebAssembly.validate(out));
  assert.deepEqual(WebAssembly.Module.imports(new WebAssembly.Module(out)), [
    { module: "wasmlet", name: "yield", kind: "function" },
  ]);
  // Memory and data only; custom sections in between.
  const memoryOnly = wasm(
    section(0, [...str("first")]),
    section(5, vec([[0x00, 1]])),
    section(0, [...str("middle")]),
    section(11, vec([[0x00, ...i32(0), END, ...str("hi")]])),
  );
  assert.ok(WebAssembly.validate(instrumentYieldPoints(memoryOnly)));
  // A type section that lacks [] -> [i32] gets it appended; imports that are not functions stay.
  const memoryImport = wasm(
    types(funcType([I32], [I32])),
    imports([...str("env"), ...str("memory"), 0x02, 0x00, 1]),
    functions(0),
    exports(["id", 0, 0]),
    codeSection(body([0x20, 0])),
  );
  const e = instantiate(instrumentYieldPoints(memoryImport), {
    env: { memory: new WebAssembly.Memory({ initial: 1 }) },
    wasmlet: { yield: () => 1 },
  });
  assert.equal(run(e, "id", 42), 42);
});

test("indices whose LEB128 grows, padded LEB128s and 2-byte block type indices", () => {
  // Types: 0 [] -> [i32], 1..69 [i32] -> [i32]. Functions: 0 import, 1..130 return their index.
  const manyTypes = [
    funcType([], [I32]),
    ...Array.from({ length: 69 }, () => funcType([I32], [I32])),
  ];
  const bodies = Array.from({ length: 130 }, (_, i) => body([i32(i + 1)]));
  const runBody = body([
    [0x10, 127], // call 127: one LEB128 byte before, two after
    [0x10, 0x81, 0x80, 0x80, 0x80, 0x00], // call 1, padded to five bytes
    ADD,
    [0x10, 0], // the import
    ADD,
    i32(1),
    [0x03, 0xc5, 0x00], // loop (type 69): [i32] -> [i32]
    [i32(1), ADD, END],
    ADD,
  ]);
  const bytes = wasm(
    types(...manyTypes),
    imports(funcImport("env", "f", 0)),
    functions(...Array.from({ length: 130 }, () => 0), 0),
    exports(["run", 0, 131], ["e127", 0, 127], ["e130", 0, 130]),
    codeSection(...bodies, runBody),
  );
  const { original, instrumented, yields } = both(bytes, { env: { f: () => 100 } });
  for (const e of [original, instrumented]) {
    assert.equal(run(e, "run"), 127 + 1 + 100 + 2);
    assert.equal(run(e, "e127"), 127);
    assert.equal(run(e, "e130"), 130);
  }
  // run, 127, 1, the loop once; then e127 and e130.
  assert.equal(yields.calls, 6);
});

// --- instruction families ---------------------------------------------------------------------
// Each module is checked by V8 before and after (a misplaced instruction boundary would not
// validate), run both ways, and run with one unit of fuel per yield so that every executed check
// calls yield: the count proves each loop got its check and nothing else did.

test("control flow and constants: multi-value blocks, br_table, select t, wide LEB128 and float immediates", () => {
  const bytes = wasm(
    types(funcType([], [I32]), funcType([I32], [I32]), funcType([], [I32, I64])),
    functions(0),
    exports(["run", 0, 0]),
    codeSection(
      body(
        [
          [i64(-(2n ** 63n)), DROP], // ten bytes
          [0x42, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, DROP], // 2^63-1
          [0x43, 0x03, 0x40, 0x0b, 0x10, DROP], // f32.const whose bytes read loop, end, call
          [0x44, 0x03, 0x40, 0x03, 0x40, 0x0b, 0x0b, 0x10, 0x12, DROP],
          [i32(0x4003), DROP],
          [0x02, 2, i32(5), i64(6n), END, DROP], // block (type 2): [] -> [i32 i64]; 5
          [0x02, 1, i32(1), ADD, END], // block (type 1): [i32] -> [i32]; 6
          [0x03, I32, i32(2), END, ADD], // loop (result i32); 8
          [0x03, 1, i32(3), ADD, END], // loop (type 1); 11
          [0x02, EMPTY, 0x02, EMPTY, i32(1)],
          [0x0e, 2, 0, 1, 1], // br_table 0 1 (default 1)
          [END, 0x00, END], // unreachable unless br_table went wrong
          loop(),
          [i32(10), i32(20), i32(0), 0x1c, 1, I32, ADD], // select (result i32): 20; 31
          [i32(1), 0x04, I32, 0x03, I32, i32(1), END], // if (result i32) loop 1 end
          [0x05, 0x03, I32, i32(2), END, END, ADD], // else loop 2 end end; 32
          [0x20, 0, DROP],
        ],
        [[1, [I64]]],
      ),
    ),
  );
  const { original, instrumented, yields } = both(bytes);
  assert.equal(run(original, "run"), 32);
  assert.equal(run(instrumented, "run"), 32);
  assert.equal(yields.calls, 5, "entry and four loops");
});

test("SIMD and relaxed SIMD: v128.const, shuffles, lanes, memargs with lanes, two-byte sub-opcodes", () => {
  const v1 = [3, 0x40, 0x0b, 0x10, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
  const v2 = Array.from({ length: 16 }, (_, i) => 16 + i);
  const simd = (sub: number, ...imm: Bytes) => [0xfd, ...uleb(sub), ...imm];
  const bytes = wasm(
    types(funcType([], [I32])),
    functions(0),
    section(5, vec([[0x00, 1]])),
    exports(["run", 0, 0]),
    codeSection(
      body([
        [simd(0x0c, ...v1), simd(0x0c, ...v2)], // v128.const
        simd(0x0d, 3, 11, 16, 0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 12, 13, 31), // i8x16.shuffle
        simd(0x15, 3), // i8x16.extract_lane_s 3: 3
        [i32(0), simd(0x0c, ...v1), simd(0x0b, 4, 0)], // v128.store
        [i32(0), simd(0x00, 4, 0)], // v128.load
        [simd(0x16, 1), ADD], // i8x16.extract_lane_u 1: 64
        [i32(0), simd(0x0c, ...new Array(16).fill(0))],
        simd(0x54, 0, 0, 5), // v128.load8_lane 5
        [simd(0x16, 5), ADD], // 3
        [i32(4), simd(0x5c, 2, 0)], // v128.load32_zero
        [simd(0x1b, 0), i32(0x07060504), 0x46, ADD], // i32x4.extract_lane 0, i32.eq: 1
        [i32(5), simd(0x11), i32(6), simd(0x11)], // i32x4.splat
        [simd(0xae), simd(0x1b, 2), ADD], // i32x4.add: 11
        [0x43, 0x00, 0x00, 0xc0, 0x3f, simd(0x13)], // f32x4.splat 1.5
        [simd(0x101), simd(0x1b, 0), ADD], // i32x4.relaxed_trunc_f32x4_s: 1
        [simd(0x0c, ...v2), simd(0x0c, ...v1), simd(0x100)], // i8x16.relaxed_swizzle
        [simd(0x53), ADD], // v128.any_true: 1
        [i32(0), simd(0x0c, ...v1), simd(0x5b, 3, 0, 1)], // v128.store64_lane 1
        loop(),
      ]),
    ),
  );
  const { original, instrumented, yields } = both(bytes);
  assert.equal(run(original, "run"), 84);
  assert.equal(run(instrumented, "run"), 84);
  assert.equal(yields.calls, 2);
});

test("threads: atomic memargs, atomic.fence's zero byte, wait and notify", () => {
  const atomic = (sub: number, ...imm: Bytes) => [0xfe, ...uleb(sub), ...imm];
  const bytes = wasm(
    types(funcType([], [I32])),
    functions(0),
    section(5, vec([[0x03, 1, 1]])), // shared memory
    exports(["run", 0, 0]),
    codeSection(
      body([
        [i32(0), i32(5), atomic(0x17, 2, 0)], // i32.atomic.store
        [i32(0), i32(3), atomic(0x1e, 2, 0)], // i32.atomic.rmw.add: 5
        [i32(0), atomic(0x10, 2, 0), ADD], // i32.atomic.load: 8
        atomic(0x03, 0), // atomic.fence
        [i32(0), i32(1), atomic(0x00, 2, 0), ADD], // memory.atomic.notify: 0 waiters
        [i32(0), i32(8), i32(20), atomic(0x48, 2, 0), ADD], // i32.atomic.rmw.cmpxchg: 8
        [i32(0), atomic(0x11, 3, 0), 0xa7, ADD], // i64.atomic.load, i32.wrap_i64: 20
        [i32(0), i32(0), i64(0n), atomic(0x01, 2, 0), ADD], // memory.atomic.wait32: 1
        loop(),
      ]),
    ),
  );
  const { original, instrumented, yields } = both(bytes);
  assert.equal(run(original, "run"), 42);
  assert.equal(run(instrumented, "run"), 42);
  assert.equal(yields.calls, 2);
});

test("bulk memory, tables and reference types", () => {
  const misc = (sub: number, ...imm: Bytes) => [0xfc, ...uleb(sub), ...imm];
  const bytes = wasm(
    types(funcType([], [I32])),
    functions(0, 0),
    section(4, vec([[FUNCREF, 0x00, 4]])),
    section(5, vec([[0x00, 1]])),
    exports(["run", 0, 0]),
    section(
      9,
      vec([
        [0x01, 0x00, ...vec([[1]])],
        [0x03, 0x00, ...vec([[1]])],
      ]),
    ),
    section(12, uleb(1)),
    codeSection(
      body([
        [i32(0), i32(0), i32(4), misc(8, 0, 0)], // memory.init 0 0
        misc(9, 0), // data.drop 0
        [i32(8), i32(0), i32(4), misc(10, 0, 0)], // memory.copy 0 0
        [i32(12), i32(0x0b), i32(4), misc(11, 0)], // memory.fill 0
        [i32(8), 0x2d, 0, 0], // i32.load8_u: 'A'
        [i32(12), 0x2d, 0, 0, ADD], // 11
        [i32(0), i32(0), i32(1), misc(12, 0, 0)], // table.init 0 0
        misc(13, 0), // elem.drop 0
        [i32(1), i32(0), i32(1), misc(14, 0, 0)], // table.copy 0 0
        [0xd2, 1, i32(2), misc(15, 0), ADD], // table.grow: 4
        [misc(16, 0), ADD], // table.size: 6
        [i32(4), 0xd0, FUNCREF, i32(2), misc(17, 0)], // table.fill
        [i32(2), 0x25, 0, 0xd1, ADD], // table.get, ref.is_null: 1
        [i32(3), 0xd2, 1, 0x26, 0], // table.set
        [i32(3), 0x11, 0, 0, ADD], // call_indirect: 7
        [0x43, 0x00, 0x00, 0x20, 0x40, misc(0), ADD], // i32.trunc_sat_f32_s 2.5: 2
        [i32(1), 0xc0, ADD], // i32.extend8_s
        loop(),
      ]),
      body([i32(7)]),
    ),
    section(11, vec([[0x01, ...str("ABCD")]])),
  );
  const { original, instrumented, yields } = both(bytes);
  assert.equal(run(original, "run"), 97);
  assert.equal(run(instrumented, "run"), 97);
  assert.equal(yields.calls, 3, "run, its loop, and the function called through the table");
});

test("memory64 and multi-memory: memory indices in memargs, u64 offsets", () => {
  const bytes = wasm(
    types(funcType([], [I32])),
    functions(0),
    section(
      5,
      vec([
        [0x00, 1],
        [0x04, 1],
      ]),
    ), // memory 0: i32; memory 1: i64
    exports(["run", 0, 0]),
    codeSection(
      body([
        [i64(16n), i32(77), 0x36, 0x42, 1, 0], // i32.store memory 1
        [i64(0n), 0x28, 0x42, 1, 16], // i32.load memory 1 offset 16: 77
        [0x3f, 1, 0xa7, ADD], // memory.size 1: 1
        [i64(0n), 0x40, 1, 0xa7, ADD], // memory.grow 1: 1
        [i32(0), 0x28, 0x02, 0, ADD], // i32.load memory 0: 0
        [i64(0n), i32(0), i64(0n), 0xfc, 11, 1], // memory.fill 1
        [0x02, EMPTY, 0x0c, 0], // block br 0: what follows is dead but validated
        [i64(0n), 0x28, 0x42, 1, uleb(2n ** 40n), DROP, END], // offset 2^40
        loop(),
      ]),
    ),
  );
  const { original, instrumented, yields } = both(bytes);
  assert.equal(run(original, "run"), 79);
  assert.equal(run(instrumented, "run"), 79);
  assert.equal(yields.calls, 2);
});

test("legacy exceptions: try, catch, catch_all, rethrow, delegate", () => {
  const bytes = wasm(
    types(funcType([], [I32]), funcType([I32], [])),
    functions(0),
    section(13, vec([[0x00, 1]])),
    exports(["run", 0, 0]),
    codeSection(
      body([
        [0x06, I32, loop(), i32(7), 0x08, 0], // try (result i32) loop; throw 0
        [0x07, 0, loop(), END], // catch 0 loop end: 7
        [0x06, EMPTY, 0x06, EMPTY, i32(1), 0x08, 0], // try try throw 0
        [0x18, 0], // delegate 0
        [0x07, 0, DROP, END], // catch 0 drop end
        [0x06, I32, 0x06, EMPTY, i32(9), 0x08, 0], // try (result i32) try throw 0
        [0x19, 0x09, 0, END], // catch_all rethrow 0 end
        [i32(0), 0x07, 0, END, ADD], // catch 0 end: 9
        loop(),
      ]),
    ),
  );
  const { original, instrumented, yields } = both(bytes);
  assert.equal(run(original, "run"), 16);
  assert.equal(run(instrumented, "run"), 16);
  assert.equal(yields.calls, 4);
});

test("exceptions with exnref: try_table with all four catch clauses, throw_ref", () => {
  const bytes = wasm(
    types(funcType([], [I32]), funcType([I32], []), funcType([], [I32, EXNREF])),
    functions(0),
    section(13, vec([[0x00, 1]])),
    exports(["run", 0, 0]),
    codeSection(
      body(
        [
          [0x02, EMPTY, 0x02, EXNREF, 0x02, I32, 0x02, 2], // blocks $d $c $b $a ([i32 exnref])
          [0x1f, EMPTY, 4], // try_table
          [0x01, 0, 0], // catch_ref tag 0 -> $a
          [0x00, 0, 1], // catch tag 0 -> $b
          [0x03, 2], // catch_all_ref -> $c
          [0x02, 3], // catch_all -> $d
          [loop(), i32(3), 0x08, 0, END, 0x00], // loop; throw 0; end; unreachable
          [END, 0x21, 0], // end $a; local.set $exn
          [END, 0x21, 1, 0x20, 0], // end $b (3); local.set $n; local.get $exn
          [END, DROP, END], // end $c; drop; end $d
          [0x02, I32, 0x1f, EMPTY, 1, 0x00, 0, 0], // block (result i32) try_table (catch 0 0)
          [0x20, 0, 0x0a, END], // local.get $exn; throw_ref; end
          [i32(0), END], // 3
          [0x20, 1, ADD],
        ],
        [
          [1, [EXNREF]],
          [1, [I32]],
        ],
      ),
    ),
  );
  const { original, instrumented, yields } = both(bytes);
  assert.equal(run(original, "run"), 6);
  assert.equal(run(instrumented, "run"), 6);
  assert.equal(yields.calls, 2);
});

test("tail calls and typed function references: return_call, return_call_indirect, call_ref, return_call_ref", () => {
  const bytes = wasm(
    types(funcType([], [I32]), funcType([I32], [I32])),
    functions(0, 1, 1, 1),
    section(4, vec([[FUNCREF, 0x00, 1]])),
    exports(["run", 0, 0]),
    section(
      9,
      vec([
        [0x00, ...i32(0), END, ...vec([[2]])],
        [0x03, 0x00, ...vec([[3]])],
      ]),
    ),
    codeSection(
      body([i32(5), 0x12, 1]), // return_call 1
      body([0x20, 0, i32(0), 0x13, 1, 0]), // return_call_indirect (type 1) table 0
      body([0x20, 0, 0xd2, 3, 0x15, 1]), // return_call_ref (type 1)
      body([0x20, 0, i32(1), ADD, 0xd2, 3, 0xd4, DROP]), // ref.as_non_null
    ),
  );
  const { original, instrumented, yields } = both(bytes);
  assert.equal(run(original, "run"), 6);
  assert.equal(run(instrumented, "run"), 6);
  assert.equal(yields.calls, 4);
});

test("GC: recursion groups, subtypes, struct/array/i31 instructions, casts, br_on_cast", () => {
  const gc = (sub: number, ...imm: Bytes) => [0xfb, ...uleb(sub), ...imm];
  const REF = 0x64;
  const REF_NULL = 0x63;
  const bytes = wasm(
    types(
      funcType([], [I32]), // 0
      [
        0x4e, // a recursion group of two
        ...vec([
          [0x50, 0x00, 0x5f, ...vec([[I32, 0x01]])], // 1: sub struct { mut i32 }
          [
            0x4f,
            0x01,
            0x01,
            0x5f,
            ...vec([
              [I32, 0x01],
              [I64, 0x00],
            ]),
          ], // 2: sub final 1
        ]),
      ],
      [0x5e, 0x78, 0x01], // 3: array (mut i8)
      [0x5e, I32, 0x01], // 4: array (mut i32)
      [0x5e, FUNCREF, 0x01], // 5: array (mut funcref)
      funcType([I32], [I32]), // 6
    ),
    functions(0, 6),
    exports(["run", 0, 0]),
    section(
      9,
      vec([
        [0x05, FUNCREF, ...vec([[0xd2, 1, END]])],
        [0x03, 0x00, ...vec([[1]])],
      ]),
    ),
    section(12, uleb(1)),
    codeSection(
      body(
        [
          [i32(5), gc(0, 1), 0x21, 0], // struct.new 1
          [0x20, 0, i32(7), gc(5, 1, 0)], // struct.set 1 0
          [0x20, 0, gc(2, 1, 0)], // struct.get 1 0: 7
          [i32(4), gc(7, 4), 0x21, 1], // array.new_default 4
          [0x20, 1, i32(0), i32(5), gc(14, 4)], // array.set
          [0x20, 1, i32(1), i32(6), i32(2), gc(16, 4)], // array.fill: [5 6 6 0]
          [0x20, 1, i32(2), 0x20, 1, i32(0), i32(2), gc(17, 4, 4)], // array.copy: [5 6 5 6]
          [0x20, 1, i32(3), gc(11, 4), ADD], // array.get: 6
          [0x20, 1, gc(15), ADD], // array.len: 4
          [i32(1), i32(2), gc(8, 4, 2), i32(1), gc(11, 4), ADD], // array.new_fixed 4 2: 2
          [i32(0), i32(4), gc(9, 3, 0)], // array.new_data 3 0: [1 2 3 4]
          [i32(2), gc(13, 3), ADD], // array.get_u: 3
          [i32(255), i32(1), gc(6, 3), i32(0), gc(12, 3), ADD], // array.new, array.get_s: -1
          [0x20, 1, i32(0), i32(0), i32(1), gc(18, 4, 0)], // array.init_data 4 0
          [0x20, 1, i32(0), gc(11, 4), i32(0x04030201), 0x46, ADD], // 1
          [i32(0), i32(1), gc(10, 5, 0), 0x21, 2], // array.new_elem 5 0
          [0x20, 2, i32(0), i32(0), i32(1), gc(19, 5, 0)], // array.init_elem 5 0
          [0x20, 2, i32(0), gc(11, 5), 0xd1, ADD], // ref.is_null: 0
          [gc(1, 2), gc(20, 1), ADD], // struct.new_default 2, ref.test (ref 1): 1
          [0xd0, 0x71, gc(21, 1), ADD], // ref.null none, ref.test (ref null 1): 1
          [gc(1, 2), gc(22, 1), gc(23, 2), gc(2, 2, 0), ADD], // ref.cast, ref.cast null: 0
          [0x02, REF, 2, gc(1, 2)], // block (result (ref 2))
          gc(24, 0x01, 0, 1, 2), // br_on_cast 0 (ref null 1) (ref 2)
          [DROP, 0x00, END, 0xd1, ADD], // 0
          [0x02, REF_NULL, 1, gc(1, 1)], // block (result (ref null 1))
          gc(25, 0x01, 0, 1, 2), // br_on_cast_fail 0 (ref null 1) (ref 2)
          [DROP, 0x00, END, gc(20, 2), 0x45, ADD], // i32.eqz: 1
          [i32(9), gc(28), gc(29), ADD], // ref.i31, i31.get_s: 9
          [i32(-1), gc(28), gc(30), i32(0x7fffffff), 0x46, ADD], // i31.get_u: 1
          [i32(1), gc(28), i32(1), gc(28), 0xd3, ADD], // ref.eq: 1
          [0xd0, 0x6f, gc(26), gc(27), 0xd1, ADD], // any.convert_extern, extern.convert_any: 1
          [0x02, EMPTY, 0x20, 0, 0xd5, 0, DROP, END], // br_on_null 0
          [0x02, REF, 1, 0x20, 0, 0xd6, 0, 0x00, END], // br_on_non_null 0
          [gc(2, 1, 0), ADD], // 7
          [0x20, 0, 0xd4, gc(2, 1, 0), ADD], // ref.as_non_null: 7
          [i32(10), 0xd2, 1, 0x14, 6, ADD], // call_ref (type 6): 11
          loop(),
        ],
        [
          [1, [REF_NULL, 1]],
          [1, [REF_NULL, 4]],
          [1, [REF_NULL, 5]],
        ],
      ),
      body([0x20, 0, i32(1), ADD]),
    ),
    section(11, vec([[0x01, ...vec([[1], [2], [3], [4]])]])),
  );
  const { original, instrumented, yields } = both(bytes);
  assert.equal(run(original, "run"), 62);
  assert.equal(run(instrumented, "run"), 62);
  assert.equal(yields.calls, 3);
});

// --- malformed input --------------------------------------------------------------------------

/** One imported function and one defined function (index 1) with `code` as its body. */
function oneFunction(code: Bytes, bodySize?: number): { bytes: Uint8Array; codeAt: number } {
  const head = wasm(types(funcType([], [])), imports(funcImport("env", "f", 0)), functions(0));
  const content = [0x00, ...code];
  const size = bodySize ?? content.length;
  const sectionContent = [1, ...uleb(size), ...content];
  const bytes = new Uint8Array([...head, 10, ...uleb(sectionContent.length), ...sectionContent]);
  // Offset of the first instruction: after the section header, count, size and locals.
  return { bytes, codeAt: bytes.length - code.length };
}

test("an unknown opcode is refused with the opcode, the function index and the byte offset", () => {
  const { bytes, codeAt } = oneFunction([0x01, 0x27, END]);
  expectFailure(
    bytes,
    "WASMLET_ERR_WASM_UNKNOWN_OPCODE",
    new RegExp(
      `unknown opcode 0x27 in function 1 \\(code section\\) at byte offset 0x${(codeAt + 1).toString(16)}$`,
    ),
  );
  const simd = oneFunction([0xfd, 0x80, 0x04, END]);
  expectFailure(
    simd.bytes,
    "WASMLET_ERR_WASM_UNKNOWN_OPCODE",
    new RegExp(
      `unknown opcode 0xfd 0x200 \\(SIMD prefix\\) in function 1 .* 0x${simd.codeAt.toString(16)}$`,
    ),
  );
  expectFailure(
    oneFunction([0xfe, 0x04, 2, 0, END]).bytes,
    "WASMLET_ERR_WASM_UNKNOWN_OPCODE",
    /unknown opcode 0xfe 0x04 \(atomic prefix\)/,
  );
  expectFailure(
    oneFunction([0xfb, 31, END]).bytes,
    "WASMLET_ERR_WASM_UNKNOWN_OPCODE",
    /unknown opcode 0xfb 0x1f \(GC prefix\)/,
  );
});

test("truncated and malformed bodies are refused, never emitted", () => {
  // i32.const without its immediate: the body ends inside the instruction.
  const cut = oneFunction([0x41]);
  expectFailure(
    cut.bytes,
    "WASMLET_ERR_WASM_MALFORMED",
    new RegExp(
      `unexpected end .* in function 1 \\(code section\\) at byte offset 0x${(cut.codeAt + 1).toString(16)}$`,
    ),
  );
  // A body without its final end.
  expectFailure(
    oneFunction([0x01, 0x01]).bytes,
    "WASMLET_ERR_WASM_MALFORMED",
    /unexpected end .* in function 1/,
  );
  // Bytes after the final end.
  expectFailure(
    oneFunction([END, 0x01]).bytes,
    "WASMLET_ERR_WASM_MALFORMED",
    /1 bytes after the end of the function body in function 1/,
  );
  // A code section cut short (it is the last section: its declared size runs past the end).
  const whole = oneFunction([0x03, EMPTY, END, END]).bytes;
  expectFailure(
    whole.subarray(0, whole.length - 2),
    "WASMLET_ERR_WASM_MALFORMED",
    /unexpected end .* in the code section at byte offset/,
  );
  // A body size beyond its section.
  expectFailure(oneFunction([END], 40).bytes, "WASMLET_ERR_WASM_MALFORMED", /unexpected end/);
  // delegate outside try, a bad try_table clause, an unknown value type.
  expectFailure(
    oneFunction([0x18, 0, END]).bytes,
    "WASMLET_ERR_WASM_MALFORMED",
    /delegate outside a try/,
  );
  expectFailure(
    oneFunction([0x1f, EMPTY, 1, 7, 0, END, END]).bytes,
    "WASMLET_ERR_WASM_MALFORMED",
    /unknown try_table catch kind 7/,
  );
  expectFailure(
    oneFunction([0x1c, 1, 0x55, END]).bytes,
    "WASMLET_ERR_WASM_MALFORMED",
    /unknown value type 0x55/,
  );
  // Sections out of order.
  expectFailure(
    wasm(functions(), types()),
    "WASMLET_ERR_WASM_MALFORMED",
    /section 1 \(type\) is out of order/,
  );
});

test("other bytes, components, and modules that import wasmlet.yield already are refused", () => {
  expectFailure(
    new TextEncoder().encode("#!/bin/sh\n"),
    "WASMLET_ERR_NOT_WASM",
    /not a WebAssembly/,
  );
  expectFailure(
    Uint8Array.from([0, 97, 115, 109, 0x0d, 0, 1, 0]),
    "WASMLET_ERR_WASM_COMPONENT",
    /component/,
  );
  const once = instrumentYieldPoints(wasm());
  expectFailure(
    once,
    "WASMLET_ERR_WASM_ALREADY_INSTRUMENTED",
    /already imports wasmlet\.yield .* in the import section/,
  );
});

// --- the real guests --------------------------------------------------------------------------

const ALL_GUESTS: GuestName[] = [
  "hello",
  "ticker",
  "reader",
  "memhog",
  "cpuloop",
  "hello-go",
  "cat",
  "sockets",
  "flood",
  "fsprobe",
  "watcher",
  "toolbox",
];

interface WasiRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

async function runWasi(
  bytes: Uint8Array,
  args: string[],
  env: Record<string, string>,
  yieldFn?: () => number,
): Promise<WasiRun> {
  const dir = mkdtempSync(join(tmpdir(), "wasmlet-yield-"));
  const stdout = openSync(join(dir, "stdout"), "w");
  const stderr = openSync(join(dir, "stderr"), "w");
  try {
    const wasi = new WASI({ version: "preview1", args, env, returnOnExit: true, stdout, stderr });
    const module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
    const instance = await WebAssembly.instantiate(module, {
      ...(wasi.getImportObject() as WebAssembly.Imports),
      ...(yieldFn ? { [YIELD_IMPORT.module]: { [YIELD_IMPORT.name]: yieldFn } } : {}),
    });
    const t0 = performance.now();
    const code = wasi.start(instance);
    const ms = performance.now() - t0;
    return {
      code,
      ms,
      stdout: readFileSync(join(dir, "stdout"), "utf8"),
      stderr: readFileSync(join(dir, "stderr"), "utf8"),
    };
  } finally {
    closeSync(stdout);
    closeSync(stderr);
    rmSync(dir, { recursive: true, force: true });
  }
}

test("every test guest is instrumented into a valid module", async () => {
  for (const name of ALL_GUESTS) {
    const bytes = new Uint8Array(readFileSync(await buildGuest(name)));
    const out = instrumentYieldPoints(bytes);
    assert.ok(WebAssembly.validate(out), `${name} validates after instrumentation`);
    const imports = WebAssembly.Module.imports(new WebAssembly.Module(out));
    assert.deepEqual(imports.at(-1), { module: "wasmlet", name: "yield", kind: "function" });
  }
});

test("guests that end on their own print the same with and without yield points", async () => {
  const cases: { name: GuestName; args: string[]; env: Record<string, string>; yields: boolean }[] =
    [
      {
        name: "hello",
        args: ["hello", "a b", "c"],
        env: { A: "1", EXIT_CODE: "3" },
        yields: false,
      },
      { name: "hello-go", args: ["hello-go", "x"], env: { B: "2" }, yields: true },
      { name: "cpuloop", args: ["cpuloop", "3"], env: {}, yields: true },
      { name: "toolbox", args: ["toolbox", "echo", "one", "two"], env: {}, yields: false },
      { name: "toolbox", args: ["toolbox", "fail", "4"], env: {}, yields: false },
    ];
  for (const { name, args, env, yields } of cases) {
    const bytes = new Uint8Array(readFileSync(await buildGuest(name)));
    const original = await runWasi(bytes, args, env);
    const counter = yieldCounter(1000);
    const instrumented = await runWasi(instrumentYieldPoints(bytes), args, env, counter.fn);
    assert.deepEqual(
      { ...instrumented, ms: 0 },
      { ...original, ms: 0 },
      `${name} ${args.join(" ")}: same exit code and output`,
    );
    assert.ok(original.stdout.length + original.stderr.length > 0, `${name} printed something`);
    if (yields) assert.ok(counter.calls > 0, `${name} called yield`);
    // 3 × 10^6 iterations of a loop that clang unrolls by two: about 1,500 yields of 1,000 fuel.
    if (name === "cpuloop")
      assert.ok(counter.calls >= 1000, `cpuloop yielded ${counter.calls} times`);
  }
});
