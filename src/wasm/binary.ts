// Just enough of the WebAssembly binary format for wasmlet: tell modules from components and
// from things that are not wasm, and rewrite a module's memory limits (the memory cap) without
// compiling it. Pure functions over bytes; no Kubernetes, no runtime.
import { wasmError } from "./errors.ts";

const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const SECTION_IMPORT = 2;
const SECTION_MEMORY = 5;
const IMPORT_KIND_FUNCTION = 0;
const IMPORT_KIND_TABLE = 1;
const IMPORT_KIND_MEMORY = 2;
const IMPORT_KIND_GLOBAL = 3;
const IMPORT_KIND_TAG = 4;
/** Limits flags: a maximum follows the minimum. */
const LIMITS_HAS_MAX = 0x01;
const LIMITS_SHARED = 0x02;
/** memory64 / table64: the minimum and maximum are u64 and the address type is i64. */
const LIMITS_64 = 0x04;
/** The custom-page-sizes proposal: a page-size exponent follows the maximum. */
const LIMITS_CUSTOM_PAGE_SIZE = 0x08;
const MEMORY_LIMITS_KNOWN_FLAGS =
  LIMITS_HAS_MAX | LIMITS_SHARED | LIMITS_64 | LIMITS_CUSTOM_PAGE_SIZE;
const TABLE_LIMITS_KNOWN_FLAGS = LIMITS_HAS_MAX | LIMITS_SHARED | LIMITS_64;
export const WASM_PAGE_BYTES = 65536;
/** wasm32's 4 GiB ceiling in pages. */
const MAX_PAGES_32 = 65536;

export type WasmKind = "module" | "component" | "not-wasm";

export function wasmKind(bytes: Uint8Array): WasmKind {
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) return "not-wasm";
  // Core modules are version 1 layer 0; components set the layer field (bytes 6-7) to 1.
  if (bytes[4] === 1 && bytes[5] === 0 && bytes[6] === 0 && bytes[7] === 0) return "module";
  if (bytes[6] === 1 && bytes[7] === 0) return "component";
  return "not-wasm";
}

export interface MemoryLimits {
  minPages: number;
  maxPages: number | undefined;
  /** Bytes per page: 65536 unless the module uses the custom-page-sizes proposal. */
  pageBytes: number;
  shared: boolean;
  memory64: boolean;
  imported: boolean;
}

const malformed = (message: string) => wasmError("WASMLET_ERR_WASM_MALFORMED", message);
const hex = (n: number) => `0x${n.toString(16).padStart(2, "0")}`;

class Reader {
  offset: number;
  readonly bytes: Uint8Array;
  constructor(bytes: Uint8Array, offset = 0) {
    this.bytes = bytes;
    this.offset = offset;
  }
  byte(): number {
    if (this.offset >= this.bytes.length) throw malformed("unexpected end of wasm binary");
    return this.bytes[this.offset++]!;
  }
  /** An unsigned LEB128 integer (u32 or u64; exact up to 2^53, which every valid limit is). */
  uleb(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 63) throw malformed("LEB128 integer too long");
    }
  }
  /** Skips a signed LEB128 integer of at most `bits` bits. */
  skipSleb(bits: number): void {
    for (let read = 0; ; read += 7) {
      if (read >= bits) throw malformed("LEB128 integer too long");
      if ((this.byte() & 0x80) === 0) return;
    }
  }
  name(): string {
    const length = this.uleb();
    const start = this.offset;
    this.skip(length);
    return new TextDecoder().decode(this.bytes.subarray(start, start + length));
  }
  skip(n: number): void {
    if (this.offset + n > this.bytes.length) throw malformed("unexpected end of wasm binary");
    this.offset += n;
  }
  /**
   * A value or reference type: one byte, or (with GC) `ref`/`ref null` and a heap type, which may
   * carry the `exact` or `shared` prefix before an abstract heap type or a type index (s33).
   */
  valType(): void {
    const b = this.byte();
    if (b === 0x63 || b === 0x64) {
      let prefix = this.bytes[this.offset];
      while (prefix === 0x62 || prefix === 0x65) {
        this.offset++;
        prefix = this.bytes[this.offset];
      }
      this.skipSleb(33);
    } else if (b < 0x40 || b > 0x7f) {
      throw malformed(`unknown value type ${hex(b)}`);
    }
  }
  tableLimits(): void {
    const flags = this.byte();
    if (flags & ~TABLE_LIMITS_KNOWN_FLAGS)
      throw malformed(`unknown table limits flags ${hex(flags)}`);
    this.uleb();
    if (flags & LIMITS_HAS_MAX) this.uleb();
  }
}

function encodeUleb(value: number): number[] {
  const out: number[] = [];
  let v = value;
  do {
    let b = v % 128;
    v = Math.floor(v / 128);
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
  return out;
}

/** One memory's limits and where they sit in the binary. */
interface MemorySpan {
  /** Offset of the limits' flags byte. */
  start: number;
  /** Offset just past the limits (and page size, if any). */
  end: number;
  /** Where the minimum's LEB128 encoding sits, to copy it unchanged. */
  minStart: number;
  minEnd: number;
  flags: number;
  min: number;
  max: number | undefined;
  pageBytes: number;
  imported: boolean;
}

function memorySpan(reader: Reader, imported: boolean): MemorySpan {
  const start = reader.offset;
  const flags = reader.byte();
  if (flags & ~MEMORY_LIMITS_KNOWN_FLAGS) {
    throw wasmError(
      "WASMLET_ERR_WASM_MEMORY_UNCAPPABLE",
      `the module's memory has limits flags ${hex(flags)} that wasmlet does not know, so it cannot cap that memory`,
    );
  }
  const minStart = reader.offset;
  const min = reader.uleb();
  const minEnd = reader.offset;
  const max = flags & LIMITS_HAS_MAX ? reader.uleb() : undefined;
  let pageBytes = WASM_PAGE_BYTES;
  if (flags & LIMITS_CUSTOM_PAGE_SIZE) {
    const log2 = reader.uleb();
    pageBytes = log2 < 64 ? 2 ** log2 : Number.POSITIVE_INFINITY;
  }
  return { start, end: reader.offset, minStart, minEnd, flags, min, max, pageBytes, imported };
}

interface Section {
  id: number;
  /** Offset of the section id byte. */
  start: number;
  contentStart: number;
  end: number;
}

function sections(bytes: Uint8Array): Section[] {
  if (wasmKind(bytes) !== "module") {
    throw wasmKind(bytes) === "component"
      ? wasmError(
          "WASMLET_ERR_WASM_COMPONENT",
          "this is a WebAssembly component, not a core module",
        )
      : wasmError("WASMLET_ERR_NOT_WASM", "not a WebAssembly binary");
  }
  const reader = new Reader(bytes, 8);
  const out: Section[] = [];
  while (reader.offset < bytes.length) {
    const start = reader.offset;
    const id = reader.byte();
    const size = reader.uleb();
    const contentStart = reader.offset;
    reader.skip(size);
    out.push({ id, start, contentStart, end: reader.offset });
  }
  return out;
}

/**
 * Every memory of the module, imported ones first (their order in the memory index space), with
 * where its limits sit in the binary. A section that does not end where its last entry does is
 * refused: a misread entry could otherwise hide a memory from the cap.
 */
function findMemories(bytes: Uint8Array): MemorySpan[] {
  const out: MemorySpan[] = [];
  for (const section of sections(bytes)) {
    if (section.id !== SECTION_IMPORT && section.id !== SECTION_MEMORY) continue;
    const reader = new Reader(bytes.subarray(0, section.end), section.contentStart);
    const count = reader.uleb();
    for (let i = 0; i < count; i++) {
      if (section.id === SECTION_MEMORY) {
        out.push(memorySpan(reader, false));
        continue;
      }
      reader.name();
      reader.name();
      const kind = reader.byte();
      if (kind === IMPORT_KIND_FUNCTION) reader.uleb();
      else if (kind === IMPORT_KIND_TABLE) {
        reader.valType();
        reader.tableLimits();
      } else if (kind === IMPORT_KIND_MEMORY) out.push(memorySpan(reader, true));
      else if (kind === IMPORT_KIND_GLOBAL) {
        reader.valType();
        reader.byte();
      } else if (kind === IMPORT_KIND_TAG) {
        reader.byte();
        reader.uleb();
      } else throw malformed(`unknown import kind ${kind}`);
    }
    if (reader.offset !== section.end) {
      throw malformed(
        `the ${section.id === SECTION_IMPORT ? "import" : "memory"} section has ${section.end - reader.offset} bytes after its last entry`,
      );
    }
  }
  return out;
}

function describe(span: MemorySpan): MemoryLimits {
  return {
    minPages: span.min,
    maxPages: span.max,
    pageBytes: span.pageBytes,
    shared: (span.flags & LIMITS_SHARED) !== 0,
    memory64: (span.flags & LIMITS_64) !== 0,
    imported: span.imported,
  };
}

/** The limits of every memory of the module, imported ones first. */
export function memories(bytes: Uint8Array): MemoryLimits[] {
  return findMemories(bytes).map(describe);
}

/** The limits of the module's first memory (memory 0, the one WASI uses). */
export function memoryLimits(bytes: Uint8Array): MemoryLimits | undefined {
  const [first] = findMemories(bytes);
  return first && describe(first);
}

interface Edit {
  start: number;
  end: number;
  bytes: number[];
}

/** Applies edits (sorted, each inside one section) and fixes the sizes of the sections they touch. */
function rewrite(bytes: Uint8Array<ArrayBuffer>, edits: Edit[]): Uint8Array<ArrayBuffer> {
  const chunks: Uint8Array[] = [];
  let copied = 0;
  for (const section of sections(bytes)) {
    const inside = edits.filter((e) => section.contentStart <= e.start && e.end <= section.end);
    if (inside.length === 0) continue;
    const content: Uint8Array[] = [];
    let at = section.contentStart;
    for (const edit of inside) {
      content.push(bytes.subarray(at, edit.start), Uint8Array.from(edit.bytes));
      at = edit.end;
    }
    content.push(bytes.subarray(at, section.end));
    const size = content.reduce((n, c) => n + c.length, 0);
    chunks.push(
      bytes.subarray(copied, section.start),
      Uint8Array.from([section.id, ...encodeUleb(size)]),
      ...content,
    );
    copied = section.end;
  }
  chunks.push(bytes.subarray(copied));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const chunk of chunks) {
    out.set(chunk, o);
    o += chunk.length;
  }
  return out;
}

/**
 * Returns a copy of the module whose memory maximum is at most `maxBytes` (rounded down to whole
 * pages, never below the declared minimum: such a module could not start, and the caller reports
 * that). A module whose declared maximum is already lower keeps it; modules without memory are
 * returned unchanged. wasm32 and memory64 memories, defined or imported, are capped alike.
 *
 * Refused with WASMLET_ERR_WASM_MEMORY_UNCAPPABLE rather than run uncapped: a memory with custom
 * page sizes (V8 does not run them yet) or limits flags wasmlet does not know, and a module with
 * several memories unless each declares a maximum and together they fit in `maxBytes` (capping
 * each to the limit would let them reach a multiple of it).
 */
export function withMemoryMaximum(
  bytes: Uint8Array<ArrayBuffer>,
  maxBytes: number,
): Uint8Array<ArrayBuffer> {
  if (!(maxBytes >= 0) || !Number.isFinite(maxBytes))
    throw new RangeError(`a memory limit must be a finite number of bytes, not ${maxBytes}`);
  const spans = findMemories(bytes);
  if (spans.length === 0) return bytes;
  const custom = spans.find((span) => span.flags & LIMITS_CUSTOM_PAGE_SIZE);
  if (custom) {
    throw wasmError(
      "WASMLET_ERR_WASM_MEMORY_UNCAPPABLE",
      `the module's memory uses custom page sizes (pages of ${custom.pageBytes} bytes); wasmlet caps memories of 64 KiB pages only`,
    );
  }
  if (spans.length > 1) {
    const total = spans.reduce(
      (sum, span) =>
        sum + (span.max === undefined ? Number.POSITIVE_INFINITY : span.max * span.pageBytes),
      0,
    );
    if (total <= maxBytes) return bytes;
    throw wasmError(
      "WASMLET_ERR_WASM_MEMORY_UNCAPPABLE",
      `the module has ${spans.length} memories and ${
        Number.isFinite(total)
          ? `their maximums add up to ${total} bytes, above the memory limit of ${maxBytes}`
          : "not every one declares a maximum"
      }; wasmlet runs a module with several memories only when their declared maximums together fit in the limit`,
    );
  }
  const span = spans[0]!;
  const memory64 = (span.flags & LIMITS_64) !== 0;
  const limitPages = Math.floor(maxBytes / WASM_PAGE_BYTES);
  const wantedPages = memory64 ? limitPages : Math.min(MAX_PAGES_32, limitPages);
  const pages = Math.max(
    span.min,
    span.max === undefined ? wantedPages : Math.min(span.max, wantedPages),
  );
  if (span.max === pages) return bytes;
  const limits = [
    span.flags | LIMITS_HAS_MAX,
    ...bytes.subarray(span.minStart, span.minEnd),
    ...encodeUleb(pages),
  ];
  return rewrite(bytes, [{ start: span.start, end: span.end, bytes: limits }]);
}
