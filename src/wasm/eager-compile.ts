// The node-wide opt-in `--eager-compile`: every module is compiled with V8's optimizing tier
// (TurboFan) before its first instance, instead of V8's default — a function compiled by the
// baseline tier (Liftoff) at its first call, hot ones optimized later in the background. wasm has
// no on-stack replacement in V8, so a loop entered in baseline code stays there: a CPU-bound
// guest's first instance runs ~1.2–1.5× slower than native code, later ones at native speed.
//
// V8's tiers are process-wide flags. They are set once, at start, before anything is compiled:
// flipping them around one compile while other modules run was tried and crashed V8 (a failed
// CHECK on Liftoff's feedback vectors, Node 26.10), so there is no per-pod switch.
import v8 from "node:v8";

export const EAGER_COMPILE_FLAGS = ["--no-liftoff", "--no-wasm-lazy-compilation"] as const;

/** Call before the process compiles any module; workers share the process's flags. */
export function enableEagerCompile(): void {
  for (const flag of EAGER_COMPILE_FLAGS) v8.setFlagsFromString(flag);
}
