// A worker thread shared by many guests. Each `run` message starts one instance; its blocking WASI
// calls and its yield points suspend only its own stack (JSPI), so the thread goes on running the
// others. Guest code never reaches the host thread: traps, exits and stop requests end here and
// cross as an Outcome.
import { realpathSync, statSync } from "node:fs";
import { enableCompileCache } from "node:module";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { parentPort, workerData } from "node:worker_threads";
import { isWasmletError } from "../errors.ts";
import { YIELD_IMPORT } from "../wasm/yield-points.ts";
import { privateTempDir } from "./private-dir.ts";
import type { HostToWorker, Outcome, RunMessage, WorkerToHost } from "./protocol.ts";
import { toWireError } from "./protocol.ts";
import type { WorkerData } from "./worker-pool.ts";

// Every worker loads the same modules: V8's code cache on disk saves compiling them each time
// (about a tenth of a worker's boot here). Modules imported below this line use it.
enableCompileCache(privateTempDir("wasmlet-compile-cache"));
const { GuestControl, StopRequested } = await import("./control.ts");
const { GuestClock } = await import("./guest-clock.ts");
const { createGuestOutput } = await import("./guest-output.ts");
const { GuestExit, WasiHost } = await import("./wasi-host.ts");
const { runtimeError } = await import("./errors.ts");
const { checkModule } = await import("./module-check.ts");
const { promising, suspending } = await import("./jspi.ts");
const { DescriptorBudget } = await import("./descriptor-budget.ts");
const { openGuestNetwork } = await import("./guest-network.ts");

/** Shared with every worker: the host descriptors all guests may hold together. */
const descriptors = new DescriptorBudget((workerData as WorkerData).descriptors);
/**
 * A full garbage collection of this worker's heap. V8 frees a finished guest's linear memory only
 * when it collects, and an idle worker allocates too little to trigger that: measured, eight guests
 * that each touched 32 MiB left the process 260 MiB larger, for good. So a worker collects soon
 * after guests with large memories end (the pause is a few milliseconds: guests' memories are not
 * scanned). The same holds for what guests with small memories leave, which never adds up to the
 * bytes that trigger it: their memories, JSPI stacks and wrappers. Measured under churn (200
 * toolbox pods a cycle, bench/churn), the idle workers kept every ended guest's stack and 8 MiB
 * more heap pages after the pods were gone: 10 to 20 MiB of RSS until later guests made them
 * collect. So a worker that has no guest left collects too, shortly after its last one ends.
 */
setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;
/** Linear memory of guests that ended since the last collection. */
let endedBytes = 0;
let collecting: NodeJS.Timeout | undefined;
/** Instances on this worker that have not ended. */
let running = 0;
const COLLECT_AFTER_BYTES = 16 * 1024 * 1024;
/** A worker left idle collects after this long (a burst of exits ends first). */
const IDLE_COLLECT_MS = 500;

function released(bytes: number): void {
  endedBytes += bytes;
  if (collecting) return;
  if (endedBytes < COLLECT_AFTER_BYTES && running > 0) return;
  collecting = setTimeout(
    () => {
      collecting = undefined;
      endedBytes = 0;
      collectGarbage();
    },
    endedBytes < COLLECT_AFTER_BYTES ? IDLE_COLLECT_MS : 100,
  );
}

/** Memory size of every live instance, by memory group (a container and its execs). */
const memoryGroups = new Map<string, Set<() => number>>();

function groupMemoryBytes(group: string): number {
  let total = 0;
  for (const size of memoryGroups.get(group) ?? []) total += size();
  return total;
}

const port = parentPort!;
const post = (message: WorkerToHost, transfer: ArrayBuffer[] = []) =>
  port.postMessage(message, transfer);

const TRAP_MESSAGES: Record<string, string> = {
  unreachable: "unreachable executed",
};

function trapOutcome(error: Error): Outcome {
  const stack = error.stack ?? "";
  const named = /^\s*at (\S+) \(wasm:\/\/wasm\//m.exec(stack);
  const numbered = /wasm-function\[(\d+)\]/.exec(stack);
  const functionName = named?.[1] ?? (numbered ? `function #${numbered[1]}` : undefined);
  let message = TRAP_MESSAGES[error.message] ?? error.message;
  if (error instanceof RangeError && /call stack/i.test(error.message))
    message = "call stack exhausted";
  return functionName === undefined
    ? { kind: "trap", message }
    : { kind: "trap", message, functionName };
}

function outcomeOf(error: unknown, started: boolean): Outcome {
  if (error instanceof GuestExit) return error.outcome;
  if (error instanceof StopRequested) return { kind: "stopped", signal: error.signal };
  if (!started) {
    if (isWasmletError(error)) return { kind: "start-failed", error: toWireError(error) };
    const detail = error instanceof Error ? error.message : String(error);
    return {
      kind: "start-failed",
      error: toWireError(
        runtimeError("WASMLET_ERR_INSTANTIATE", `instantiating the module failed: ${detail}`),
      ),
    };
  }
  if (error instanceof WebAssembly.RuntimeError || error instanceof RangeError)
    return trapOutcome(error);
  return {
    kind: "trap",
    message: `guest ended by an error in wasmlet: ${(error as Error)?.message ?? error}`,
  };
}

function resolveMounts(message: RunMessage) {
  return message.mounts.map((mount) => {
    let root: string;
    try {
      root = realpathSync.native(mount.hostPath);
      if (!statSync(root).isDirectory()) throw new Error("not a directory");
    } catch (error) {
      throw runtimeError(
        "WASMLET_ERR_MOUNT",
        `mount ${mount.guestPath}: host directory ${mount.hostPath} is unusable: ${(error as Error).message}`,
      );
    }
    return { guestPath: mount.guestPath, root, readOnly: mount.readOnly };
  });
}

async function run(message: RunMessage): Promise<void> {
  const { instanceId } = message;
  const control = new GuestControl(message.control, message.stdinRing);
  const clock = new GuestClock(control, message.cpuLimitMillis);
  let started = false;
  let outcome: Outcome;
  let output: ReturnType<typeof createGuestOutput> | undefined;
  let host: InstanceType<typeof WasiHost> | undefined;
  let network: Awaited<ReturnType<typeof openGuestNetwork>> | undefined;
  const memorySize = () => host?.memoryBytes() ?? 0;
  running++;
  try {
    const mounts = resolveMounts(message);
    checkModule(message.module, message.entrypoint);
    network = await openGuestNetwork(message, mounts.length, {
      wake: () => control.ring(),
      descriptors,
      onRefused: (text) => post({ type: "warning", instanceId, message: text }),
    });
    output = createGuestOutput(message.output, instanceId, control, post, (bell, ms) =>
      clock.wait(bell, ms),
    );
    const wasi = new WasiHost({
      args: message.args,
      env: { ...message.env, ...network?.env },
      mounts,
      network,
      control,
      clock,
      output,
      descriptors,
      memoryLimitBytes: message.memoryLimitBytes,
      memoryGroupBytes: () => groupMemoryBytes(message.memoryGroup),
      onWarning: (text) => post({ type: "warning", instanceId, message: text }),
    });
    host = wasi;
    const group = memoryGroups.get(message.memoryGroup) ?? new Set();
    memoryGroups.set(message.memoryGroup, group);
    group.add(memorySize);
    const yieldPoint = () => {
      wasi.checkMemory();
      return clock.yieldPoint();
    };
    const instance = new WebAssembly.Instance(message.module, {
      wasi_snapshot_preview1: host.imports(),
      [YIELD_IMPORT.module]: { [YIELD_IMPORT.name]: suspending(yieldPoint) },
    } as WebAssembly.Imports);
    const exports = instance.exports;
    const memory = exports.memory as WebAssembly.Memory;
    host.bind(memory);
    const limit = message.memoryLimitBytes;
    if (limit !== undefined && memory.buffer.byteLength > limit) {
      throw new GuestExit({
        kind: "memory-limit",
        message: `the module's initial memory (${memory.buffer.byteLength} bytes) is above the limit of ${limit}`,
      });
    }
    control.checkStop();
    started = true;
    post({ type: "started", instanceId, startedAt: performance.timeOrigin + performance.now() });
    clock.run();
    if (message.entrypoint !== "_start" && typeof exports._initialize === "function") {
      await promising(exports._initialize as () => void)();
    }
    await promising(exports[message.entrypoint] as () => unknown)();
    outcome = { kind: "exit", code: 0 };
  } catch (error) {
    outcome = outcomeOf(error, started);
  }
  clock.pause();
  const group = memoryGroups.get(message.memoryGroup);
  group?.delete(memorySize);
  if (group?.size === 0) memoryGroups.delete(message.memoryGroup);
  try {
    output?.close();
  } catch {}
  try {
    if (host) host.close();
    else for (const listener of network?.listeners ?? []) listener.close();
  } catch {}
  const memoryBytes = host?.memoryBytes() ?? 0;
  post({
    type: "exited",
    instanceId,
    outcome,
    finishedAt: performance.timeOrigin + performance.now(),
    memoryBytes,
  });
  running--;
  released(memoryBytes);
}

port.on("message", (message: HostToWorker) => {
  if (message.type === "run") void run(message);
  else if (message.type === "shutdown") port.close();
});
post({ type: "ready" });
