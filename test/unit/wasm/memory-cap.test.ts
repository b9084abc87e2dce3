// The memory cap holds for every memory a module can have (security finding F3: a memory64 module
// ran uncapped and grew to 1 GiB under a 64 MiB limit): memory64 memories are capped like wasm32
// ones, several memories are refused unless their maximums together fit in the limit, and
// memories wasmlet cannot cap (custom page sizes, unknown limits flags) are refused, never run
// uncapped. Node 26's V8 runs memory64 and multi-memory modules, so the tests instantiate them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { memoryLimits, WASM_PAGE_BYTES, withMemoryMaximum } from "../../../src/wasm/binary.ts";
import { uleb } from "../runtime/wasm-builder.ts";

const MiB = 1024 * 1024;
const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
const section = (id: number, content: number[]) => [id, ...uleb(content.length), ...content];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const str = (text: string) => {
  const bytes = [...new TextEncoder().encode(text)];
  return [...uleb(bytes.length), ...bytes];
};
const wasm = (...sections: number[][]) => new Uint8Array([...HEADER, ...sections.flat()]);

interface Mem {
  min: number;
  max?: number;
  memory64?: boolean;
  shared?: boolean;
}
/** A memory type's limits (min and max are u64 LEB128 for memory64, u32 otherwise). */
const limits = ({ min, max, memory64 = false, shared = false }: Mem) => [
  (max === undefined ? 0 : 0x01) | (shared ? 0x02 : 0) | (memory64 ? 0x04 : 0),
  ...uleb(min),
  ...(max === undefined ? [] : uleb(max)),
];
const importMemory = (mem: Mem) => [...str("env"), ...str("memory"), 0x02, ...limits(mem)];
const memorySection = (...mems: Mem[]) => section(5, vec(mems.map(limits)));

/** (memory i64 …) exported as "memory", with `grow(delta: i64) -> i64` running memory.grow. */
function memory64Module(mem: Omit<Mem, "memory64">): Uint8Array<ArrayBuffer> {
  const body = [0x00, 0x20, 0x00, 0x40, 0x00, 0x0b]; // no locals; local.get 0; memory.grow 0
  return wasm(
    section(1, vec([[0x60, 1, 0x7e, 1, 0x7e]])),
    section(3, vec([[0]])),
    memorySection({ ...mem, memory64: true }),
    section(
      7,
      vec([
        [...str("grow"), 0x00, 0],
        [...str("memory"), 0x02, 0],
      ]),
    ),
    section(10, vec([[...uleb(body.length), ...body]])),
  );
}

test("a memory64 memory is capped like a wasm32 one: it cannot grow past the limit (F3)", () => {
  const limit = 64 * MiB;
  const capped = withMemoryMaximum(memory64Module({ min: 1 }), limit);
  const instance = new WebAssembly.Instance(new WebAssembly.Module(capped));
  const grow = instance.exports.grow as (delta: bigint) => bigint;
  const memory = instance.exports.memory as WebAssembly.Memory;
  // F3's guest grew from 64 MiB to 1 GiB; now growing past the limit fails as memory.grow does.
  assert.equal(grow(16383n), -1n, "memory.grow to 1 GiB is refused");
  assert.equal(grow(BigInt(limit / WASM_PAGE_BYTES - 1)), 1n, "growing up to the limit works");
  assert.equal(memory.buffer.byteLength, limit);
  assert.equal(grow(1n), -1n, "one page past the limit is refused");
  assert.throws(() => memory.grow(1n as unknown as number), RangeError);
  assert.equal(memory.buffer.byteLength, limit);
  assert.equal(memoryLimits(capped)?.memory64, true);
  assert.equal(memoryLimits(capped)?.maxPages, limit / WASM_PAGE_BYTES);
});

test("memory64 maximums: a higher one is lowered, a lower one kept, the u64 minimum untouched", () => {
  const lowered = withMemoryMaximum(memory64Module({ min: 2, max: 2 ** 32 }), 4 * MiB);
  assert.deepEqual(
    [memoryLimits(lowered)?.minPages, memoryLimits(lowered)?.maxPages],
    [2, (4 * MiB) / WASM_PAGE_BYTES],
  );
  assert.ok(WebAssembly.validate(lowered));
  const low = memory64Module({ min: 1, max: 8 });
  assert.equal(withMemoryMaximum(low, 4 * MiB), low);
  // A cap below the minimum is raised to the minimum (the runtime reports that the guest cannot
  // start), as for wasm32.
  assert.equal(memoryLimits(withMemoryMaximum(low, 1000))?.maxPages, 1);
  // A shared memory64 memory stays shared.
  const shared = withMemoryMaximum(memory64Module({ min: 1, max: 65536, shared: true }), 1 * MiB);
  assert.deepEqual(
    [memoryLimits(shared)?.shared, memoryLimits(shared)?.memory64, memoryLimits(shared)?.maxPages],
    [true, true, 16],
  );
  assert.ok(WebAssembly.validate(shared));
  // The minimum's encoding is copied as it was (here a padded 10-byte u64 LEB128 of 1).
  const padded = [0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
  const module = wasm(section(5, [1, 0x04, ...padded]));
  assert.ok(WebAssembly.validate(module));
  const capped = withMemoryMaximum(module, 1 * MiB);
  assert.deepEqual([...capped.subarray(8)], [5, 13, 1, 0x05, ...padded, 16]);
  assert.ok(WebAssembly.validate(capped));
});

test("an imported memory64 memory is capped, so the host must supply a memory within it", () => {
  const module = wasm(section(2, vec([importMemory({ min: 1, memory64: true })])));
  const capped = withMemoryMaximum(module, 2 * MiB);
  assert.deepEqual(
    [
      memoryLimits(capped)?.imported,
      memoryLimits(capped)?.memory64,
      memoryLimits(capped)?.maxPages,
    ],
    [true, true, 32],
  );
  const uncapped = new WebAssembly.Memory({ address: "i64", initial: 1n } as never);
  assert.throws(
    () => new WebAssembly.Instance(new WebAssembly.Module(capped), { env: { memory: uncapped } }),
    WebAssembly.LinkError,
  );
  const within = new WebAssembly.Memory({ address: "i64", initial: 1n, maximum: 32n } as never);
  new WebAssembly.Instance(new WebAssembly.Module(capped), { env: { memory: within } });
});

test("a module with several memories runs only if their maximums together fit in the limit", () => {
  const refused = { code: "WASMLET_ERR_WASM_MEMORY_UNCAPPABLE" };
  // Capping only the first left the second free to grow.
  const second = wasm(memorySection({ min: 1, max: 2 }, { min: 1 }));
  assert.ok(WebAssembly.validate(second), "Node 26 runs multi-memory modules");
  assert.throws(() => withMemoryMaximum(second, 64 * MiB), {
    ...refused,
    message: /2 memories and not every one declares a maximum/,
  });
  // Capping each at the limit would still let them reach twice it.
  const twice = wasm(memorySection({ min: 1, max: 1024 }, { min: 1, max: 1024, memory64: true }));
  assert.ok(WebAssembly.validate(twice));
  assert.throws(() => withMemoryMaximum(twice, 64 * MiB), {
    ...refused,
    message: /their maximums add up to 134217728 bytes, above the memory limit of 67108864/,
  });
  assert.equal(withMemoryMaximum(twice, 128 * MiB), twice);
  const imported = wasm(
    section(2, vec([importMemory({ min: 1 })])),
    memorySection({ min: 1, max: 2 }),
  );
  assert.ok(WebAssembly.validate(imported));
  assert.throws(() => withMemoryMaximum(imported, 64 * MiB), refused);
});

test("memories wasmlet cannot cap are refused, not run uncapped", () => {
  // Custom page sizes (flag 0x08, the page size's log2 after the limits): 1-byte pages.
  const customPages = wasm(section(5, [1, 0x09, 1, 4, 0]));
  assert.throws(() => withMemoryMaximum(customPages, 64 * MiB), {
    code: "WASMLET_ERR_WASM_MEMORY_UNCAPPABLE",
    message: /custom page sizes \(pages of 1 bytes\)/,
  });
  assert.equal(memoryLimits(customPages)?.pageBytes, 1);
  assert.throws(() => withMemoryMaximum(wasm(section(5, [1, 0x10, 1])), 64 * MiB), {
    code: "WASMLET_ERR_WASM_MEMORY_UNCAPPABLE",
    message: /limits flags 0x10/,
  });
  assert.throws(() => withMemoryMaximum(memory64Module({ min: 1 }), Number.NaN), RangeError);
});

test("typed-reference table and global imports do not hide the memory imported after them", () => {
  // (type (func)) (import "env" "t" (table 1 (ref null 0))) (import "env" "g" (global (ref null 0)))
  // (import "env" "memory" (memory 1))
  const module = wasm(
    section(1, vec([[0x60, 0, 0]])),
    section(
      2,
      vec([
        [...str("env"), ...str("t"), 0x01, 0x63, 0x00, 0x00, 1],
        [...str("env"), ...str("g"), 0x03, 0x63, 0x00, 0x00],
        importMemory({ min: 1 }),
      ]),
    ),
  );
  assert.ok(WebAssembly.validate(module));
  const capped = withMemoryMaximum(module, 64 * MiB);
  assert.deepEqual(
    [
      memoryLimits(capped)?.imported,
      memoryLimits(capped)?.minPages,
      memoryLimits(capped)?.maxPages,
    ],
    [true, 1, 1024],
  );
  assert.ok(WebAssembly.validate(capped));
});

test("an import or memory section with bytes after its last entry is refused as malformed", () => {
  assert.throws(() => withMemoryMaximum(wasm(section(5, [1, 0x00, 1, 0x00])), 64 * MiB), {
    code: "WASMLET_ERR_WASM_MALFORMED",
  });
});
