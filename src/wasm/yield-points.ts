// Yield points (DESIGN.md decision 3): rewrites a core module so that a guest computing without
// calling the host still gives its worker thread back regularly — wasmtime's epoch interruption,
// done by rewriting the binary. The rewritten module
// - imports `wasmlet.yield: [] -> [i32]` as its last function import;
// - defines a mutable i32 global, the fuel, as its last global;
// - at every function entry and every loop header decrements the fuel and, when it reaches zero,
//   calls the import and stores what it returns as the next fuel.
// The host's import decides the next fuel, may suspend the guest (JSPI: WebAssembly.Suspending)
// when its time slice is over, and may throw to stop it.
//
// Adding a function import shifts every defined function's index by one, so every place that names
// a function is rewritten: call, return_call and ref.func in code and in constant expressions,
// element segments, exports, the start function and the `name` section. Everything else is copied
// byte for byte (values that do not change are never decoded and re-encoded). Custom sections that
// describe code offsets (DWARF, source maps) are copied unchanged and are stale afterwards;
// `metadata.code.*` sections (branch hints), which engines read, are dropped.
//
// Instruction boundaries come from a full decoder: the core spec 2.0 plus multi-value, bulk
// memory, reference types, typed function references, tail calls, SIMD and relaxed SIMD,
// threads, exception handling (legacy and exnref), GC, memory64, multi-memory and extended
// constant expressions. Anything it does not know is refused with the opcode, the function and
// the byte offset: a module is never emitted half understood. Pure functions over bytes.
import { wasmKind } from "./binary.ts";
import { wasmError } from "./errors.ts";

/** The import the rewritten module calls when its fuel runs out: `() => nextFuel`. */
export const YIELD_IMPORT = Object.freeze({ module: "wasmlet", name: "yield" } as const);
/** The fuel a guest starts with (function entries plus loop iterations before the first yield). */
export const INITIAL_FUEL = 10_000;

/** What the runtime needs to know about instrumented modules. */
export const YIELD_POINTS = Object.freeze({
  yieldImport: YIELD_IMPORT,
  initialFuel: INITIAL_FUEL,
  /** Each function entry and each loop iteration costs one unit of fuel. */
  fuelPerCheck: 1,
});

export interface InstrumentOptions {
  /** The fuel global's initial value (default INITIAL_FUEL). */
  initialFuel?: number;
}

/**
 * Returns a copy of the core module `bytes` with yield points (see the top of this file). Throws
 * WASMLET_ERR_NOT_WASM / _WASM_COMPONENT for other bytes, WASMLET_ERR_WASM_MALFORMED for a binary
 * it cannot parse, WASMLET_ERR_WASM_UNKNOWN_OPCODE for an instruction it does not know and
 * WASMLET_ERR_WASM_ALREADY_INSTRUMENTED for a module that imports `wasmlet.yield` itself (it was
 * instrumented before, or it would bring its own yield points: refused, never passed through).
 * The result is a view on a buffer that may be a few percent longer than the module.
 */
export function instrumentYieldPoints(
  bytes: Uint8Array,
  options: InstrumentOptions = {},
): Uint8Array<ArrayBuffer> {
  const kind = wasmKind(bytes);
  if (kind === "component")
    throw wasmError("WASMLET_ERR_WASM_COMPONENT", "this is a WebAssembly component, not a module");
  if (kind !== "module") throw wasmError("WASMLET_ERR_NOT_WASM", "not a WebAssembly binary");
  const initialFuel = options.initialFuel ?? INITIAL_FUEL;
  if (!Number.isInteger(initialFuel) || initialFuel < 1 || initialFuel > 0x7fffffff)
    throw new RangeError(`initialFuel must be an integer in 1..2^31-1, not ${initialFuel}`);
  const instrumenter = new Instrumenter(bytes, initialFuel);
  try {
    return instrumenter.run();
  } catch (error) {
    if (!(error instanceof Failure)) throw error;
    const at = `at byte offset ${hex(error.offset)}`;
    throw wasmError(
      error.code,
      `cannot add yield points: ${error.reason} in ${instrumenter.where()} ${at}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Failures. Internal throws carry an offset and a reason; instrumentYieldPoints adds where.

type FailureCode =
  | "WASMLET_ERR_WASM_MALFORMED"
  | "WASMLET_ERR_WASM_UNKNOWN_OPCODE"
  | "WASMLET_ERR_WASM_ALREADY_INSTRUMENTED";

class Failure {
  readonly code: FailureCode;
  readonly offset: number;
  readonly reason: string;
  constructor(code: FailureCode, offset: number, reason: string) {
    this.code = code;
    this.offset = offset;
    this.reason = reason;
  }
}

const hex = (n: number) => `0x${n.toString(16).padStart(2, "0")}`;
const malformed = (offset: number, reason: string) =>
  new Failure("WASMLET_ERR_WASM_MALFORMED", offset, reason);
const truncated = (offset: number) =>
  malformed(offset, "unexpected end (truncated binary or wrong size)");
const unknownOpcode = (offset: number, opcode: string) =>
  new Failure("WASMLET_ERR_WASM_UNKNOWN_OPCODE", offset, `unknown opcode ${opcode}`);

// ---------------------------------------------------------------------------------------------
// Reading. Small functions over (bytes, position, end) that return the next position; values are
// left in `lebValue` so that reading allocates nothing.

let lebValue = 0;

/** Reads a u32 LEB128 into `lebValue`. */
function readU32(b: Uint8Array, p: number, end: number): number {
  if (p >= end) throw truncated(p);
  let byte = b[p]!;
  if (byte < 0x80) {
    lebValue = byte;
    return p + 1;
  }
  let result = 0;
  for (let shift = 0; ; shift += 7) {
    if (p >= end) throw truncated(p);
    byte = b[p++]!;
    if (shift === 28 && byte > 0x0f) throw malformed(p - 1, "u32 LEB128 integer too large");
    result = (result | ((byte & 0x7f) << shift)) >>> 0;
    if (byte < 0x80) {
      lebValue = result;
      return p;
    }
  }
}

/** Skips a LEB128 of at most `max` bytes (5 for 32-bit values and s33, 10 for 64-bit ones). */
function skipLeb(b: Uint8Array, p: number, end: number, max: number): number {
  const limit = p + max;
  for (;;) {
    if (p >= end) throw truncated(p);
    if (p >= limit) throw malformed(p, "LEB128 integer too long");
    if (b[p++]! < 0x80) return p;
  }
}

const skipU32 = (b: Uint8Array, p: number, end: number) => skipLeb(b, p, end, 5);

function skipBytes(p: number, n: number, end: number): number {
  if (p + n > end) throw truncated(end);
  return p + n;
}

/** A name: u32 length and UTF-8 bytes. */
function skipName(b: Uint8Array, p: number, end: number): number {
  p = readU32(b, p, end);
  return skipBytes(p, lebValue, end);
}

/** Single-byte value types (numbers, v128, reference type shorthands). */
const SIMPLE_VALTYPE = new Uint8Array(128);
/** Abstract heap types (func, extern, any, eq, i31, struct, array, exn and the bottom types). */
const ABSTRACT_HEAP = new Uint8Array(128);
for (const t of [0x70, 0x6f, 0x6e, 0x6d, 0x6c, 0x6b, 0x6a, 0x69, 0x71, 0x72, 0x73, 0x74]) {
  ABSTRACT_HEAP[t] = 1;
  SIMPLE_VALTYPE[t] = 1;
}
for (const t of [0x7f, 0x7e, 0x7d, 0x7c, 0x7b]) SIMPLE_VALTYPE[t] = 1;
const REF = 0x64;
const REF_NULL = 0x63;

function heapType(b: Uint8Array, p: number, end: number): number {
  if (p >= end) throw truncated(p);
  const t = b[p]!;
  if (t < 0x80) {
    // One byte: a negative s33 is an abstract heap type, a positive one a type index.
    if (t >= 0x40 && !ABSTRACT_HEAP[t]) throw malformed(p, `unknown heap type ${hex(t)}`);
    return p + 1;
  }
  return skipLeb(b, p, end, 5);
}

function valType(b: Uint8Array, p: number, end: number): number {
  if (p >= end) throw truncated(p);
  const t = b[p]!;
  if (t === REF || t === REF_NULL) return heapType(b, p + 1, end);
  if (t >= 0x80 || !SIMPLE_VALTYPE[t]) throw malformed(p, `unknown value type ${hex(t)}`);
  return p + 1;
}

/** A GC field's storage type: a value type or a packed i8 / i16. */
function storageType(b: Uint8Array, p: number, end: number): number {
  if (p < end && (b[p] === 0x78 || b[p] === 0x77)) return p + 1;
  return valType(b, p, end);
}

/** Reference types are value types (a table's element type, an element segment's type). */
const refType = valType;

/** A block type: empty (0x40), one value type, or an s33 type index (multi-value). */
function blockType(b: Uint8Array, p: number, end: number): number {
  if (p >= end) throw truncated(p);
  const t = b[p]!;
  if (t === 0x40) return p + 1;
  if (t === REF || t === REF_NULL) return heapType(b, p + 1, end);
  if (t < 0x40) return p + 1;
  if (t < 0x80) {
    if (!SIMPLE_VALTYPE[t]) throw malformed(p, `unknown block type ${hex(t)}`);
    return p + 1;
  }
  return skipLeb(b, p, end, 5);
}

/** Table and memory limits, including memory64/table64 (u64 bounds) and custom page sizes. */
function limits(b: Uint8Array, p: number, end: number): number {
  if (p >= end) throw truncated(p);
  const flags = b[p]!;
  if (flags > 0x0f) throw malformed(p, `unknown limits flags ${hex(flags)}`);
  p = skipLeb(b, p + 1, end, 10);
  if (flags & 0x01) p = skipLeb(b, p, end, 10);
  if (flags & 0x08) p = skipU32(b, p, end);
  return p;
}

function tableType(b: Uint8Array, p: number, end: number): number {
  return limits(b, refType(b, p, end), end);
}

/** A memory argument: alignment (bit 6 set: a memory index follows) and a u64 offset. */
function memarg(b: Uint8Array, p: number, end: number): number {
  p = readU32(b, p, end);
  if (lebValue & 0x40) p = skipU32(b, p, end);
  return skipLeb(b, p, end, 10);
}

// ---------------------------------------------------------------------------------------------
// Opcodes: what follows each one.

const K_UNKNOWN = 0;
const K_NONE = 1;
const K_U32 = 2;
const K_U32X2 = 3;
const K_BLOCK = 4;
const K_LOOP = 5;
const K_END = 6;
const K_DELEGATE = 7;
const K_FUNC = 8;
const K_BR_TABLE = 9;
const K_SELECT_T = 10;
const K_TRY_TABLE = 11;
const K_MEMARG = 12;
const K_LEB32 = 13;
const K_LEB64 = 14;
const K_BYTES4 = 15;
const K_BYTES8 = 16;
const K_HEAPTYPE = 17;
const K_PREFIX_GC = 18;
const K_PREFIX_MISC = 19;
const K_PREFIX_SIMD = 20;
const K_PREFIX_ATOMIC = 21;
// Only after a prefix:
const K_BYTES16 = 22;
const K_LANE = 23;
const K_MEMARG_LANE = 24;
const K_BR_ON_CAST = 25;
const K_FENCE = 26;

function table(size: number, entries: [number, number, number][]): Uint8Array {
  const t = new Uint8Array(size);
  for (const [from, to, kind] of entries) t.fill(kind, from, to + 1);
  return t;
}

const OPCODES = table(256, [
  [0x00, 0x01, K_NONE], // unreachable, nop
  [0x02, 0x02, K_BLOCK],
  [0x03, 0x03, K_LOOP],
  [0x04, 0x04, K_BLOCK], // if
  [0x05, 0x05, K_NONE], // else
  [0x06, 0x06, K_BLOCK], // try (legacy exceptions)
  [0x07, 0x09, K_U32], // catch tag, throw tag, rethrow label
  [0x0a, 0x0a, K_NONE], // throw_ref
  [0x0b, 0x0b, K_END],
  [0x0c, 0x0d, K_U32], // br, br_if
  [0x0e, 0x0e, K_BR_TABLE],
  [0x0f, 0x0f, K_NONE], // return
  [0x10, 0x10, K_FUNC], // call
  [0x11, 0x11, K_U32X2], // call_indirect type table
  [0x12, 0x12, K_FUNC], // return_call
  [0x13, 0x13, K_U32X2], // return_call_indirect
  [0x14, 0x15, K_U32], // call_ref, return_call_ref
  [0x18, 0x18, K_DELEGATE],
  [0x19, 0x19, K_NONE], // catch_all
  [0x1a, 0x1b, K_NONE], // drop, select
  [0x1c, 0x1c, K_SELECT_T],
  [0x1f, 0x1f, K_TRY_TABLE],
  [0x20, 0x26, K_U32], // local.get/set/tee, global.get/set, table.get/set
  [0x28, 0x3e, K_MEMARG], // loads and stores
  [0x3f, 0x40, K_U32], // memory.size, memory.grow (memory index)
  [0x41, 0x41, K_LEB32],
  [0x42, 0x42, K_LEB64],
  [0x43, 0x43, K_BYTES4],
  [0x44, 0x44, K_BYTES8],
  [0x45, 0xc4, K_NONE], // numeric instructions, sign extension
  [0xd0, 0xd0, K_HEAPTYPE], // ref.null
  [0xd1, 0xd1, K_NONE], // ref.is_null
  [0xd2, 0xd2, K_FUNC], // ref.func
  [0xd3, 0xd4, K_NONE], // ref.eq, ref.as_non_null
  [0xd5, 0xd6, K_U32], // br_on_null, br_on_non_null
  [0xfb, 0xfb, K_PREFIX_GC],
  [0xfc, 0xfc, K_PREFIX_MISC],
  [0xfd, 0xfd, K_PREFIX_SIMD],
  [0xfe, 0xfe, K_PREFIX_ATOMIC],
]);

const GC_OPCODES = table(31, [
  [0, 1, K_U32], // struct.new(_default) type
  [2, 5, K_U32X2], // struct.get(_s/_u), struct.set type field
  [6, 7, K_U32], // array.new(_default) type
  [8, 10, K_U32X2], // array.new_fixed type n, array.new_data type data, array.new_elem type elem
  [11, 14, K_U32], // array.get(_s/_u), array.set type
  [15, 15, K_NONE], // array.len
  [16, 16, K_U32], // array.fill type
  [17, 19, K_U32X2], // array.copy type type, array.init_data, array.init_elem
  [20, 23, K_HEAPTYPE], // ref.test, ref.test null, ref.cast, ref.cast null
  [24, 25, K_BR_ON_CAST], // br_on_cast(_fail) flags label type type
  [26, 30, K_NONE], // any.convert_extern, extern.convert_any, ref.i31, i31.get_s/u
]);

const MISC_OPCODES = table(18, [
  [0, 7, K_NONE], // trunc_sat
  [8, 8, K_U32X2], // memory.init data memory
  [9, 9, K_U32], // data.drop
  [10, 10, K_U32X2], // memory.copy memory memory
  [11, 11, K_U32], // memory.fill memory
  [12, 12, K_U32X2], // table.init elem table
  [13, 13, K_U32], // elem.drop
  [14, 14, K_U32X2], // table.copy table table
  [15, 17, K_U32], // table.grow, table.size, table.fill
]);

const SIMD_OPCODES = table(0x114, [
  [0x00, 0x0b, K_MEMARG], // v128.load*, v128.store
  [0x0c, 0x0d, K_BYTES16], // v128.const, i8x16.shuffle
  [0x0e, 0x14, K_NONE], // swizzle, splats
  [0x15, 0x22, K_LANE], // extract_lane, replace_lane
  [0x23, 0x53, K_NONE],
  [0x54, 0x5b, K_MEMARG_LANE], // v128.load*_lane, v128.store*_lane
  [0x5c, 0x5d, K_MEMARG], // v128.load32_zero, v128.load64_zero
  [0x5e, 0xff, K_NONE],
  [0x100, 0x113, K_NONE], // relaxed SIMD
]);

const ATOMIC_OPCODES = table(0x4f, [
  [0x00, 0x02, K_MEMARG], // memory.atomic.notify, wait32, wait64
  [0x03, 0x03, K_FENCE], // atomic.fence
  [0x10, 0x4e, K_MEMARG], // atomic loads, stores, read-modify-writes, cmpxchg
]);

const PREFIX_NAMES: Record<number, string> = { 251: "GC", 252: "misc", 253: "SIMD", 254: "atomic" };

// ---------------------------------------------------------------------------------------------
// Writing: a growable byte buffer.

class Sink {
  buf: Uint8Array<ArrayBuffer>;
  len = 0;
  constructor(capacity: number) {
    this.buf = new Uint8Array(capacity);
  }
  room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let capacity = Math.ceil(this.buf.length * 1.5);
    while (capacity < this.len + n) capacity *= 2;
    const next = new Uint8Array(capacity);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
  byte(v: number): void {
    this.room(1);
    this.buf[this.len++] = v;
  }
  /** Copies src[start, end). */
  copy(src: Uint8Array, start: number, end: number): void {
    const n = end - start;
    if (n <= 0) return;
    this.room(n);
    const buf = this.buf;
    if (n < 256) {
      let o = this.len;
      for (let i = start; i < end; i++) buf[o++] = src[i]!;
    } else {
      buf.set(src.subarray(start, end), this.len);
    }
    this.len += n;
  }
  u32(v: number): void {
    this.room(5);
    const buf = this.buf;
    do {
      let b = v & 0x7f;
      v >>>= 7;
      if (v !== 0) b |= 0x80;
      buf[this.len++] = b;
    } while (v !== 0);
  }
  /** Reserves room for a size written by fill(mark) once the content after it is complete. */
  reserve(): number {
    this.room(5);
    const mark = this.len;
    this.len += 5;
    return mark;
  }
  fill(mark: number): void {
    const start = mark + 5;
    const size = this.len - start;
    const saved = this.len;
    this.len = mark;
    this.u32(size);
    const width = this.len - mark;
    if (width < 5) this.buf.copyWithin(mark + width, start, saved);
    this.len = saved - (5 - width);
  }
}

function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let b = value & 0x7f;
    value >>>= 7;
    if (value !== 0) b |= 0x80;
    out.push(b);
  } while (value !== 0);
  return out;
}

function sleb(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = value & 0x7f;
    value >>= 7;
    const done = (value === 0 && (b & 0x40) === 0) || (value === -1 && (b & 0x40) !== 0);
    out.push(done ? b : b | 0x80);
    if (done) return out;
  }
}

// ---------------------------------------------------------------------------------------------
// The rewrite.

const SECTION_CUSTOM = 0;
const SECTION_TYPE = 1;
const SECTION_IMPORT = 2;
const SECTION_TABLE = 4;
const SECTION_GLOBAL = 6;
const SECTION_EXPORT = 7;
const SECTION_START = 8;
const SECTION_ELEMENT = 9;
const SECTION_CODE = 10;
/** Position of each known section id in the required order (tags sit between memory and global). */
const SECTION_RANK: Record<number, number> = {
  1: 1,
  2: 2,
  3: 3,
  4: 4,
  5: 5,
  13: 6,
  6: 7,
  7: 8,
  8: 9,
  9: 10,
  12: 11,
  10: 12,
  11: 13,
};
const SECTION_NAMES: Record<number, string> = {
  0: "custom",
  1: "type",
  2: "import",
  3: "function",
  4: "table",
  5: "memory",
  6: "global",
  7: "export",
  8: "start",
  9: "element",
  10: "code",
  11: "data",
  12: "data count",
  13: "tag",
};

interface Section {
  id: number;
  /** Offset of the id byte. */
  start: number;
  contentStart: number;
  end: number;
}

const utf8 = new TextEncoder();
const YIELD_MODULE_BYTES = utf8.encode(YIELD_IMPORT.module);
const YIELD_NAME_BYTES = utf8.encode(YIELD_IMPORT.name);
/** [] -> [i32] */
const YIELD_TYPE = [0x60, 0x00, 0x01, 0x7f];

function nameIs(b: Uint8Array, p: number, end: number, expected: Uint8Array): boolean {
  const afterLength = readU32(b, p, end);
  if (lebValue !== expected.length) return false;
  for (let i = 0; i < expected.length; i++) if (b[afterLength + i] !== expected[i]) return false;
  return true;
}

class Instrumenter {
  readonly b: Uint8Array;
  readonly out: Sink;
  readonly initialFuel: number;
  /** Function imports in the original module: the first defined function's index. */
  funcImports = 0;
  globalImports = 0;
  definedGlobals = 0;
  typeCount = 0;
  /** An existing `[] -> [i32]` type usable for the import, or -1 to append one. */
  reusableType = -1;
  yieldType = 0;
  /** The yield points' code, built once the indices are known. */
  check: Uint8Array = new Uint8Array(0);
  /** Input bytes before this offset have been written (or deliberately left out). */
  from = 0;
  /**
   * Function indices rewritten in place, applied by flush() once their bytes are copied: most
   * shifted indices keep their LEB128 length, so the code is copied in few large pieces.
   */
  patchAt: number[] = [];
  patchValue: number[] = [];
  patchLength: number[] = [];
  patchCount = 0;
  // Where we are, for error messages.
  section = -1;
  sectionName = "";
  func = -1;

  constructor(bytes: Uint8Array, initialFuel: number) {
    this.b = bytes;
    this.initialFuel = initialFuel;
    // Real modules grow by 1-3 %: one allocation, touched once (fresh pages are not free).
    this.out = new Sink(Math.ceil(bytes.length * 1.0625) + 65536);
  }

  where(): string {
    if (this.func >= 0) return `function ${this.func} (code section)`;
    if (this.section === SECTION_CUSTOM) return `custom section "${this.sectionName}"`;
    if (this.section >= 0) return `the ${SECTION_NAMES[this.section] ?? "unknown"} section`;
    return "the module header";
  }

  run(): Uint8Array<ArrayBuffer> {
    const b = this.b;
    const out = this.out;
    const sections = this.sections();
    for (const s of sections) {
      this.section = s.id;
      if (s.id === SECTION_TYPE) this.scanTypes(s);
      else if (s.id === SECTION_IMPORT) this.scanImports(s);
      else if (s.id === SECTION_GLOBAL) {
        readU32(b, s.contentStart, s.end);
        this.definedGlobals = lebValue;
      }
    }
    this.section = -1;
    this.yieldType = this.reusableType >= 0 ? this.reusableType : this.typeCount;
    const fuel = uleb(this.globalImports + this.definedGlobals);
    const yieldFunc = uleb(this.funcImports);
    // fuel -= 1; if (fuel <= 0) fuel = yield();
    this.check = Uint8Array.from([
      ...[0x23, ...fuel, 0x41, 0x01, 0x6b, 0x24, ...fuel], // global.get 1 i32.sub global.set
      ...[0x23, ...fuel, 0x41, 0x00, 0x4c], // global.get 0 i32.le_s
      ...[0x04, 0x40, 0x10, ...yieldFunc, 0x24, ...fuel, 0x0b], // if call global.set end
    ]);

    out.copy(b, 0, 8);
    const missing = new Set([SECTION_TYPE, SECTION_IMPORT, SECTION_GLOBAL]);
    for (const s of sections) missing.delete(s.id);
    const emitMissingBefore = (rank: number) => {
      for (const id of [SECTION_TYPE, SECTION_IMPORT, SECTION_GLOBAL]) {
        if (missing.has(id) && SECTION_RANK[id]! < rank) {
          missing.delete(id);
          this.emitNewSection(id);
        }
      }
    };
    for (const s of sections) {
      this.section = s.id;
      if (s.id !== SECTION_CUSTOM) emitMissingBefore(SECTION_RANK[s.id]!);
      switch (s.id) {
        case SECTION_CUSTOM:
          this.custom(s);
          break;
        case SECTION_TYPE:
          this.types(s);
          break;
        case SECTION_IMPORT:
          this.imports(s);
          break;
        case SECTION_TABLE:
          this.rewrite(s, (p, end) => this.tables(p, end));
          break;
        case SECTION_GLOBAL:
          this.rewrite(s, (p, end) => this.globals(p, end));
          break;
        case SECTION_EXPORT:
          this.rewrite(s, (p, end) => this.exports(p, end));
          break;
        case SECTION_START:
          this.rewrite(s, (p, end) => this.funcIndex(p, end));
          break;
        case SECTION_ELEMENT:
          this.rewrite(s, (p, end) => this.elements(p, end));
          break;
        case SECTION_CODE:
          this.rewrite(s, (p, end) => this.code(p, end));
          break;
        default:
          out.copy(b, s.start, s.end);
      }
    }
    this.section = -1;
    emitMissingBefore(Number.POSITIVE_INFINITY);
    // A view, not a copy: the buffer has a few percent of slack at its end.
    return out.buf.subarray(0, out.len);
  }

  sections(): Section[] {
    const b = this.b;
    const end = b.length;
    const list: Section[] = [];
    let lastRank = 0;
    let p = 8;
    while (p < end) {
      const start = p;
      const id = b[p++]!;
      this.section = id;
      this.sectionName = "";
      const rank = SECTION_RANK[id];
      if (id !== SECTION_CUSTOM) {
        if (rank === undefined) throw malformed(start, `unknown section id ${id}`);
        if (rank <= lastRank)
          throw malformed(
            start,
            `section ${id} (${SECTION_NAMES[id]}) is out of order or repeated`,
          );
        lastRank = rank;
      }
      p = readU32(b, p, end);
      const contentStart = p;
      p = skipBytes(p, lebValue, end);
      list.push({ id, start, contentStart, end: p });
    }
    return list;
  }

  /** Writes section `s` with `body` rewriting its content (which it must consume exactly). */
  rewrite(s: Section, body: (p: number, end: number) => number): void {
    const out = this.out;
    out.byte(s.id);
    const mark = out.reserve();
    this.from = s.contentStart;
    const p = body(s.contentStart, s.end);
    if (p !== s.end) throw malformed(p, `${s.end - p} unexpected bytes at the end of the section`);
    this.flush(s.end);
    out.fill(mark);
  }

  /** Copies the input up to `to` and applies the pending in-place patches. */
  flush(to: number): void {
    const out = this.out;
    const shift = out.len - this.from;
    out.copy(this.b, this.from, to);
    for (let i = 0; i < this.patchCount; i++) {
      // The same length as the original LEB128 (which may have been padded).
      let at = shift + this.patchAt[i]!;
      let value = this.patchValue[i]!;
      for (let n = this.patchLength[i]!; n > 1; n--) {
        out.buf[at++] = (value & 0x7f) | 0x80;
        value >>>= 7;
      }
      out.buf[at] = value;
    }
    this.patchCount = 0;
    this.from = to;
  }

  /** Replaces the u32 LEB128 at input [start, end) with `value`. */
  replaceU32(start: number, end: number, value: number): void {
    const length = end - start;
    if (length >= 5 || value < 2 ** (7 * length)) {
      const i = this.patchCount++;
      this.patchAt[i] = start;
      this.patchValue[i] = value;
      this.patchLength[i] = length;
    } else {
      this.flush(start);
      this.out.u32(value);
      this.from = end;
    }
  }

  /** A function index: shifted by one when it names a defined function. */
  funcIndex(p: number, end: number): number {
    const at = p;
    p = readU32(this.b, p, end);
    if (lebValue >= this.funcImports) this.replaceU32(at, p, lebValue + 1);
    return p;
  }

  /** `vec(x)` with `item` reading each x. */
  vec(p: number, end: number, item: (p: number, end: number) => number): number {
    p = readU32(this.b, p, end);
    for (let n = lebValue; n > 0; n--) p = item(p, end);
    return p;
  }

  emitNewSection(id: number): void {
    const out = this.out;
    out.byte(id);
    const mark = out.reserve();
    out.byte(1);
    if (id === SECTION_TYPE) {
      for (const x of YIELD_TYPE) out.byte(x);
    } else if (id === SECTION_IMPORT) {
      this.yieldImportEntry();
    } else {
      this.fuelGlobal();
    }
    out.fill(mark);
  }

  yieldImportEntry(): void {
    const out = this.out;
    out.u32(YIELD_MODULE_BYTES.length);
    out.copy(YIELD_MODULE_BYTES, 0, YIELD_MODULE_BYTES.length);
    out.u32(YIELD_NAME_BYTES.length);
    out.copy(YIELD_NAME_BYTES, 0, YIELD_NAME_BYTES.length);
    out.byte(0x00);
    out.u32(this.yieldType);
  }

  fuelGlobal(): void {
    for (const x of [0x7f, 0x01, 0x41, ...sleb(this.initialFuel), 0x0b]) this.out.byte(x);
  }

  // --- type section -----------------------------------------------------------------------

  scanTypes(s: Section): void {
    const b = this.b;
    const end = s.end;
    let p = readU32(b, s.contentStart, end);
    for (let n = lebValue; n > 0; n--) {
      const entry = p;
      if (p < end && b[p] === 0x4e) {
        // A recursion group: vec(subtype).
        p = readU32(b, p + 1, end);
        const count = lebValue;
        for (let i = 0; i < count; i++) p = this.subType(p, end);
        this.typeCount += count;
        continue;
      }
      p = this.subType(p, end);
      if (
        this.reusableType < 0 &&
        p - entry === YIELD_TYPE.length &&
        YIELD_TYPE.every((x, i) => b[entry + i] === x)
      )
        this.reusableType = this.typeCount;
      this.typeCount++;
    }
    if (p !== end) throw malformed(p, `${end - p} unexpected bytes at the end of the section`);
  }

  subType(p: number, end: number): number {
    const b = this.b;
    if (p >= end) throw truncated(p);
    if (b[p] === 0x50 || b[p] === 0x4f) {
      // sub / sub final: vec(supertype index), then the composite type.
      p = readU32(b, p + 1, end);
      for (let n = lebValue; n > 0; n--) p = skipU32(b, p, end);
    }
    if (p >= end) throw truncated(p);
    const form = b[p]!;
    p++;
    if (form === 0x60) {
      for (let list = 0; list < 2; list++) {
        p = readU32(b, p, end);
        for (let n = lebValue; n > 0; n--) p = valType(b, p, end);
      }
      return p;
    }
    if (form === 0x5f) {
      p = readU32(b, p, end);
      for (let n = lebValue; n > 0; n--) p = skipBytes(storageType(b, p, end), 1, end);
      return p;
    }
    if (form === 0x5e) return skipBytes(storageType(b, p, end), 1, end);
    throw malformed(p - 1, `unknown type form ${hex(form)}`);
  }

  types(s: Section): void {
    const out = this.out;
    if (this.reusableType >= 0) {
      out.copy(this.b, s.start, s.end);
      return;
    }
    out.byte(s.id);
    const mark = out.reserve();
    const p = readU32(this.b, s.contentStart, s.end);
    out.u32(lebValue + 1);
    out.copy(this.b, p, s.end);
    for (const x of YIELD_TYPE) out.byte(x);
    out.fill(mark);
  }

  // --- import section ---------------------------------------------------------------------

  scanImports(s: Section): void {
    const b = this.b;
    const end = s.end;
    let p = readU32(b, s.contentStart, end);
    for (let n = lebValue; n > 0; n--) {
      const entry = p;
      const isYield = nameIs(b, p, end, YIELD_MODULE_BYTES);
      p = skipName(b, p, end);
      const isYieldName = nameIs(b, p, end, YIELD_NAME_BYTES);
      p = skipName(b, p, end);
      if (isYield && isYieldName) {
        throw new Failure(
          "WASMLET_ERR_WASM_ALREADY_INSTRUMENTED",
          entry,
          `the module already imports ${YIELD_IMPORT.module}.${YIELD_IMPORT.name} (it has yield points already, or brings its own)`,
        );
      }
      if (p >= end) throw truncated(p);
      const kind = b[p++]!;
      if (kind === 0) {
        p = skipU32(b, p, end);
        this.funcImports++;
      } else if (kind === 1) p = tableType(b, p, end);
      else if (kind === 2) p = limits(b, p, end);
      else if (kind === 3) {
        p = skipBytes(valType(b, p, end), 1, end);
        this.globalImports++;
      } else if (kind === 4) p = skipU32(b, skipBytes(p, 1, end), end);
      else throw malformed(p - 1, `unknown import kind ${kind}`);
    }
    if (p !== end) throw malformed(p, `${end - p} unexpected bytes at the end of the section`);
  }

  imports(s: Section): void {
    const out = this.out;
    out.byte(s.id);
    const mark = out.reserve();
    const p = readU32(this.b, s.contentStart, s.end);
    out.u32(lebValue + 1);
    out.copy(this.b, p, s.end);
    this.yieldImportEntry();
    out.fill(mark);
  }

  // --- sections that name functions -------------------------------------------------------

  tables(p: number, end: number): number {
    const b = this.b;
    return this.vec(p, end, (p, end) => {
      if (p < end && b[p] === 0x40) {
        // A table with an initializer expression: 0x40 0x00 tabletype expr.
        if (b[p + 1] !== 0x00) throw malformed(p + 1, "expected 0x00 after 0x40 in a table");
        return this.expr(tableType(b, p + 2, end), end, false);
      }
      return tableType(b, p, end);
    });
  }

  globals(p: number, end: number): number {
    const b = this.b;
    const countAt = p;
    p = readU32(b, p, end);
    this.flush(countAt);
    this.out.u32(lebValue + 1);
    this.from = p;
    for (let n = lebValue; n > 0; n--) {
      p = skipBytes(valType(b, p, end), 1, end);
      p = this.expr(p, end, false);
    }
    if (p !== end) throw malformed(p, `${end - p} unexpected bytes at the end of the section`);
    this.flush(end);
    this.fuelGlobal();
    return p;
  }

  exports(p: number, end: number): number {
    const b = this.b;
    return this.vec(p, end, (p, end) => {
      p = skipName(b, p, end);
      if (p >= end) throw truncated(p);
      const kind = b[p++]!;
      if (kind === 0) return this.funcIndex(p, end);
      if (kind > 4) throw malformed(p - 1, `unknown export kind ${kind}`);
      return skipU32(b, p, end);
    });
  }

  elements(p: number, end: number): number {
    const b = this.b;
    return this.vec(p, end, (p, end) => {
      const at = p;
      p = readU32(b, p, end);
      const flags = lebValue;
      if (flags > 7) throw malformed(at, `unknown element segment flags ${flags}`);
      if ((flags & 1) === 0) {
        // Active: an explicit table index (flags 2, 6), then the offset expression.
        if (flags & 2) p = skipU32(b, p, end);
        p = this.expr(p, end, false);
      }
      const usesExpressions = (flags & 4) !== 0;
      if (flags & 3) {
        if (usesExpressions) p = refType(b, p, end);
        else {
          if (p >= end) throw truncated(p);
          if (b[p] !== 0x00) throw malformed(p, `unknown element kind ${hex(b[p]!)}`);
          p++;
        }
      }
      return usesExpressions
        ? this.vec(p, end, (p, end) => this.expr(p, end, false))
        : this.vec(p, end, (p, end) => this.funcIndex(p, end));
    });
  }

  code(p: number, end: number): number {
    const b = this.b;
    const out = this.out;
    p = readU32(b, p, end);
    const count = lebValue;
    for (let i = 0; i < count; i++) {
      this.func = this.funcImports + i;
      const sizeAt = p;
      p = readU32(b, p, end);
      const bodyEnd = p + lebValue;
      if (bodyEnd > end) throw truncated(end);
      this.flush(sizeAt);
      const mark = out.reserve();
      this.from = p;
      // Locals: vec(count valtype).
      p = readU32(b, p, bodyEnd);
      for (let n = lebValue; n > 0; n--) p = valType(b, skipU32(b, p, bodyEnd), bodyEnd);
      this.flush(p);
      out.copy(this.check, 0, this.check.length);
      p = this.expr(p, bodyEnd, true);
      if (p !== bodyEnd)
        throw malformed(p, `${bodyEnd - p} bytes after the end of the function body`);
      out.fill(mark);
    }
    this.func = -1;
    return p;
  }

  // --- custom sections --------------------------------------------------------------------

  custom(s: Section): void {
    const b = this.b;
    this.sectionName = "";
    const nameEnd = skipName(b, s.contentStart, s.end);
    const name = new TextDecoder().decode(b.subarray(nameEnd - lebValue, nameEnd));
    this.sectionName = name;
    // Branch hints and other per-instruction metadata hold code offsets that no longer hold.
    if (name.startsWith("metadata.code.")) return;
    if (name !== "name") {
      this.out.copy(b, s.start, s.end);
      return;
    }
    const saved = this.out.len;
    try {
      this.rewrite(s, (_, end) => this.names(nameEnd, end));
    } catch (error) {
      if (!(error instanceof Failure)) throw error;
      // A malformed name section is dropped (engines ignore it too): names are debugging aid.
      this.out.len = saved;
      this.patchCount = 0;
    }
  }

  /** The name section's subsections: function (1), local (2) and label (3) names are rewritten. */
  names(p: number, end: number): number {
    const b = this.b;
    const out = this.out;
    while (p < end) {
      const id = b[p++]!;
      const sizeAt = p;
      p = readU32(b, p, end);
      const subEnd = skipBytes(p, lebValue, end);
      if (id === 1 || id === 2 || id === 3) {
        this.flush(sizeAt);
        const mark = out.reserve();
        this.from = p;
        const q = this.vec(p, subEnd, (p, end) => {
          p = this.funcIndex(p, end);
          if (id === 1) return skipName(b, p, end);
          return this.vec(p, end, (p, end) => skipName(b, skipU32(b, p, end), end));
        });
        if (q !== subEnd) throw malformed(q, "name subsection has bytes after its entries");
        this.flush(subEnd);
        out.fill(mark);
      }
      p = subEnd;
    }
    return p;
  }

  // --- instructions -----------------------------------------------------------------------

  /**
   * Copies an expression from p through the `end` that closes it, shifting function indices and,
   * when `instrument` is set, adding a yield check after every loop's block type. Returns the
   * position after that `end`.
   */
  expr(p: number, end: number, instrument: boolean): number {
    const b = this.b;
    const out = this.out;
    const funcImports = this.funcImports;
    const check = this.check;
    let depth = 0;
    for (;;) {
      if (p >= end) throw truncated(p);
      const at = p;
      const op = b[p++]!;
      switch (OPCODES[op]) {
        case K_NONE:
          break;
        case K_U32:
          p = skipU32(b, p, end);
          break;
        case K_U32X2:
          p = skipU32(b, skipU32(b, p, end), end);
          break;
        case K_BLOCK:
          p = blockType(b, p, end);
          depth++;
          break;
        case K_LOOP:
          p = blockType(b, p, end);
          depth++;
          if (instrument) {
            this.flush(p);
            out.copy(check, 0, check.length);
          }
          break;
        case K_END:
          if (depth === 0) {
            this.flush(p);
            return p;
          }
          depth--;
          break;
        case K_DELEGATE:
          // `delegate` closes a try block in place of its `end`.
          if (depth === 0) throw malformed(at, "delegate outside a try block");
          p = skipU32(b, p, end);
          depth--;
          break;
        case K_FUNC:
          p = readU32(b, at + 1, end);
          if (lebValue >= funcImports) this.replaceU32(at + 1, p, lebValue + 1);
          break;
        case K_BR_TABLE:
          p = readU32(b, p, end);
          for (let n = lebValue; n >= 0; n--) p = skipU32(b, p, end);
          break;
        case K_SELECT_T:
          p = readU32(b, p, end);
          for (let n = lebValue; n > 0; n--) p = valType(b, p, end);
          break;
        case K_TRY_TABLE:
          p = readU32(b, blockType(b, p, end), end);
          for (let n = lebValue; n > 0; n--) {
            if (p >= end) throw truncated(p);
            const clause = b[p++]!;
            // catch tag label, catch_ref tag label, catch_all label, catch_all_ref label
            if (clause > 3) throw malformed(p - 1, `unknown try_table catch kind ${clause}`);
            if (clause < 2) p = skipU32(b, p, end);
            p = skipU32(b, p, end);
          }
          depth++;
          break;
        case K_MEMARG:
          p = memarg(b, p, end);
          break;
        case K_LEB32:
          p = skipLeb(b, p, end, 5);
          break;
        case K_LEB64:
          p = skipLeb(b, p, end, 10);
          break;
        case K_BYTES4:
          p = skipBytes(p, 4, end);
          break;
        case K_BYTES8:
          p = skipBytes(p, 8, end);
          break;
        case K_HEAPTYPE:
          p = heapType(b, p, end);
          break;
        case K_PREFIX_GC:
        case K_PREFIX_MISC:
        case K_PREFIX_SIMD:
        case K_PREFIX_ATOMIC:
          p = prefixed(b, p, end, at);
          break;
        default:
          throw unknownOpcode(at, hex(op));
      }
    }
  }
}

/** The immediates of a prefixed instruction (p is after the prefix byte at `at`). */
function prefixed(b: Uint8Array, p: number, end: number, at: number): number {
  const prefix = b[at]!;
  p = readU32(b, p, end);
  const sub = lebValue;
  const kinds =
    prefix === 0xfb
      ? GC_OPCODES
      : prefix === 0xfc
        ? MISC_OPCODES
        : prefix === 0xfd
          ? SIMD_OPCODES
          : ATOMIC_OPCODES;
  const kind = sub < kinds.length ? kinds[sub]! : K_UNKNOWN;
  switch (kind) {
    case K_NONE:
      return p;
    case K_U32:
      return skipU32(b, p, end);
    case K_U32X2:
      return skipU32(b, skipU32(b, p, end), end);
    case K_MEMARG:
      return memarg(b, p, end);
    case K_MEMARG_LANE:
      return skipBytes(memarg(b, p, end), 1, end);
    case K_LANE:
      return skipBytes(p, 1, end);
    case K_BYTES16:
      return skipBytes(p, 16, end);
    case K_HEAPTYPE:
      return heapType(b, p, end);
    case K_BR_ON_CAST: {
      if (p >= end) throw truncated(p);
      if (b[p]! > 3) throw malformed(p, `unknown br_on_cast flags ${hex(b[p]!)}`);
      p = skipU32(b, p + 1, end);
      return heapType(b, heapType(b, p, end), end);
    }
    case K_FENCE:
      if (p >= end) throw truncated(p);
      if (b[p] !== 0x00) throw malformed(p, `atomic.fence takes a zero byte, not ${hex(b[p]!)}`);
      return p + 1;
    default:
      throw unknownOpcode(at, `${hex(prefix)} ${hex(sub)} (${PREFIX_NAMES[prefix]} prefix)`);
  }
}
