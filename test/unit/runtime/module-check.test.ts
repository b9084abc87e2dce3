import assert from "node:assert/strict";
import { test } from "node:test";
import {
  checkModule,
  compileModule,
  missingImports,
  SUPPORTED_IMPORTS,
} from "../../../src/runtime/index.ts";
import { WASI_FUNCTIONS } from "../../../src/runtime/wasi-abi.ts";
import { SOCKET_EXTENSION_FUNCTIONS } from "../../../src/runtime/wasmedge-sockets.ts";
import { memoryLimits } from "../../../src/wasm/binary.ts";
import { guest, guestBytes } from "./helpers.ts";

test("SUPPORTED_IMPORTS lists the 46 preview1 functions (node:wasi's) and the WasmEdge socket extension's 11", async () => {
  const names = SUPPORTED_IMPORTS.wasi_snapshot_preview1!;
  assert.equal(names.length, 46 + 11);
  const { WASI } = await import("node:wasi");
  const node = Object.keys(new WASI({ version: "preview1" }).wasiImport).sort();
  assert.deepEqual(Object.keys(WASI_FUNCTIONS).sort(), node);
  assert.deepEqual([...names].sort(), [...node, ...SOCKET_EXTENSION_FUNCTIONS].sort());
});

test("real guests need nothing the runtime lacks; checkModule accepts them", async () => {
  for (const name of ["hello", "fsprobe", "hello-go", "http-go", "fetch-go", "c-server"] as const) {
    const module = await guest(name);
    assert.deepEqual(missingImports(module), []);
    checkModule(module, "_start");
  }
  const hello = await guest("hello");
  assert.throws(() => checkModule(hello, "main"), { code: "WASMLET_ERR_MISSING_EXPORT" });
  // Compiled without yield points, a module could hold a shared worker forever: refused.
  const plain = await WebAssembly.compile(await guestBytes("hello"));
  assert.throws(() => checkModule(plain, "_start"), {
    code: "WASMLET_ERR_MODULE_NOT_INSTRUMENTED",
  });
});

test("compileModule caps memory at the limit and reports bad bytes with WASMLET_ERR_MODULE_INVALID", async () => {
  const bytes = await guestBytes("hello");
  assert.notEqual(memoryLimits(bytes)?.maxPages, 32);
  const module = await compileModule(bytes, 2 * 1024 * 1024);
  const instance = new WebAssembly.Instance(module, {
    wasi_snapshot_preview1: Object.fromEntries(
      Object.keys(WASI_FUNCTIONS).map((n) => [n, () => 0]),
    ),
    wasmlet: { yield: () => 1000 },
  });
  const memory = instance.exports.memory as WebAssembly.Memory;
  const pages = memory.buffer.byteLength / 65536;
  assert.throws(() => memory.grow(32 - pages + 1), RangeError, "cannot grow past 2 MiB");
  await assert.rejects(compileModule(new Uint8Array([1, 2, 3])), {
    code: "WASMLET_ERR_MODULE_INVALID",
  });
  await assert.rejects(compileModule(bytes.subarray(0, 100)), {
    code: "WASMLET_ERR_MODULE_INVALID",
  });
});
