// The demo guest `wasmlet dev` pushes and runs: a few hundred bytes of hand-assembled WebAssembly
// (WASI preview1) that prints a greeting every two seconds, so a new user needs no compiler to
// see a pod run. Equivalent to:
//
//   (module
//     (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
//     (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
//     (memory (export "memory") 1)
//     (data (i32.const 0) iovec{64, len})            ;; the greeting
//     (data (i32.const 16) subscription{clock monotonic, 2 s})
//     (data (i32.const 64) "Hello from WebAssembly on wasmlet! …\n")
//     (func (export "_start")
//       (loop $forever
//         (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
//         (drop (call $poll (i32.const 16) (i32.const 192) (i32.const 1) (i32.const 12)))
//         (br $forever))))

const I32 = 0x7f;

function u32(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

/** Signed LEB128 for i32.const immediates. */
function s32(value: number): number[] {
  const out: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const vector = (items: number[][]): number[] => [...u32(items.length), ...items.flat()];
const name = (text: string): number[] =>
  vector([...new TextEncoder().encode(text)].map((b) => [b]));
const section = (id: number, content: number[]): number[] => [
  id,
  ...u32(content.length),
  ...content,
];
const i32Const = (value: number): number[] => [0x41, ...s32(value)];

function le(value: bigint, bytes: number): number[] {
  return Array.from({ length: bytes }, (_, i) => Number((value >> BigInt(8 * i)) & 0xffn));
}

export const DEMO_GREETING =
  "Hello from WebAssembly on wasmlet! (a 300-byte guest, started in milliseconds)";

/** The demo module's bytes. */
export function demoModule(greeting = DEMO_GREETING, intervalMs = 2000): Uint8Array<ArrayBuffer> {
  const text = [...new TextEncoder().encode(`${greeting}\n`)];
  const iovec = [...le(64n, 4), ...le(BigInt(text.length), 4)];
  const subscription = [
    ...le(0n, 8), // userdata
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0, // tag 0 = clock, padding
    ...le(1n, 4),
    0,
    0,
    0,
    0, // clock id 1 = monotonic, padding
    ...le(BigInt(intervalMs) * 1_000_000n, 8), // timeout in ns
    ...le(0n, 8), // precision
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0, // flags 0 = relative, padding
  ];
  const fourI32ToI32 = [0x60, ...vector([[I32], [I32], [I32], [I32]]), ...vector([[I32]])];
  const body = [
    0x00, // no locals
    0x03,
    0x40, // loop (no result)
    ...i32Const(1),
    ...i32Const(0),
    ...i32Const(1),
    ...i32Const(8),
    0x10,
    0x00,
    0x1a, // fd_write; drop
    ...i32Const(16),
    ...i32Const(192),
    ...i32Const(1),
    ...i32Const(12),
    0x10,
    0x01,
    0x1a, // poll_oneoff; drop
    0x0c,
    0x00, // br 0
    0x0b, // end loop
    0x0b, // end func
  ];
  const dataSegment = (offset: number, bytes: number[]) => [
    0x00,
    ...i32Const(offset),
    0x0b,
    ...vector(bytes.map((b) => [b])),
  ];
  return Uint8Array.from([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vector([fourI32ToI32, [0x60, 0x00, 0x00]])),
    ...section(
      2,
      vector([
        [...name("wasi_snapshot_preview1"), ...name("fd_write"), 0x00, 0x00],
        [...name("wasi_snapshot_preview1"), ...name("poll_oneoff"), 0x00, 0x00],
      ]),
    ),
    ...section(3, vector([[0x01]])),
    ...section(5, vector([[0x00, 0x01]])),
    ...section(
      7,
      vector([
        [...name("memory"), 0x02, 0x00],
        [...name("_start"), 0x00, 0x02],
      ]),
    ),
    ...section(10, vector([[...u32(body.length), ...body]])),
    ...section(
      11,
      vector([dataSegment(0, iovec), dataSegment(16, subscription), dataSegment(64, text)]),
    ),
  ]);
}
