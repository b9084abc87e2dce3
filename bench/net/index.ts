// Network benchmark: `node bench/net/index.ts [--quick] [--no-pin] [--profile DIR]`. Prints one
// table. Not part of `npm test`. Every server runs twice, as wasm in wasmlet's Runtime (its port
// pre-opened, as a pod's containerPorts are) and natively, built from the same source, and each
// figure is compared with the native one of the same load in the same run (wasm/native):
//
// - HTTP keep-alive: test/guests/http-go (Go net/http; natively `go build` for linux/amd64),
//   `GET /` (a 17-byte body) on 16 and on 64 connections, one request in flight on each:
//   requests/s, p99 and p50 latency;
// - bulk: the same server, `POST /echo` of 8 MiB bodies on 4 connections: MiB/s echoed (body
//   bytes received back per second);
// - connections: test/guests/c-server.c (HTTP/1.0 with blocking accept/recv/send, a connection
//   per request) on 16 connections: connections/s and latency from connect to the server's close;
//   natively the same file built with gcc -O2;
// - echo: test/guests/toolbox.c's poll() echo server, 64-byte round trips on 64 connections:
//   round trips/s and latency; natively gcc -O2.
// Targets (the issue's): throughput ≥ 0.50× native, p99 latency ≤ 2× native.
// The notes give, wasm vs native: the server's CPU time per operation (per MiB for bulk) and
// native's CPU/op over wasm's (the throughput ratio to expect were both CPU-bound), how busy each
// server kept its core (well under 100 %: it waited on the generator, the wake-ups, or the
// machine), the share of the wasm process's CPU that the guest itself held the worker for (wasm
// code and its WASI calls; the rest is Node's event loop, sockets, wake-ups, GC and V8's
// compiler threads), and the generator's CPU share.
//
// Fairness. One load generator, bench/net/loadgen.c (epoll, one thread, gcc -O2, built here), the
// same binary and arguments for both sides. Not JS: a node:net generator needed about 17 µs of CPU
// per keep-alive request here, more than native toolbox.c needs per round trip (~8 µs), so it would
// have been the limit there, and connection churn costs a client more still. On a 2-core machine
// the generator and the server compete, so each is pinned (taskset) to a core of its own: CPU 0 for
// the server side — the native process (Go then runs with GOMAXPROCS=1), or the whole Node process
// that hosts the Runtime (main thread, the guest's one worker, V8's GC and compiler threads) — and
// CPU 1 for the generator (`--no-pin`: the scheduler places them). The wasm side runs in a child
// Node process (`--serve`), as the native one in a child, so both are measured alike: the process's
// CPU time from /proc/PID/stat, all threads. The native servers get their listening socket as the
// guests do: bench/net/listen-exec.c opens it at descriptor 3, sets LISTEN_FDS=1 LISTEN_FDS_START=3
// and execs them unmodified (with SIGPIPE ignored: a guest gets EPIPE, not a signal). Each server
// first takes 1.5 s of unmeasured load of each kind its cases use (1 s with --quick), so that V8
// has tiered the hot guest code up to TurboFan; each round warms up another 500 ms before it measures. The full run measures each
// case three times, in the order native, wasm, wasm, native, native, wasm, and keeps each side's
// best round (other load on the machine only ever slows a round down); `--quick` measures once.
// Rates on a shared machine vary from run to run; the CPU/op figures vary less.
// `--profile DIR` writes V8 CPU profiles (.cpuprofile, one per thread) of the wasm servers to DIR.
// BENCH_DEBUG=1 prints every round's raw figures (the generator's JSON) to stderr.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { compileModule, Runtime } from "../../src/runtime/index.ts";
import { buildGuest, type GuestName } from "../../test/support/guests.ts";

const quick = process.argv.includes("--quick");
const pin = !process.argv.includes("--no-pin") && availableParallelism() >= 2;
const profileAt = process.argv.indexOf("--profile");
const profileDir = profileAt > 0 ? process.argv[profileAt + 1] : undefined;
/** `--serve GUEST PORT`: the wasm server child (see serve()). */
const serveAt = process.argv.indexOf("--serve");
const here = new URL(".", import.meta.url).pathname;
const guests = new URL("../../test/guests/", import.meta.url).pathname;
const MiB = 1024 * 1024;
/** Clock ticks per second of /proc/PID/stat. */
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }));

const debug = process.env.BENCH_DEBUG ? (...a: unknown[]) => console.error(...a) : () => {};

/** A port nobody listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** CPU time (ms) of a whole process, all its threads. */
function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK; // utime, stime
}

// ---- the wasm server child -------------------------------------------------------------------

/**
 * Runs one guest with a listener on 127.0.0.1:port in a Runtime of one worker, says "ready" once
 * the guest printed its first line, answers "cpu" on stdin with the guest's own CPU ms (the time
 * it held the worker thread: wasm code and the WASI calls it made), and ends at stdin's end.
 */
async function serve(name: GuestName, port: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "wasmlet-bench-net-"));
  const module = await compileModule(readFileSync(await buildGuest(name)));
  const runtime = new Runtime({ workers: 1 });
  await runtime.start();
  const container = runtime.run({
    id: "net",
    module,
    args: [name],
    env: { POD_NAME: "bench" },
    mounts: [],
    logPath: join(dir, "net.log"),
    network: {
      listen: [{ name: "http", host: "127.0.0.1", port }],
      maxConnections: 4096,
      outbound: { podLoopback: [], hostAddresses: [], wasmletPorts: [] },
    },
  });
  let said = false;
  let stopping = false;
  container.onOutput(() => {
    if (!said) console.log("ready");
    said = true;
  });
  void container.exited.then((status) => {
    if (stopping) return;
    console.error(`the guest ended: ${JSON.stringify(status)}`);
    process.exit(1);
  });
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === "cpu") {
      const cpu = await container.cpuUsage();
      console.log(JSON.stringify({ guestMs: (cpu.user + cpu.system) / 1000 }));
    }
  }
  stopping = true;
  await runtime.destroy();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

// ---- the orchestrator ------------------------------------------------------------------------

interface Server {
  label: string;
  port: number;
  cpuMs(): number;
  /** The guest's own CPU ms (wasm only). */
  guestMs?(): Promise<number>;
  stop(): Promise<void>;
}

function pinned(cpu: number, command: string, args: string[]): [string, string[]] {
  return pin ? ["taskset", ["-c", String(cpu), command, ...args]] : [command, args];
}

/** Waits for the child's first stdout line; returns a reader of the lines after it. */
async function firstLine(child: ChildProcess, what: string): Promise<() => Promise<string>> {
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  // A child that exits ends the wait too (readline's iterator may not finish by itself).
  const exited = new Promise<IteratorResult<string>>((resolve) =>
    child.once("close", () => resolve({ done: true, value: undefined })),
  );
  const timeout = setTimeout(() => child.kill(), 120_000);
  const first = await Promise.race([lines.next(), exited]);
  clearTimeout(timeout);
  if (first.done) throw new Error(`${what} did not start: ${stderr}`);
  return async () => {
    const next = await Promise.race([lines.next(), exited]);
    if (next.done) throw new Error(`${what} ended: ${stderr}`);
    return next.value;
  };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

async function startNative(label: string, binary: string, args: string[]): Promise<Server> {
  const port = await freePort();
  const [command, argv] = pinned(0, join(build.dir, "listen-exec"), [
    String(port),
    "http",
    binary,
    ...args,
  ]);
  const child = spawn(command, argv, {
    env: { ...process.env, POD_NAME: "bench" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  await firstLine(child, label);
  debug(label, "ready");
  return { label, port, cpuMs: () => processCpuMs(child.pid!), stop: () => stopChild(child) };
}

async function startWasm(label: string, guest: GuestName): Promise<Server> {
  const port = await freePort();
  const flags = profileDir ? ["--cpu-prof", "--cpu-prof-dir", profileDir] : [];
  const [command, argv] = pinned(0, process.execPath, [
    ...process.execArgv,
    ...flags,
    new URL(import.meta.url).pathname,
    "--serve",
    guest,
    String(port),
  ]);
  const child = spawn(command, argv, { stdio: ["pipe", "pipe", "pipe"] });
  const next = await firstLine(child, label);
  debug(label, "ready");
  return {
    label,
    port,
    cpuMs: () => processCpuMs(child.pid!),
    guestMs: async () => {
      child.stdin!.write("cpu\n");
      return (JSON.parse(await next()) as { guestMs: number }).guestMs;
    },
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        // End of stdin: the child destroys its runtime (and writes its profile) and exits.
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        child.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
        child.stdin!.end();
      }),
  };
}

interface Load {
  mode: "get" | "post" | "close" | "echo";
  conns: number;
  args: string[];
}

interface Measured {
  ops: number;
  bytes: number;
  stream_bytes: number;
  seconds: number;
  p50_us: number;
  p99_us: number;
  errors: number;
  /** The generator's CPU seconds in the measured window. */
  cpu_s: number;
  /** The server's CPU ms in the window, and the guest's part of it (wasm). */
  serverMs: number;
  guestMs: number | undefined;
}

const warmupMs = 500;
const durationMs = quick ? 1500 : 2000;

/** Unmeasured load per kind of load a server will get, after its start. */
const serverWarmupMs = quick ? 1000 : 1500;

function loadgen(server: Server, load: Load, warmup: number, duration: number): ChildProcess {
  const [command, argv] = pinned(1, join(build.dir, "loadgen"), [
    load.mode,
    String(server.port),
    String(load.conns),
    String(warmup),
    String(duration),
    ...load.args,
  ]);
  return spawn(command, argv, { stdio: ["ignore", "pipe", "pipe"] });
}

/** Load without measuring, after a server's start. */
async function warm(server: Server, load: Load): Promise<void> {
  const child = loadgen(server, load, serverWarmupMs, 1);
  await new Promise((resolve) => child.once("close", resolve));
  if (child.exitCode !== 0) throw new Error(`loadgen failed warming ${server.label}`);
}

/** Runs the generator against a server; the server's CPU is read when the generator says "m". */
async function measure(server: Server, load: Load): Promise<Measured> {
  const child = loadgen(server, load, warmupMs, durationMs);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const next = await firstLine(child, "loadgen"); // "m": the measured window starts
  debug(server.label, load, "measuring");
  const cpu0 = server.cpuMs();
  const guest0 = await server.guestMs?.();
  const result = JSON.parse(await next()) as Omit<Measured, "serverMs" | "guestMs">;
  debug(server.label, result);
  const serverMs = server.cpuMs() - cpu0;
  const guest1 = await server.guestMs?.();
  await exited;
  return {
    ...result,
    serverMs,
    guestMs: guest0 === undefined ? undefined : guest1! - guest0,
  };
}

const build = { dir: "" };

function buildNative(): { goServer: string; cServer: string; toolbox: string } {
  const out = (name: string) => join(build.dir, name);
  for (const name of ["loadgen", "listen-exec"]) {
    execFileSync("gcc", ["-O2", "-Wall", "-o", out(name), join(here, `${name}.c`)]);
  }
  for (const name of ["c-server", "toolbox"]) {
    execFileSync("gcc", ["-O2", "-o", out(name), join(guests, `${name}.c`)]);
  }
  execFileSync("go", ["build", "-o", out("http-go"), "."], {
    cwd: join(guests, "http-go"),
    env: { ...process.env, GOOS: "linux", GOARCH: "amd64", CGO_ENABLED: "0", GOFLAGS: "-mod=mod" },
  });
  return { goServer: out("http-go"), cServer: out("c-server"), toolbox: out("toolbox") };
}

interface Case {
  what: string;
  load: Load;
  /** Bytes per operation the generator must see (a check that the servers answered alike). */
  bytesPerOp?: number;
  unit: "req/s" | "MiB/s" | "conn/s" | "round trips/s";
  latency: boolean;
}

const rate = (m: Measured, c: Case) =>
  c.unit === "MiB/s" ? m.stream_bytes / MiB / m.seconds : m.ops / m.seconds;

/** Measures a case on both servers; keeps each side's round with the higher rate. */
async function runCase(
  c: Case,
  native: Server,
  wasm: Server,
): Promise<{ native: Measured; wasm: Measured }> {
  const order = quick ? [native, wasm] : [native, wasm, wasm, native, native, wasm];
  const best = new Map<Server, Measured>();
  for (const server of order) {
    const m = await measure(server, c.load);
    if (rate(m, c) === 0) throw new Error(`${server.label}: no ${c.what} completed`);
    if (m.errors > 0) throw new Error(`${server.label}: ${m.errors} errors in ${c.what}`);
    if (c.bytesPerOp !== undefined && m.bytes !== m.ops * c.bytesPerOp) {
      throw new Error(`${server.label}: ${m.bytes / m.ops} bytes per op in ${c.what}`);
    }
    const kept = best.get(server);
    if (!kept || rate(m, c) > rate(kept, c)) best.set(server, m);
  }
  return { native: best.get(native)!, wasm: best.get(wasm)! };
}

const rows: string[][] = [];
const header = ["what", "wasm", "native", "wasm/native", "target", "notes"];

const fmt = (n: number) =>
  n >= 100 ? Math.round(n).toLocaleString("en") : n.toFixed(n >= 10 ? 1 : 2);
const ms = (us: number) => `${(us / 1000).toFixed(2)} ms`;

function report(c: Case, r: { native: Measured; wasm: Measured }): void {
  const wasmRate = rate(r.wasm, c);
  const nativeRate = rate(r.native, c);
  const ratio = wasmRate / nativeRate;
  const perOp = (m: Measured) =>
    c.unit === "MiB/s"
      ? `${((m.serverMs / m.stream_bytes) * MiB).toFixed(1)} ms/MiB`
      : `${((m.serverMs * 1000) / m.ops).toFixed(1)} µs/op`;
  const cpuPerOp = (m: Measured) => m.serverMs / (c.unit === "MiB/s" ? m.stream_bytes : m.ops);
  const busy = (m: Measured) => `${((m.serverMs / 1000 / m.seconds) * 100).toFixed(0)} %`;
  const genShare = (m: Measured) => `${((m.cpu_s / m.seconds) * 100).toFixed(0)} %`;
  const guest =
    r.wasm.guestMs === undefined ? 0 : Math.round((r.wasm.guestMs / r.wasm.serverMs) * 100);
  // A generator near a whole core of its own is the limit of that side's rate, not the server.
  const bound = (m: Measured) => m.cpu_s / m.seconds >= 0.85;
  const limited =
    bound(r.native) || bound(r.wasm)
      ? ` (generator-bound: ${bound(r.native) ? "native" : ""}${bound(r.native) && bound(r.wasm) ? ", " : ""}${bound(r.wasm) ? "wasm" : ""})`
      : "";
  rows.push([
    c.what,
    `${fmt(wasmRate)} ${c.unit}`,
    `${fmt(nativeRate)} ${c.unit}`,
    `${ratio.toFixed(2)}×`,
    `≥ 0.50× ${ratio >= 0.5 ? "PASS" : "MISS"}`,
    `CPU ${perOp(r.wasm)} vs ${perOp(r.native)} (${(cpuPerOp(r.native) / cpuPerOp(r.wasm)).toFixed(2)}×); ` +
      `server busy ${busy(r.wasm)} / ${busy(r.native)} of its core, guest ${guest} % of wasm's; ` +
      `generator ${genShare(r.wasm)} / ${genShare(r.native)}${limited}`,
  ]);
  if (c.latency) {
    const p99 = r.wasm.p99_us / r.native.p99_us;
    rows.push([
      "  p99 latency (p50)",
      `${ms(r.wasm.p99_us)} (${ms(r.wasm.p50_us)})`,
      `${ms(r.native.p99_us)} (${ms(r.native.p50_us)})`,
      `${p99.toFixed(2)}×`,
      `≤ 2× ${p99 <= 2 ? "PASS" : "MISS"}`,
      `p50 ${(r.wasm.p50_us / r.native.p50_us).toFixed(2)}×`,
    ]);
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  build.dir = mkdtempSync(join(tmpdir(), "wasmlet-bench-net-"));
  const servers: Server[] = [];
  try {
    const [bin] = await Promise.all([
      Promise.resolve(buildNative()),
      buildGuest("http-go"),
      buildGuest("c-server"),
      buildGuest("toolbox"),
    ]);
    const up = async (
      label: string,
      binary: string,
      guest: GuestName,
      warmLoads: Load[],
    ): Promise<{ native: Server; wasm: Server }> => {
      const native = await startNative(`${label} native`, binary, []);
      servers.push(native);
      const wasm = await startWasm(`${label} wasm`, guest);
      servers.push(wasm);
      // Unmeasured load first, so that the hot guest code is optimized (V8 tiers wasm up to
      // TurboFan in the background, on the server's core) before any case measures it.
      for (const server of [native, wasm]) {
        for (const load of warmLoads) await warm(server, load);
      }
      return { native, wasm };
    };
    const go = await up("http-go", bin.goServer, "http-go", [
      { mode: "get", conns: 16, args: ["/"] },
      { mode: "post", conns: 4, args: ["/echo", String(8 * MiB)] },
    ]);
    const goCases: Case[] = [
      {
        what: "http-go GET /, keep-alive, 16 conns",
        load: { mode: "get", conns: 16, args: ["/"] },
        bytesPerOp: "hello from bench\n".length,
        unit: "req/s",
        latency: true,
      },
      {
        what: "http-go GET /, keep-alive, 64 conns",
        load: { mode: "get", conns: 64, args: ["/"] },
        bytesPerOp: "hello from bench\n".length,
        unit: "req/s",
        latency: true,
      },
      {
        what: "http-go POST /echo 8 MiB, 4 conns",
        load: { mode: "post", conns: 4, args: ["/echo", String(8 * MiB)] },
        bytesPerOp: 8 * MiB,
        unit: "MiB/s",
        latency: false,
      },
    ];
    for (const c of goCases) report(c, await runCase(c, go.native, go.wasm));
    await Promise.all([go.native.stop(), go.wasm.stop()]);

    const cs = await up("c-server", bin.cServer, "c-server", [
      { mode: "close", conns: 16, args: ["/"] },
    ]);
    const closeCase: Case = {
      what: "c-server.c HTTP/1.0, a connection per request, 16 conns",
      load: { mode: "close", conns: 16, args: ["/"] },
      unit: "conn/s",
      latency: true,
    };
    report(closeCase, await runCase(closeCase, cs.native, cs.wasm));
    await Promise.all([cs.native.stop(), cs.wasm.stop()]);

    const tb = await up("toolbox", bin.toolbox, "toolbox", [
      { mode: "echo", conns: 64, args: ["64"] },
    ]);
    const echoCase: Case = {
      what: "toolbox.c poll() echo, 64-byte round trips, 64 conns",
      load: { mode: "echo", conns: 64, args: ["64"] },
      bytesPerOp: 64,
      unit: "round trips/s",
      latency: true,
    };
    report(echoCase, await runCase(echoCase, tb.native, tb.wasm));
    await Promise.all([tb.native.stop(), tb.wasm.stop()]);
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(build.dir, { recursive: true, force: true });
  }

  const widths = header.map((h, i) => Math.max(...rows.map((r) => r[i]!.length), h.length));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const row of rows) console.log(line(row));
  console.log(
    `\nNode ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model}), ${pin ? "server on CPU 0, generator on CPU 1" : "not pinned"}; ` +
      `${warmupMs} ms warm-up + ${durationMs} ms measured per round, ${quick ? "1 round" : "best of 3 rounds"}; ` +
      `load average ${loadavg()[0]!.toFixed(2)}; ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
}

if (serveAt > 0) {
  await serve(process.argv[serveAt + 1] as GuestName, Number(process.argv[serveAt + 2]));
} else {
  await main();
}
