import { defineErrors } from "../errors.ts";

export const wasmError = defineErrors({
  WASMLET_ERR_NOT_WASM: { description: "The bytes are not a WebAssembly binary (bad magic)." },
  WASMLET_ERR_WASM_COMPONENT: {
    description:
      "The binary is a WebAssembly component; wasmlet runs core modules (WASI preview1).",
    hint: "build for wasm32-wasip1 (a core module), not a component",
  },
  WASMLET_ERR_WASM_MALFORMED: { description: "The WebAssembly binary is truncated or malformed." },
  WASMLET_ERR_WASM_MEMORY_UNCAPPABLE: {
    description:
      "The module's linear memory cannot be held to the container's memory limit (custom page sizes, several memories whose maximums together exceed the limit, or memory limits wasmlet does not know), so it is refused rather than run uncapped.",
    hint: "build the module with one linear memory of standard 64 KiB pages (wasm32-wasip1 does)",
  },
  WASMLET_ERR_WASM_UNKNOWN_OPCODE: {
    description:
      "The module holds an instruction wasmlet cannot decode, so it cannot add yield points to it (a WebAssembly proposal wasmlet does not support yet, or a corrupt binary).",
    hint: "build the module for wasm32-wasip1 without experimental WebAssembly features",
  },
  WASMLET_ERR_WASM_ALREADY_INSTRUMENTED: {
    description:
      "The module imports wasmlet.yield itself: it already has yield points, or brings its own. wasmlet adds them to the original module only.",
    hint: "run the original module, not one rewritten by wasmlet",
  },
});
