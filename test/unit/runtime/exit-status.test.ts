import assert from "node:assert/strict";
import { test } from "node:test";
import {
  atMemoryLimit,
  type ExitFacts,
  exitStatus,
  nearMemoryLimit,
} from "../../../src/runtime/exit-status.ts";

const MiB = 1024 * 1024;
const startedAt = new Date(1_700_000_000_000);
const finishedAt = new Date(1_700_000_001_000);
const facts = (more: Partial<ExitFacts>): ExitFacts => ({
  outcome: undefined,
  killed: undefined,
  crash: undefined,
  memoryBytes: 2 * MiB,
  memoryLimitBytes: 64 * MiB,
  startedAt,
  finishedAt,
  ...more,
});

test("exit statuses follow the kubelet: codes, reasons, signals and messages", () => {
  const table: [Partial<ExitFacts>, [number, string, string | undefined, number | undefined]][] = [
    [{ outcome: { kind: "exit", code: 0 } }, [0, "Completed", undefined, undefined]],
    [{ outcome: { kind: "exit", code: 256 } }, [0, "Completed", undefined, undefined]],
    [{ outcome: { kind: "exit", code: 3 } }, [3, "Error", "exited with code 3", undefined]],
    [{ outcome: { kind: "stopped", signal: 15 } }, [143, "Error", "stopped on request", 15]],
    [{ outcome: { kind: "stopped", signal: 9 } }, [137, "Error", "killed on request", 9]],
    [
      { outcome: { kind: "trap", message: "unreachable executed", functionName: "abort" } },
      [134, "Error", "wasm trap: unreachable executed in function abort", undefined],
    ],
    [
      { outcome: { kind: "trap", message: "divide by zero" } },
      [134, "Error", "wasm trap: divide by zero", undefined],
    ],
    [
      {
        outcome: {
          kind: "start-failed",
          error: { code: "X", message: "no _start", hint: "build a command" },
        },
      },
      [128, "StartError", "no _start (build a command)", undefined],
    ],
    [
      { outcome: { kind: "memory-limit", message: "grew past" } },
      [137, "OOMKilled", "grew past", undefined],
    ],
    [
      { killed: { kind: "grace", gracePeriodMs: 30000 } },
      [137, "Error", "killed: still running 30000 ms after the stop request", 9],
    ],
    [
      { killed: { kind: "deadline", deadlineMs: 5000 } },
      [137, "DeadlineExceeded", "killed: ran past its deadline of 5000 ms", 9],
    ],
    [
      { killed: { kind: "deadline", deadlineMs: 5000 }, outcome: { kind: "stopped", signal: 9 } },
      [137, "DeadlineExceeded", "killed: ran past its deadline of 5000 ms", 9],
    ],
    [{ crash: { message: "boom" } }, [137, "Error", "the worker thread crashed: boom", undefined]],
    [
      { crash: { message: "heap", code: "ERR_WORKER_OUT_OF_MEMORY" } },
      [137, "OOMKilled", "the worker thread ran out of memory: heap", undefined],
    ],
  ];
  for (const [input, [exitCode, reason, message, signal]] of table) {
    const status = exitStatus(facts(input));
    assert.deepEqual(
      [status.exitCode, status.reason, status.message, status.signal],
      [exitCode, reason, message, signal],
      JSON.stringify(input),
    );
    assert.equal(status.startedAt, startedAt);
    assert.equal(status.finishedAt, finishedAt);
  }
});

test("an abnormal end near the memory limit is OOMKilled; a clean exit there is not", () => {
  const near = { memoryBytes: 63 * MiB };
  assert.equal(
    exitStatus(facts({ ...near, outcome: { kind: "trap", message: "unreachable executed" } }))
      .reason,
    "OOMKilled",
  );
  assert.equal(exitStatus(facts({ ...near, outcome: { kind: "exit", code: 2 } })).exitCode, 137);
  assert.equal(
    exitStatus(facts({ ...near, outcome: { kind: "exit", code: 0 } })).reason,
    "Completed",
  );
  assert.equal(
    exitStatus(facts({ ...near, memoryLimitBytes: undefined, outcome: { kind: "exit", code: 2 } }))
      .reason,
    "Error",
  );
  assert.equal(nearMemoryLimit(55 * MiB, 64 * MiB), false);
  assert.equal(nearMemoryLimit(56 * MiB, 64 * MiB), true);
  assert.equal(nearMemoryLimit(12 * MiB, 16 * MiB), true);
  assert.equal(nearMemoryLimit(11 * MiB, 16 * MiB), false);
  assert.equal(nearMemoryLimit(1, undefined), false);
});

test("a guest that ends badly with its memory at the limit is told so, naming the limit", () => {
  const page = 64 * 1024;
  const grew = "after its memory reached the limit of 64 MiB (a further memory.grow is refused)";
  const full = { memoryBytes: 64 * MiB };
  const table: [Partial<ExitFacts>, [number, string, string | undefined, number | undefined]][] = [
    // At the limit: the message names it; the reason stays what the existing rule gives (near the
    // limit is OOMKilled, exit 137).
    [
      { ...full, outcome: { kind: "exit", code: 42 } },
      [137, "OOMKilled", `exited with code 42 ${grew}`, undefined],
    ],
    [
      {
        ...full,
        outcome: { kind: "trap", message: "unreachable executed", functionName: "abort" },
      },
      [137, "OOMKilled", `wasm trap: unreachable executed in function abort ${grew}`, undefined],
    ],
    // One page below the limit a further grow of a page would still succeed: unchanged.
    [
      { memoryBytes: 64 * MiB - page, outcome: { kind: "exit", code: 42 } },
      [
        137,
        "OOMKilled",
        "out of memory: exited with code 42, with 63.9 MiB of its 64.0 MiB limit in use",
        undefined,
      ],
    ],
    // A limit that is not whole pages: the cap is rounded down, and that is the limit reached.
    [
      {
        memoryBytes: 1525 * page,
        memoryLimitBytes: 100_000_000,
        outcome: { kind: "exit", code: 3 },
      },
      [
        137,
        "OOMKilled",
        "exited with code 3 after its memory reached the limit of 95.4 MiB (a further memory.grow is refused)",
        undefined,
      ],
    ],
    [
      { memoryBytes: 1024 * MiB, memoryLimitBytes: 1024 * MiB, outcome: { kind: "exit", code: 1 } },
      [
        137,
        "OOMKilled",
        "exited with code 1 after its memory reached the limit of 1 GiB (a further memory.grow is refused)",
        undefined,
      ],
    ],
    // A limit so small that the existing rule does not call the end OOMKilled: a voluntary exit
    // keeps reason Error and its own code, and the message still names the limit.
    [
      { memoryBytes: page, memoryLimitBytes: 100 * 1024, outcome: { kind: "exit", code: 42 } },
      [
        42,
        "Error",
        "exited with code 42 after its memory reached the limit of 100 KiB (a further memory.grow is refused)",
        undefined,
      ],
    ],
    // Unchanged: a clean exit, a kill, a stop, the worker's own memory-limit verdict, a crash,
    // no limit at all, and a guest with no memory.
    [{ ...full, outcome: { kind: "exit", code: 0 } }, [0, "Completed", undefined, undefined]],
    [
      { ...full, killed: { kind: "grace", gracePeriodMs: 30000 } },
      [137, "Error", "killed: still running 30000 ms after the stop request", 9],
    ],
    [
      { ...full, outcome: { kind: "stopped", signal: 15 } },
      [143, "Error", "stopped on request", 15],
    ],
    [
      { ...full, outcome: { kind: "memory-limit", message: "grew past" } },
      [137, "OOMKilled", "grew past", undefined],
    ],
    [
      { ...full, crash: { message: "boom" } },
      [137, "Error", "the worker thread crashed: boom", undefined],
    ],
    [
      { ...full, memoryLimitBytes: undefined, outcome: { kind: "exit", code: 42 } },
      [42, "Error", "exited with code 42", undefined],
    ],
    [
      { memoryBytes: 0, memoryLimitBytes: 1000, outcome: { kind: "exit", code: 42 } },
      [42, "Error", "exited with code 42", undefined],
    ],
  ];
  for (const [input, [exitCode, reason, message, signal]] of table) {
    const status = exitStatus(facts(input));
    assert.deepEqual(
      [status.exitCode, status.reason, status.message, status.signal],
      [exitCode, reason, message, signal],
      JSON.stringify(input),
    );
  }
  assert.equal(atMemoryLimit(64 * MiB, 64 * MiB), true);
  assert.equal(atMemoryLimit(64 * MiB - page, 64 * MiB), false);
  assert.equal(atMemoryLimit(64 * MiB - page, 64 * MiB - 1), true);
  assert.equal(atMemoryLimit(64 * MiB, undefined), false);
  assert.equal(atMemoryLimit(0, 1000), false);
});
