// Just enough of the WebAssembly binary format for wasmlet: tell modules from components and
// from things that are not wasm, and rewrite a module's memory limits (the memory cap) without
// compiling it. Pure functions over bytes; no Kubernetes, no runtime.
import { wasmError } from "./errors.ts";

const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const SECTION_IMPORT = 2;
const SECTION_MEMORY = 5;
const IMPORT_KIND_MEMORY = 2;
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
  shared: boolean;
  memory64: boolean;
  imported: boolean;
}

class Reader {
  offset: number;
  readonly bytes: Uint8Array;
  constructor(bytes: Uint8Array, offset = 0) {
    this.bytes = bytes;
    this.offset = offset;
  }
  byte(): number {
    if (this.offset >= this.bytes.length)
      throw wasmError("WASMLET_ERR_WASM_MALFORMED", "unexpected end of wasm binary");
    return this.bytes[this.offset++]!;
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 63) throw wasmError("WASMLET_ERR_WASM_MALFORMED", "LEB128 integer too long");
    }
  }
  name(): string {
    const length = this.u32();
    const start = this.offset;
    this.skip(length);
    return new TextDecoder().decode(this.bytes.subarray(start, start + length));
  }
  skip(n: number): void {
    if (this.offset + n > this.bytes.length)
      throw wasmError("WASMLET_ERR_WASM_MALFORMED", "unexpected end of wasm binary");
    this.offset += n;
  }
  limits(): { flags: number; min: number; max: number | undefined } {
    const flags = this.byte();
    const min = this.u32();
    const max = flags & 0x01 ? this.u32() : undefined;
    return { flags, min, max };
  }
}

function encodeU32(value: number): number[] {
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

interface LimitsSpan {
  start: number;
  end: number;
  flags: number;
  min: number;
  max: number | undefined;
  imported: boolean;
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
    const size = reader.u32();
    const contentStart = reader.offset;
    reader.skip(size);
    out.push({ id, start, contentStart, end: reader.offset });
  }
  return out;
}

/** Where the (first) memory's limits sit in the binary, whether defined or imported. */
function findMemoryLimits(bytes: Uint8Array): LimitsSpan | undefined {
  for (const section of sections(bytes)) {
    const reader = new Reader(bytes.subarray(0, section.end), section.contentStart);
    if (section.id === SECTION_IMPORT) {
      const count = reader.u32();
      for (let i = 0; i < count; i++) {
        reader.name();
        reader.name();
        const kind = reader.byte();
        if (kind === 0) reader.u32();
        else if (kind === 1) {
          reader.byte();
          reader.limits();
        } else if (kind === IMPORT_KIND_MEMORY) {
          const start = reader.offset;
          const { flags, min, max } = reader.limits();
          return { start, end: reader.offset, flags, min, max, imported: true };
        } else if (kind === 3) {
          reader.byte();
          reader.byte();
        } else if (kind === 4) {
          reader.byte();
          reader.u32();
        } else throw wasmError("WASMLET_ERR_WASM_MALFORMED", `unknown import kind ${kind}`);
      }
    } else if (section.id === SECTION_MEMORY) {
      const count = reader.u32();
      if (count === 0) return undefined;
      const start = reader.offset;
      const { flags, min, max } = reader.limits();
      return { start, end: reader.offset, flags, min, max, imported: false };
    }
  }
  return undefined;
}

export function memoryLimits(bytes: Uint8Array): MemoryLimits | undefined {
  const span = findMemoryLimits(bytes);
  if (!span) return undefined;
  return {
    minPages: span.min,
    maxPages: span.max,
    shared: (span.flags & 0x02) !== 0,
    memory64: (span.flags & 0x04) !== 0,
    imported: span.imported,
  };
}

/**
 * Returns a copy of the module whose memory maximum is at most `maxBytes` (rounded down to whole
 * pages, never below the declared minimum: such a module could not start, and the caller reports
 * that). A module whose declared maximum is already lower keeps it. Modules without memory are
 * returned unchanged.
 */
export function withMemoryMaximum(
  bytes: Uint8Array<ArrayBuffer>,
  maxBytes: number,
): Uint8Array<ArrayBuffer> {
  const span = findMemoryLimits(bytes);
  if (!span || span.flags & 0x04) return bytes;
  const wantedPages = Math.min(MAX_PAGES_32, Math.floor(maxBytes / WASM_PAGE_BYTES));
  const pages = Math.max(
    span.min,
    span.max === undefined ? wantedPages : Math.min(span.max, wantedPages),
  );
  if (span.max === pages) return bytes;
  const limits = [span.flags | 0x01, ...encodeU32(span.min), ...encodeU32(pages)];
  const section = sections(bytes).find((s) => s.start < span.start && span.end <= s.end)!;
  const oldContentSize = section.end - section.contentStart;
  const newContentSize = oldContentSize - (span.end - span.start) + limits.length;
  const header = [section.id, ...encodeU32(newContentSize)];
  const out = new Uint8Array(
    bytes.length - (section.end - section.start) + header.length + newContentSize,
  );
  let o = 0;
  out.set(bytes.subarray(0, section.start), o);
  o += section.start;
  out.set(header, o);
  o += header.length;
  out.set(bytes.subarray(section.contentStart, span.start), o);
  o += span.start - section.contentStart;
  out.set(limits, o);
  o += limits.length;
  out.set(bytes.subarray(span.end), o);
  return out;
}
