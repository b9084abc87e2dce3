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
});
