import { defineErrors } from "../errors.ts";

export const runtimeError = defineErrors({
  WASMLET_ERR_RUNTIME_NOT_STARTED: {
    description: "Runtime.run() was called before start() finished.",
  },
  WASMLET_ERR_RUNTIME_CLOSED: {
    description: "The runtime was closed or destroyed; it runs nothing more.",
  },
  WASMLET_ERR_INVALID_SPEC: {
    description: "A container or exec description is invalid (argv, env, mounts, limits, ids).",
  },
  WASMLET_ERR_DUPLICATE_CONTAINER: {
    description: "A container with this id is already running in this runtime.",
  },
  WASMLET_ERR_MODULE_INVALID: {
    description: "The WebAssembly module cannot be compiled or is not a core module.",
    hint: "build the image for wasm32-wasip1 and check the layer is a complete .wasm file",
  },
  WASMLET_ERR_MISSING_IMPORTS: {
    description: "The module imports functions wasmlet does not provide.",
    hint: "wasmlet provides wasi_snapshot_preview1 only; build for wasm32-wasip1",
  },
  WASMLET_ERR_MISSING_EXPORT: {
    description:
      "The module lacks its entrypoint export (default `_start`) or its `memory` export.",
  },
  WASMLET_ERR_INSTANTIATE: {
    description:
      "Instantiating the module failed (imports of the wrong type, start function trap).",
  },
  WASMLET_ERR_LISTEN: {
    description:
      "A container port could not be bound (the address is in use or not local); the container does not start.",
  },
  WASMLET_ERR_MOUNT: {
    description: "A mount's host directory does not exist or is not a directory.",
  },
  WASMLET_ERR_START_FAILED: {
    description: "The instance never ran its entrypoint; its exit status says why.",
  },
  WASMLET_ERR_NOT_RUNNING: {
    description:
      "The instance is not running (stdin write, exec) or its stdin is closed or absent.",
  },
  WASMLET_ERR_WORKER: {
    description: "A worker thread failed to start or crashed outside the guest.",
  },
  WASMLET_ERR_JSPI_UNAVAILABLE: {
    description:
      "This Node.js lacks WebAssembly JavaScript Promise Integration, which lets many guests share a thread.",
    hint: "run wasmlet on the Node.js version its package.json pins",
  },
  WASMLET_ERR_MODULE_NOT_INSTRUMENTED: {
    description:
      "A compiled module handed to the runtime lacks wasmlet's yield points, so it could hold a shared worker forever.",
    hint: "pass the module's bytes, or compile it with compileModule() (which adds them)",
  },
});
