import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { before, test } from "node:test";
import {
  memoryLimits,
  WASM_PAGE_BYTES,
  wasmKind,
  withMemoryMaximum,
} from "../../../src/wasm/binary.ts";
import { buildGuest } from "../../support/guests.ts";

let hello: Uint8Array<ArrayBuffer>;
before(async () => {
  hello = await readFile(await buildGuest("hello"));
});

// (module (memory 1 4)) and (module (import "env" "memory" (memory 2)))
const definedMemory = Uint8Array.from([0, 97, 115, 109, 1, 0, 0, 0, 5, 4, 1, 1, 1, 4]);
const importedMemory = Uint8Array.from([
  0, 97, 115, 109, 1, 0, 0, 0, 2, 15, 1, 3, 101, 110, 118, 6, 109, 101, 109, 111, 114, 121, 2, 0, 2,
]);

test("wasmKind tells modules, components and other bytes apart", () => {
  assert.equal(wasmKind(hello), "module");
  assert.equal(wasmKind(Uint8Array.from([0, 97, 115, 109, 0x0d, 0, 1, 0])), "component");
  assert.equal(wasmKind(new TextEncoder().encode("#!/bin/sh\necho hi\n")), "not-wasm");
  assert.equal(wasmKind(Uint8Array.from([0, 97, 115])), "not-wasm");
});

test("an unbounded memory gets the cap as its maximum and still compiles", () => {
  assert.equal(memoryLimits(hello)?.maxPages, undefined);
  const capped = withMemoryMaximum(hello, 64 * 1024 * 1024);
  assert.equal(memoryLimits(capped)?.maxPages, 1024);
  assert.equal(memoryLimits(capped)?.minPages, memoryLimits(hello)?.minPages);
  assert.ok(WebAssembly.validate(capped));
});

test("a lower declared maximum is kept; a cap below the minimum is raised to the minimum", () => {
  assert.equal(withMemoryMaximum(definedMemory, 100 * WASM_PAGE_BYTES), definedMemory);
  const lowered = withMemoryMaximum(definedMemory, 2 * WASM_PAGE_BYTES);
  assert.deepEqual(memoryLimits(lowered), {
    minPages: 1,
    maxPages: 2,
    pageBytes: WASM_PAGE_BYTES,
    shared: false,
    memory64: false,
    imported: false,
  });
  assert.equal(memoryLimits(withMemoryMaximum(definedMemory, 1000))?.maxPages, 1);
  assert.ok(WebAssembly.validate(lowered));
});

test("an imported memory is capped too", () => {
  const capped = withMemoryMaximum(importedMemory, 3 * WASM_PAGE_BYTES);
  assert.deepEqual(memoryLimits(capped), {
    minPages: 2,
    maxPages: 3,
    pageBytes: WASM_PAGE_BYTES,
    shared: false,
    memory64: false,
    imported: true,
  });
  assert.ok(WebAssembly.validate(capped));
});

test("components, truncated modules and non-wasm bytes are refused with their own codes", () => {
  assert.throws(
    () => withMemoryMaximum(Uint8Array.from([0, 97, 115, 109, 0x0d, 0, 1, 0]), 1 << 20),
    {
      code: "WASMLET_ERR_WASM_COMPONENT",
    },
  );
  assert.throws(() => withMemoryMaximum(hello.subarray(0, hello.length - 100), 1 << 20), {
    code: "WASMLET_ERR_WASM_MALFORMED",
  });
  assert.throws(() => withMemoryMaximum(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]), 1 << 20), {
    code: "WASMLET_ERR_NOT_WASM",
  });
});
