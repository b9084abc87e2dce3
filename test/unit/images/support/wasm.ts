// Builds small, valid WebAssembly binaries for tests and benchmarks: chosen imports, an optional
// memory, a `_start` export, and optional filler functions to reach a size.

function u32(value: number): number[] {
  const out: number[] = [];
  let v = value;
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
  return out;
}

function name(text: string): number[] {
  const bytes = [...Buffer.from(text)];
  return [...u32(bytes.length), ...bytes];
}

function section(id: number, content: number[]): number[] {
  return [id, ...u32(content.length), ...content];
}

function bigSection(id: number, parts: Uint8Array[]): Buffer {
  const content = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([id, ...u32(content.length)]), content]);
}

export interface ModuleSpec {
  /** Function imports `[module, name]`, all of type () -> (). */
  imports?: [string, string][];
  /** Memory pages (min, max?). */
  memory?: { min: number; max?: number };
  /** Approximate size in bytes to reach with filler functions. */
  targetBytes?: number;
  /** Vary the content (distinct digests for equal specs). */
  salt?: number;
}

export function buildModule(spec: ModuleSpec = {}): Uint8Array<ArrayBuffer> {
  const imports = spec.imports ?? [];
  const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  // type 0: () -> (); type 1: (i32) -> i32
  out.push(...section(1, [0x02, 0x60, 0x00, 0x00, 0x60, 0x01, 0x7f, 0x01, 0x7f]));
  if (imports.length > 0) {
    const content = [...u32(imports.length)];
    for (const [m, n] of imports) content.push(...name(m), ...name(n), 0x00, 0x00);
    out.push(...section(2, content));
  }
  // Filler: functions (i32) -> i32 with arithmetic bodies of ~1 KiB each.
  const bodySize = 1024;
  const fillerCount = spec.targetBytes
    ? Math.max(0, Math.floor(spec.targetBytes / (bodySize + 4)))
    : 0;
  const functions = 1 + fillerCount;
  out.push(
    ...bigSection(3, [Buffer.from([...u32(functions), 0x00]), Buffer.alloc(fillerCount, 0x01)]),
  );
  if (spec.memory) {
    const limits =
      spec.memory.max === undefined
        ? [0x00, ...u32(spec.memory.min)]
        : [0x01, ...u32(spec.memory.min), ...u32(spec.memory.max)];
    out.push(...section(5, [0x01, ...limits]));
  }
  const exports = [...name("_start"), 0x00, ...u32(imports.length)];
  if (spec.memory) exports.push(...name("memory"), 0x02, 0x00);
  out.push(...section(7, [spec.memory ? 0x02 : 0x01, ...exports]));
  const bodies: Uint8Array[] = [Buffer.from([...u32(functions), ...u32(2), 0x00, 0x0b])];
  // (the first body is _start: no locals, end)
  const salt = spec.salt ?? 0;
  for (let f = 0; f < fillerCount; f++) {
    const code: number[] = [0x00, 0x20, 0x00]; // no locals; local.get 0
    let k = f + salt;
    while (code.length < bodySize - 8) {
      // i32.const k; i32.add; i32.const 3; i32.mul
      code.push(0x41, ...sleb(k & 0xffff), 0x6a, 0x41, 0x03, 0x6c);
      k = (k * 31 + 7) & 0xffff;
    }
    code.push(0x0b);
    bodies.push(Buffer.from([...u32(code.length), ...code]));
  }
  const bytes = Buffer.concat([Buffer.from(out), bigSection(10, bodies)]);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length) as Uint8Array<ArrayBuffer>;
}

function sleb(value: number): number[] {
  const out: number[] = [];
  let v = value;
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}
