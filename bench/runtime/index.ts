// Runtime benchmark: `node bench/runtime/index.ts [--quick]`. Prints one table. Not part of
// `npm test`: it starts a thousand guests and takes a couple of minutes.
//
// - first byte: run() until the guest's first stdout chunk reaches an attached listener, on the
//   shared workers; baseline: booting one worker thread until it answers (the floor of any
//   thread-per-container design, which wasmlet had before);
// - RSS per idle container: process RSS growth divided by the number of sleeping containers;
// - CPU with idle containers: the whole process's CPU time over 5 s while they sleep;
// - fairness: 100 guests logging every 10 ms on one worker, alone and beside a spinning guest;
//   how late their ticks come (from the log records' own timestamps);
// - compute: test/guests/cpuloop.c as wasm in the runtime vs the same file built with gcc -O2, also
//   in a child process started as `wasmlet run --eager-compile` starts (V8's optimizing tier only);
// - logs: a guest writing 100-byte lines as fast as it can, CRI records on disk, RSS sampled.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { rotatedLogFiles } from "../../src/logs/log-writer.ts";
import {
  type Container,
  type ContainerSpec,
  compileModule,
  Runtime,
} from "../../src/runtime/index.ts";
import { EAGER_COMPILE_FLAGS } from "../../src/wasm/eager-compile.ts";
import { buildGuest, type GuestName } from "../../test/support/guests.ts";

const quick = process.argv.includes("--quick");
/** `--first-instance ROUNDS`: print cpuloop's first-instance CPU ms as JSON and exit (a child). */
const firstInstanceOnly = process.argv.indexOf("--first-instance");
const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), "wasmlet-bench-"));
const rows: [string, string, string][] = [];
let counter = 0;

async function load(name: GuestName): Promise<WebAssembly.Module> {
  return compileModule(readFileSync(await buildGuest(name)));
}

function spec(
  fields: Partial<ContainerSpec> & Pick<ContainerSpec, "module" | "args">,
): ContainerSpec {
  const id = `b${++counter}`;
  return { id, env: {}, mounts: [], logPath: join(dir, "logs", `${id}.log`), ...fields };
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function firstByte(runtime: Runtime, module: WebAssembly.Module): Promise<number> {
  const t0 = performance.now();
  let first = 0;
  const container = runtime.run(spec({ module, args: ["hello"] }));
  const seen = new Promise<void>((resolve) =>
    container.onOutput(() => {
      first ||= performance.now() - t0;
      resolve();
    }),
  );
  await seen;
  await container.exited;
  return first;
}

/** Boot of one bare worker thread until its first message: the old per-container floor. */
async function workerBoot(): Promise<number> {
  const t0 = performance.now();
  const worker = new Worker("require('node:worker_threads').parentPort.postMessage(1)", {
    eval: true,
  });
  await new Promise((resolve) => worker.once("message", resolve));
  const ms = performance.now() - t0;
  await worker.terminate();
  return ms;
}

async function benchFirstByte(hello: WebAssembly.Module): Promise<void> {
  const runtime = new Runtime();
  await runtime.start();
  await firstByte(runtime, hello);
  const times: number[] = [];
  const boots: number[] = [];
  for (let i = 0; i < (quick ? 20 : 60); i++) {
    await sleep(20); // as between real pod starts
    times.push(await firstByte(runtime, hello));
    if (i % 4 === 0) boots.push(await workerBoot());
  }
  await runtime.destroy();
  const ms = median(times);
  const boot = median(boots);
  rows.push([
    "run() → first stdout byte, shared workers",
    `${ms.toFixed(2)} ms`,
    `median; ${(ms / boot).toFixed(3)}× one bare worker's boot (${boot.toFixed(1)} ms); ≤ 2 ms target`,
  ]);
}

/** CPU of the whole process over 5 s, as a share of one core. */
async function cpuShare(): Promise<number> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(5000);
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / 1000 / (performance.now() - t0);
}

async function benchWakeups(ticker: WebAssembly.Module): Promise<void> {
  const runtime = new Runtime();
  await runtime.start();
  const containers: Container[] = [];
  for (let i = 0; i < 100; i++) {
    containers.push(
      runtime.run(spec({ module: ticker, args: ["ticker"], env: { TICK_MS: "100" } })),
    );
  }
  await Promise.all(containers.map((c) => c.started));
  await sleep(1000);
  const share = await cpuShare();
  await runtime.destroy();
  rows.push([
    "CPU, 100 containers logging 10 lines/s each",
    `${(share * 100).toFixed(1)} % of a core`,
    `${((share * 1e6) / 1000).toFixed(0)} µs CPU per wake-up + log line`,
  ]);
}

async function benchIdle(
  ticker: WebAssembly.Module,
  count: number,
  measureCpu: boolean,
): Promise<void> {
  const runtime = new Runtime();
  await runtime.start();
  await sleep(500);
  const before = process.memoryUsage().rss;
  const containers: Container[] = [];
  for (let i = 0; i < count; i++) {
    containers.push(
      runtime.run(
        // One line at start, then asleep (nanosleep → poll_oneoff → Atomics.wait) for a minute.
        spec({ module: ticker, args: ["ticker"], env: { TICK_MS: "60000" } }),
      ),
    );
  }
  await Promise.all(containers.map((c) => c.started));
  await sleep(3000);
  const after = process.memoryUsage().rss;
  rows.push([
    `RSS per idle container (${count} running)`,
    `${((after - before) / count / MiB).toFixed(3)} MiB`,
    `${(after / MiB).toFixed(0)} MiB total, ${(before / MiB).toFixed(0)} MiB empty; ≤ 1 MiB target`,
  ]);
  if (measureCpu) {
    const share = await cpuShare();
    rows.push([
      `CPU with ${count} idle sleeping containers`,
      `${(share * 100).toFixed(1)} % of a core`,
      "whole process, ≤ 5 % target",
    ]);
  }
  await runtime.destroy();
}

/** Lateness (ms) of 10 ms ticks, from consecutive log records' timestamps. */
function lateness(logPath: string): number[] {
  const stamps = readFileSync(logPath, "utf8")
    .trim()
    .split("\n")
    .map((line) => {
      const [time] = line.split(" ");
      const ns = BigInt(time!.slice(19, -1).padEnd(10, "0").slice(1, 10) || "0");
      return new Date(time!).getTime() + Number(ns % 1_000_000n) / 1e6;
    });
  const out: number[] = [];
  for (let i = 2; i < stamps.length; i++) out.push(stamps[i]! - stamps[i - 1]! - 10);
  return out;
}

async function benchFairness(ticker: WebAssembly.Module, cpuloop: WebAssembly.Module) {
  const round = async (withSpinner: boolean): Promise<number[]> => {
    const runtime = new Runtime({ workers: 1 });
    await runtime.start();
    const sleepers = Array.from({ length: 100 }, () =>
      runtime.run(spec({ module: ticker, args: ["t"], env: { TICK_MS: "10" } })),
    );
    const spinner = withSpinner
      ? runtime.run(spec({ module: cpuloop, args: ["spin"] }))
      : undefined;
    await Promise.all(sleepers.map((c) => c.started));
    await sleep(quick ? 2000 : 5000);
    await Promise.all([...sleepers, ...(spinner ? [spinner] : [])].map((c) => c.stop(0)));
    await runtime.destroy();
    return sleepers.flatMap((c) => lateness(c.spec.logPath)).sort((a, b) => a - b);
  };
  const p99 = (values: number[]) => values[Math.floor(values.length * 0.99)]!;
  const alone = await round(false);
  const beside = await round(true);
  rows.push([
    "fairness: 100 sleepers (10 ms ticks) + a spinner, one worker",
    `${p99(beside).toFixed(1)} ms late p99`,
    `alone ${p99(alone).toFixed(1)} ms p99; p50 ${beside[beside.length >> 1]!.toFixed(1)} vs ${alone[alone.length >> 1]!.toFixed(1)} ms; ≤ 20 ms target`,
  ]);
}

/** CPU seconds of a native run (bash's `time`), so other load on the machine does not count. */
function nativeCpuMs(binary: string, rounds: string): { ms: number; output: string } {
  const script = `TIMEFORMAT='%3U %3S'; { time "${binary}" ${rounds} ; } 2>&1`;
  const lines = execFileSync("bash", ["-c", script]).toString().trim().split("\n");
  const [user, system] = lines.pop()!.split(" ").map(Number);
  return { ms: (user! + system!) * 1000, output: lines.join("\n") };
}

async function benchCompute(cpuloop: WebAssembly.Module): Promise<void> {
  const native = join(dir, "cpuloop-native");
  execFileSync("gcc", [
    "-O2",
    "-o",
    native,
    new URL("../../test/guests/cpuloop.c", import.meta.url).pathname,
  ]);
  const rounds = quick ? "100" : "400";
  const runtime = new Runtime();
  await runtime.start();
  const wasm: number[] = [];
  for (let i = 0; i < 2; i++) {
    const container = runtime.run(spec({ module: cpuloop, args: ["cpuloop", rounds] }));
    await container.exited;
    const cpu = await container.cpuUsage();
    wasm.push((cpu.user + cpu.system) / 1000);
    const output = readFileSync(container.spec.logPath, "utf8").trim().split(" F ")[1];
    const reference = nativeCpuMs(native, rounds);
    if (output !== reference.output)
      throw new Error(`checksums differ: ${output} vs ${reference.output}`);
  }
  await runtime.destroy();
  const eager = JSON.parse(
    execFileSync(
      process.execPath,
      [...EAGER_COMPILE_FLAGS, new URL(import.meta.url).pathname, "--first-instance", rounds],
      { encoding: "utf8" },
    ),
  ) as { ms: number };
  const nativeMs = median([0, 1, 2].map(() => nativeCpuMs(native, rounds).ms));
  rows.push([
    "compute, cpuloop.c wasm (yield points in) / gcc -O2, 1st instance",
    `${(wasm[0]! / nativeMs).toFixed(2)}×`,
    `${wasm[0]!.toFixed(0)} vs ${nativeMs.toFixed(0)} ms CPU; main's loop stays in Liftoff code`,
  ]);
  rows.push([
    "compute, same module, 2nd instance",
    `${(wasm[1]! / nativeMs).toFixed(2)}×`,
    `${wasm[1]!.toFixed(0)} ms CPU; TurboFan code shared by the module; ≤ 1.25× target`,
  ]);
  rows.push([
    "compute, 1st instance with --eager-compile",
    `${(eager.ms / nativeMs).toFixed(2)}×`,
    `${eager.ms.toFixed(0)} ms CPU; every function optimized before the run; ≤ 1.25× target`,
  ]);
}

/** The child of benchCompute: cpuloop's first instance in a process with the eager flags. */
async function firstInstance(rounds: string): Promise<void> {
  const runtime = new Runtime({ workers: 1 });
  await runtime.start();
  const container = runtime.run(spec({ module: await load("cpuloop"), args: ["cpuloop", rounds] }));
  await container.exited;
  const cpu = await container.cpuUsage();
  await runtime.destroy();
  rmSync(dir, { recursive: true, force: true });
  console.log(JSON.stringify({ ms: (cpu.user + cpu.system) / 1000 }));
}

async function benchLogs(flood: WebAssembly.Module): Promise<void> {
  const runtime = new Runtime();
  await runtime.start();
  const lines = quick ? 500_000 : 2_000_000;
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  }, 20);
  const container = runtime.run(
    spec({
      module: flood,
      args: ["flood"],
      env: { LINES: String(lines), SIZE: "100" },
      logRotation: { maxBytes: 10 * MiB, maxFiles: 5 },
    }),
  );
  const startedAt = await container.started;
  const status = await container.exited;
  clearInterval(sampler);
  const seconds = (status.finishedAt.getTime() - startedAt.getTime()) / 1000;
  const files = [
    container.spec.logPath,
    ...rotatedLogFiles(container.spec.logPath).map((f) => f.path),
  ];
  const kept = files.reduce((sum, f) => sum + statSync(f).size, 0);
  await runtime.destroy();
  rows.push([
    "log throughput (100-byte lines, CRI on disk)",
    `${Math.round(lines / seconds).toLocaleString("en")} lines/s`,
    `${((lines * 100) / MiB / seconds).toFixed(1)} MiB/s of output`,
  ]);
  rows.push([
    "  memory while flooding",
    `+${((rssPeak - rssBefore) / MiB).toFixed(1)} MiB RSS peak`,
    `${(kept / MiB).toFixed(1)} MiB kept on disk in ${files.length} files (10 MiB × 5)`,
  ]);
}

if (firstInstanceOnly > 0) {
  await firstInstance(process.argv[firstInstanceOnly + 1]!);
  process.exit(0);
}
const [hello, ticker, cpuloop, flood] = await Promise.all([
  load("hello"),
  load("ticker"),
  load("cpuloop"),
  load("flood"),
]);
try {
  await benchFirstByte(hello);
  await benchCompute(cpuloop);
  await benchLogs(flood);
  await benchIdle(ticker, 100, false);
  await benchIdle(ticker, quick ? 500 : 1000, true);
  await benchWakeups(ticker);
  await benchFairness(ticker, cpuloop);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const widths = [0, 1, 2].map((i) =>
  Math.max(...rows.map((r) => r[i]!.length), ["what", "result", "notes"][i]!.length),
);
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
console.log(line(["what", "result", "notes"]));
console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
for (const row of rows) console.log(line(row));
console.log(`\nNode ${process.version}, ${(await import("node:os")).cpus().length} CPUs`);
