// What the runtime can run, checked before a worker is taken: images/ can call missingImports()
// right after pulling to name what a module lacks, and the runtime refuses such a module with all
// the names at once (instantiation would only name the first).
import { isWasmletError } from "../errors.ts";
import { wasmKind, withMemoryMaximum } from "../wasm/binary.ts";
import { instrumentYieldPoints, YIELD_IMPORT } from "../wasm/yield-points.ts";
import { runtimeError } from "./errors.ts";
import { WASI_FUNCTIONS, WASI_MODULE } from "./wasi-abi.ts";
import { SOCKET_EXTENSION_FUNCTIONS } from "./wasmedge-sockets.ts";

/**
 * Every import the runtime provides, by module name: all of preview1's functions and the WasmEdge
 * socket extension's (docs/socket-abi.md), and the yield
 * point that instrumentYieldPoints adds (a module that imports it of its own is refused there).
 */
export const SUPPORTED_IMPORTS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  [WASI_MODULE]: Object.freeze([...Object.keys(WASI_FUNCTIONS), ...SOCKET_EXTENSION_FUNCTIONS]),
  [YIELD_IMPORT.module]: Object.freeze([YIELD_IMPORT.name]),
});

/** Whether the runtime provides this import. */
export function isProvidedImport(item: WebAssembly.ModuleImportDescriptor): boolean {
  return item.kind === "function" && SUPPORTED_IMPORTS[item.module]?.includes(item.name) === true;
}

/** The module's imports the runtime lacks, as `module.name` (plus ` (memory)` etc. for non-functions). */
export function missingImports(module: WebAssembly.Module): string[] {
  return WebAssembly.Module.imports(module)
    .filter((item) => !isProvidedImport(item))
    .map((item) =>
      item.kind === "function"
        ? `${item.module}.${item.name}`
        : `${item.module}.${item.name} (${item.kind})`,
    );
}

function isYieldImport(item: WebAssembly.ModuleImportDescriptor): boolean {
  return (
    item.module === YIELD_IMPORT.module &&
    item.name === YIELD_IMPORT.name &&
    item.kind === "function"
  );
}

/** Throws a WasmletError naming what keeps the module from running with this entrypoint. */
export function checkModule(module: WebAssembly.Module, entrypoint: string): void {
  const imports = WebAssembly.Module.imports(module);
  if (!imports.some(isYieldImport)) {
    throw runtimeError(
      "WASMLET_ERR_MODULE_NOT_INSTRUMENTED",
      "the compiled module has no yield points: it could hold a shared worker thread forever",
    );
  }
  const missing = missingImports(module);
  if (missing.length > 0) {
    throw runtimeError(
      "WASMLET_ERR_MISSING_IMPORTS",
      `the module imports what wasmlet does not provide: ${missing.join(", ")}`,
    );
  }
  const exports = WebAssembly.Module.exports(module);
  const memory = exports.find((e) => e.name === "memory");
  if (memory?.kind !== "memory") {
    throw runtimeError(
      "WASMLET_ERR_MISSING_EXPORT",
      "the module does not export its memory as `memory` (WASI requires it)",
    );
  }
  const entry = exports.find((e) => e.name === entrypoint);
  if (entry?.kind !== "function") {
    const functions = exports.filter((e) => e.kind === "function").map((e) => e.name);
    throw runtimeError(
      "WASMLET_ERR_MISSING_EXPORT",
      `the module has no exported function \`${entrypoint}\`${functions.length ? ` (it exports: ${functions.slice(0, 10).join(", ")})` : ""}`,
      {
        hint:
          entrypoint === "_start"
            ? "build it as a WASI command (with a main function), not a reactor or library"
            : undefined,
      },
    );
  }
}

/**
 * Compiles raw bytes for the runtime: checks they are a core module, caps memory at
 * `memoryLimitBytes` (see withMemoryMaximum), adds yield points (see instrumentYieldPoints) and
 * compiles. Errors are WASMLET_ERR_MODULE_INVALID (or the wasm/ codes for bytes that are not a
 * module at all).
 */
export async function compileModule(
  bytes: Uint8Array,
  memoryLimitBytes?: number,
): Promise<WebAssembly.Module> {
  const kind = wasmKind(bytes);
  if (kind !== "module") {
    throw runtimeError(
      "WASMLET_ERR_MODULE_INVALID",
      kind === "component"
        ? "the binary is a WebAssembly component; wasmlet runs core modules (WASI preview1)"
        : "the bytes are not a WebAssembly module (bad magic number)",
    );
  }
  let prepared: Uint8Array;
  try {
    // A module whose minimum is above the limit keeps it; the worker reports that as OOMKilled.
    const capped =
      memoryLimitBytes === undefined
        ? bytes
        : withMemoryMaximum(bytes as Uint8Array<ArrayBuffer>, memoryLimitBytes);
    prepared = instrumentYieldPoints(capped);
  } catch (error) {
    throw runtimeError(
      "WASMLET_ERR_MODULE_INVALID",
      `the module is malformed: ${isWasmletError(error) ? error.message : String(error)}`,
      {
        cause: error,
      },
    );
  }
  try {
    return await WebAssembly.compile(prepared as Uint8Array<ArrayBuffer>);
  } catch (error) {
    throw runtimeError(
      "WASMLET_ERR_MODULE_INVALID",
      `the module does not compile: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}
