// instrumentYieldPoints on a third toolchain: AssemblyScript (Binaryen's code generator, neither
// LLVM nor Go). A small program is compiled at test time with the `asc` API and the WASI shim,
// in an optimized build with AssemblyScript's default runtime (TLSF allocator and incremental GC,
// which grow memory themselves) and in an unoptimized debug build with the stub runtime. Each is
// run under node:wasi as built and with yield points: same output and exit code, yield called.
import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { WASI } from "node:wasi";
import asc from "assemblyscript/asc";
import { instrumentYieldPoints, YIELD_IMPORT } from "../../../src/wasm/yield-points.ts";

const dir = mkdtempSync(join(tmpdir(), "wasmlet-asc-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const PROGRAM = `
// argv: prog checksum ROUNDS EXIT | prog grow PAGES EXIT
function checksum(rounds: i32): u64 {
  let x: u64 = 88172645463325252;
  let sum: u64 = 0;
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < 10000; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      sum += x % 1000003;
    }
  }
  return sum;
}

function grow(pages: i32): string {
  const before = memory.size();
  const old = memory.grow(pages);
  if (old < 0) return "grow failed";
  const base = <usize>before << 16;
  for (let p = 0; p < pages; p++) store<u32>(base + (<usize>p << 16) + 8, 0xa5a5a5a5 ^ p);
  let acc: u32 = 0;
  for (let p = 0; p < pages; p++) acc ^= load<u32>(base + (<usize>p << 16) + 8);
  const words = new Array<i32>(20000); // the allocator grows memory too
  for (let i = 0; i < words.length; i++) words[i] = i * i;
  return "grew " + old.toString() + " -> " + memory.size().toString() + " pages, xor " +
    acc.toString() + ", words " + words[words.length - 1].toString();
}

const args = process.argv;
if (args.length > 2 && args[1] == "checksum") {
  console.log("checksum " + checksum(I32.parseInt(args[2])).toString());
} else if (args.length > 2 && args[1] == "grow") {
  console.log(grow(I32.parseInt(args[2])));
} else {
  process.stderr.write("usage: prog checksum ROUNDS [EXIT] | prog grow PAGES [EXIT]\\n");
  process.exit(2);
}
process.exit(args.length > 3 ? I32.parseInt(args[3]) : 0);
`;

const BUILDS = {
  "optimized, incremental GC": ["-O3", "--noAssert"],
  "debug, stub runtime": ["--debug", "-O0", "--runtime", "stub"],
} as const;
type Build = keyof typeof BUILDS;
const binaries = new Map<Build, Uint8Array>();

before(async () => {
  const source = join(dir, "prog.ts");
  writeFileSync(source, PROGRAM);
  const require = createRequire(import.meta.url);
  const shimConfig = join(
    dirname(require.resolve("@assemblyscript/wasi-shim/package.json")),
    "asconfig.json",
  );
  for (const [name, flags] of Object.entries(BUILDS) as [Build, readonly string[]][]) {
    const outFile = join(dir, `${name.replaceAll(/\W+/g, "-")}.wasm`);
    const { error, stderr } = await asc.main(
      [source, "--config", shimConfig, ...flags, "--outFile", outFile],
      {
        // asc joins an absolute `lib` directory (the shim's) onto its base directory when it
        // lists library files; resolve it instead.
        listFiles: async (path: string, baseDir: string) =>
          (await readdir(resolve(baseDir, path)).catch(() => null))?.filter(
            (f) => f.endsWith(".ts") && !f.endsWith(".d.ts"),
          ) ?? null,
      },
    );
    assert.equal(error, null, `asc ${name}: ${stderr.toString()}`);
    binaries.set(name, new Uint8Array(readFileSync(outFile)));
  }
});

interface WasiRun {
  code: number;
  stdout: string;
  stderr: string;
}

async function runWasi(
  bytes: Uint8Array,
  args: string[],
  yieldFn?: () => number,
): Promise<WasiRun> {
  const out = join(dir, "stdout");
  const err = join(dir, "stderr");
  const stdout = openSync(out, "w");
  const stderr = openSync(err, "w");
  try {
    const wasi = new WASI({
      version: "preview1",
      args,
      env: { LANG: "C" },
      returnOnExit: true,
      stdout,
      stderr,
    });
    const module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
    const instance = await WebAssembly.instantiate(module, {
      ...(wasi.getImportObject() as WebAssembly.Imports),
      ...(yieldFn ? { [YIELD_IMPORT.module]: { [YIELD_IMPORT.name]: yieldFn } } : {}),
    });
    const code = wasi.start(instance);
    return { code, stdout: readFileSync(out, "utf8"), stderr: readFileSync(err, "utf8") };
  } finally {
    closeSync(stdout);
    closeSync(stderr);
  }
}

/** cpuloop.c's checksum, in BigInt: what the loop must print. */
function expectedChecksum(rounds: number): bigint {
  const mask = (1n << 64n) - 1n;
  let x = 88172645463325252n;
  let sum = 0n;
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < 10000; i++) {
      x = (x ^ (x << 13n)) & mask;
      x ^= x >> 7n;
      x = (x ^ (x << 17n)) & mask;
      sum = (sum + (x % 1000003n)) & mask;
    }
  }
  return sum;
}

for (const build of Object.keys(BUILDS) as Build[]) {
  test(`AssemblyScript (${build}): same output and exit code with yield points, and yield is called`, async () => {
    const bytes = binaries.get(build)!;
    const imports = WebAssembly.Module.imports(
      new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>),
    );
    assert.ok(imports.some((i) => i.module === "wasi_snapshot_preview1" && i.name === "fd_write"));
    const instrumented = instrumentYieldPoints(bytes);
    assert.ok(WebAssembly.validate(instrumented));
    const cases = [
      {
        args: ["prog", "checksum", "30", "3"],
        stdout: `checksum ${expectedChecksum(30)}\n`,
        code: 3,
      },
      { args: ["prog", "grow", "3"], stdout: undefined, code: 0 },
      { args: ["prog"], stdout: "", code: 2 },
    ];
    for (const expected of cases) {
      const original = await runWasi(bytes, expected.args);
      let calls = 0;
      const withYields = await runWasi(instrumented, expected.args, () => {
        calls++;
        return 1000;
      });
      const what = `${build}: ${expected.args.join(" ")}`;
      assert.deepEqual(withYields, original, `${what}: same exit code and output`);
      assert.equal(original.code, expected.code, `${what}: exit code`);
      if (expected.stdout !== undefined) assert.equal(original.stdout, expected.stdout, what);
      if (expected.args[1] === "grow")
        assert.match(original.stdout, /^grew \d+ -> \d+ pages, xor 2779096486, words 399960001\n$/);
      if (expected.code === 2) assert.match(original.stderr, /usage/);
      // 300,000 loop iterations: 10,000 fuel at the start, then 1,000 a yield.
      if (expected.args[1] === "checksum")
        assert.ok(calls >= 290, `${what}: yield called ${calls} times`);
      else assert.ok(calls > 0 || expected.code === 2, `${what}: yield called ${calls} times`);
    }
  });
}
