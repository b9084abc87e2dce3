// Compile modes: how V8 turns a module into machine code (docs/design-notes.md note 14).
//
// - "lazy" (the default) is V8's own strategy: a function is compiled by the baseline compiler
//   (Liftoff) when it is first called, and functions that turn out hot are recompiled by the
//   optimizing compiler (TurboFan) in the background. WebAssembly has no on-stack replacement in
//   V8, so a long loop entered in Liftoff code stays there: a CPU-bound guest's first instance
//   runs at the baseline tier (cpuloop: ~1.24× gcc -O2; later instances ~0.9×).
// - "optimized" compiles every function with TurboFan before the module is handed out, the
//   semantics of `--no-liftoff --no-wasm-lazy-compilation`: slower to compile (up to seconds for a
//   large Go module, all of it on V8's background threads), more code, and full speed from the
//   first instruction of the first instance.
//
// V8 has no per-module switch, and its flags are per process (a Worker refuses V8 flags in
// `execArgv`; a flag set from a worker changes the main thread's compiles), so an optimized
// compile flips `--liftoff` and `--wasm-lazy-compilation` with `v8.setFlagsFromString` for as
// short a window as V8 allows, measured on Node 24.21 (V8 13.6):
// - V8 reads the flags when it sets up a module's compilation, not when `WebAssembly.compile` is
//   called: for an asynchronous compile that is a task run after decoding on a background thread,
//   so the flags would have to stay flipped until the compile settles. A streaming compile
//   (`WebAssembly.compileStreaming` over a stream wasmlet feeds) sets the compilation up while
//   the bytes are pushed, so the flags are restored one macrotask after the last chunk: the
//   window is the decoding time (tens of ms for megabytes), spread over 128 KiB chunks with a
//   turn of the event loop between them. The TurboFan work runs on V8's background threads,
//   most of it after the window closed (and, with `--liftoff` back on, for half the CPU it
//   takes under `--no-liftoff`).
// - V8 keeps a process-wide cache of compiled modules keyed by their bytes (and, for streaming,
//   by the bytes before the code section): compiling the same bytes again returns the module
//   compiled first, whatever the flags. An optimized module is therefore given a custom section
//   in front, `wasmlet.compile` = `optimized sha256:<digest of the bytes>`, which makes both its
//   bytes and its prefix its own.
// - What else compiles while the flags are flipped is compiled eagerly by TurboFan too: every
//   compile through this module waits for the window (lazy compiles in flight finish first, a
//   window waits for them, later ones wait for the window), so one image's optimized compile
//   never slows another's lazy one by more than the window. A guest calling a function for the
//   first time inside the window (guests run on worker threads) gets that function from TurboFan
//   instead of Liftoff: correct code, compiled a little slower. `compileModule` of src/runtime
//   compiles without this module (tests and benchmarks; wasmlet's pods pass compiled modules).
// - The flags are restored to what the process started with (`execArgv`, NODE_OPTIONS), so a
//   node started with `--no-liftoff` keeps it.
// Node's event loop may exit while V8 compiles in the background (its completion task holds no
// handle), so a compile holds a timer until it settles.
import v8 from "node:v8";
import { wasmKind } from "./binary.ts";
import { wasmError } from "./errors.ts";

export type CompileMode = "lazy" | "optimized";
export const COMPILE_MODES: readonly CompileMode[] = Object.freeze(["lazy", "optimized"]);
export const DEFAULT_COMPILE_MODE: CompileMode = "lazy";
/** The custom section that sets an optimized module's bytes apart (see above). */
export const COMPILE_MODE_SECTION = "wasmlet.compile";

export function isCompileMode(value: unknown): value is CompileMode {
  return value === "lazy" || value === "optimized";
}

/** Bytes pushed to V8 at a time, with a turn of the event loop between chunks. */
const CHUNK_BYTES = 128 * 1024;

/**
 * Compiles a core module in `mode` without blocking the event loop for long (V8 compiles on
 * background threads). Rejects as `WebAssembly.compile` does for bytes that do not compile.
 */
export async function compileWasm(
  bytes: Uint8Array,
  mode: CompileMode = DEFAULT_COMPILE_MODE,
): Promise<WebAssembly.Module> {
  if (!isCompileMode(mode)) throw new TypeError(`unknown compile mode ${String(mode)}`);
  const keepAlive = setInterval(() => {}, 60_000);
  try {
    return mode === "optimized" ? await optimized(bytes) : await lazy(bytes);
  } finally {
    clearInterval(keepAlive);
  }
}

/** How many optimized compiles opened a flag window, and how long the windows were (ms). */
export const compileWindowStats = { windows: 0, lastWindowMs: 0, maxWindowMs: 0 };

// --------------------------------------------------------------------------- the flag window

let lazyInFlight = 0;
const lazyDrained: (() => void)[] = [];
/** Set while an optimized compile waits for its window or holds it. */
let windowClosed: Promise<void> | undefined;
/** Optimized compiles take the window one at a time. */
let windowQueue: Promise<void> = Promise.resolve();

async function lazy(bytes: Uint8Array): Promise<WebAssembly.Module> {
  while (windowClosed) await windowClosed;
  lazyInFlight++;
  try {
    return await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  } finally {
    if (--lazyInFlight === 0) for (const wake of lazyDrained.splice(0)) wake();
  }
}

async function optimized(bytes: Uint8Array): Promise<WebAssembly.Module> {
  if (wasmKind(bytes) !== "module")
    throw wasmError("WASMLET_ERR_NOT_WASM", "not a WebAssembly module");
  const tagged = await withCompileSection(bytes);
  const flags = flipFlags();
  if (!flags) return WebAssembly.compile(tagged);
  // Touching `Response` loads Node's fetch implementation (~100 ms the first time): not inside
  // the window.
  const streaming =
    typeof WebAssembly.compileStreaming === "function" && typeof Response === "function";

  const queued = windowQueue;
  let release!: () => void;
  windowQueue = new Promise((resolve) => {
    release = resolve;
  });
  await queued;
  let close!: () => void;
  const closed = new Promise<void>((resolve) => {
    close = resolve;
  });
  windowClosed = closed;
  let opened: number | undefined;
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    if (opened !== undefined) {
      v8.setFlagsFromString(flags.restore);
      const ms = performance.now() - opened;
      compileWindowStats.lastWindowMs = ms;
      compileWindowStats.maxWindowMs = Math.max(compileWindowStats.maxWindowMs, ms);
    }
    if (windowClosed === closed) windowClosed = undefined;
    close();
    release();
  };
  try {
    while (lazyInFlight > 0) await new Promise<void>((resolve) => lazyDrained.push(resolve));
    opened = performance.now();
    compileWindowStats.windows++;
    v8.setFlagsFromString(flags.set);
    if (!streaming) {
      // No streaming compile here: the flags stay flipped until the compile settles.
      return await WebAssembly.compile(tagged);
    }
    let offset = 0;
    const body = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          if (offset >= tagged.length) {
            controller.close();
            // The stream's end reaches V8 (`finish`) in microtasks after this read: one
            // macrotask later V8 has set up every function's compilation.
            setImmediate(end);
            return;
          }
          if (offset > 0) await new Promise((resolve) => setImmediate(resolve));
          controller.enqueue(tagged.subarray(offset, offset + CHUNK_BYTES));
          offset += CHUNK_BYTES;
        },
        cancel: end,
      },
      { highWaterMark: 0 },
    );
    return await WebAssembly.compileStreaming(
      new Response(body, { headers: { "Content-Type": "application/wasm" } }),
    );
  } finally {
    // Normally done already, one macrotask after the last chunk; here after a failure.
    end();
  }
}

/**
 * The flags to set for an optimized compile and to restore after it, or undefined when the
 * process already compiles that way.
 */
function flipFlags(): { set: string; restore: string } | undefined {
  const liftoff = startupFlag("liftoff", true);
  const lazyCompilation = startupFlag("wasm-lazy-compilation", true);
  if (!liftoff && !lazyCompilation) return undefined;
  return {
    set: "--no-liftoff --no-wasm-lazy-compilation",
    restore: `${liftoff ? "--liftoff" : "--no-liftoff"} ${lazyCompilation ? "--wasm-lazy-compilation" : "--no-wasm-lazy-compilation"}`,
  };
}

/** A boolean V8 flag's value as the process was started (`execArgv`, NODE_OPTIONS). */
export function startupFlag(name: string, fallback: boolean): boolean {
  const args = [...(process.env.NODE_OPTIONS?.split(/\s+/) ?? []), ...process.execArgv];
  let value = fallback;
  for (const arg of args) {
    if (!arg.startsWith("--")) continue;
    const [flag = "", setting] = arg.slice(2).replaceAll("_", "-").split("=", 2);
    if (flag === name) value = setting === undefined || setting === "true";
    else if (flag === `no-${name}` || flag === `no${name}`) value = false;
  }
  return value;
}

/** `bytes` with a `wasmlet.compile` custom section in front naming the mode and the bytes' digest. */
async function withCompileSection(bytes: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const digest = Buffer.from(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  ).toString("hex");
  const name = new TextEncoder().encode(COMPILE_MODE_SECTION);
  const payload = new TextEncoder().encode(`optimized sha256:${digest}`);
  const content = [...leb128(name.length), ...name, ...payload];
  const section = [0, ...leb128(content.length), ...content];
  const out = new Uint8Array(bytes.length + section.length);
  out.set(bytes.subarray(0, 8), 0);
  out.set(section, 8);
  out.set(bytes.subarray(8), 8 + section.length);
  return out;
}

function leb128(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}
