// A synthetic CPU-bound module for compile-mode tests: `functions` functions `f<i>(n: i32) -> i32`,
// each a loop of `n` rounds of integer arithmetic (`ops` xor-multiply-add steps per round), and
// `run(n)` calling them all and summing their results. Big enough (a few hundred functions) for
// an optimizing compile to take a measurable time; no toolchain needed. Exports `f0`, `run` and a
// one-page `memory`.
import { sleb, uleb } from "../runtime/wasm-builder.ts";

const I32 = 0x7f;
const section = (id: number, content: number[]) => [id, ...uleb(content.length), ...content];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const name = (text: string) => {
  const bytes = [...new TextEncoder().encode(text)];
  return [...uleb(bytes.length), ...bytes];
};

export interface ComputeModuleOptions {
  functions: number;
  /** Arithmetic steps per loop round (the size of each function). Default 8. */
  ops?: number;
  /** Changes every constant, for modules that differ in their code only. */
  salt?: number;
}

export function computeModule(options: ComputeModuleOptions): Uint8Array<ArrayBuffer> {
  const { functions, ops = 8, salt = 0 } = options;
  const bodies: number[][] = [];
  for (let f = 0; f < functions; f++) {
    const round: number[] = [];
    for (let k = 0; k < ops; k++) {
      // acc = acc * 31 + (i ^ K)
      const K = (f * 7919 + k * 104729 + salt * 31337) | 0;
      round.push(0x20, 1, 0x41, ...sleb(31), 0x6c, 0x20, 2, 0x41, ...sleb(K), 0x73, 0x6a, 0x21, 1);
    }
    const code = [
      ...[1, 2, I32], // two i32 locals: acc, i
      0x03,
      0x40, // loop
      ...round,
      ...[0x20, 2, 0x41, 1, 0x6a, 0x22, 2, 0x20, 0, 0x48, 0x0d, 0], // br_if (++i < n)
      0x0b,
      0x20,
      1,
      0x0b,
    ];
    bodies.push([...uleb(code.length), ...code]);
  }
  const run = [0]; // no locals
  for (let f = 0; f < functions; f++) {
    run.push(0x20, 0, 0x10, ...uleb(f));
    if (f > 0) run.push(0x6a);
  }
  run.push(0x0b);
  bodies.push([...uleb(run.length), ...run]);
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec([[0x60, 1, I32, 1, I32]])),
    ...section(3, vec(Array.from({ length: functions + 1 }, () => [0]))),
    ...section(5, vec([[0x00, 1]])),
    ...section(
      7,
      vec([
        [...name("f0"), 0, 0],
        [...name("run"), 0, ...uleb(functions)],
        [...name("memory"), 2, 0],
      ]),
    ),
    ...section(10, vec(bodies)),
  ]);
}

/** What `run(n)` returns, computed in JavaScript. */
export function expectedRun(options: ComputeModuleOptions, n: number): number {
  const { functions, ops = 8, salt = 0 } = options;
  let total = 0;
  for (let f = 0; f < functions; f++) {
    let acc = 0;
    let i = 0;
    do {
      for (let k = 0; k < ops; k++) {
        const K = (f * 7919 + k * 104729 + salt * 31337) | 0;
        acc = (Math.imul(acc, 31) + (i ^ K)) | 0;
      }
      i = (i + 1) | 0;
    } while (i < n);
    total = (total + acc) | 0;
  }
  return total;
}
