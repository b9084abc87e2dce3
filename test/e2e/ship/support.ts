// What the shipping tests share: running a command the way a user would (with its exit code and
// output, never throwing), and finding the processes a test left behind by a directory only it
// uses (every process of a `wasmlet dev` cluster names its state directory in its arguments).
import { execFile, spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

export const ROOT = new URL("../../../", import.meta.url).pathname;
/** Node 26, the project's pinned runtime (the machine's `node` may be older). */
export const NODE = join(ROOT, "node_modules/.bin/node");
export const MAIN = join(ROOT, "src/cli/main.ts");

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command` to its end (or `timeoutMs`, then SIGKILL); never throws on a non-zero exit. */
export function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      {
        env: options.env ?? process.env,
        cwd: options.cwd ?? ROOT,
        timeout: options.timeoutMs ?? 120_000,
        killSignal: "SIGKILL",
        maxBuffer: 64 << 20,
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code === "string") {
          reject(error);
          return;
        }
        const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** `wasmlet ARGS` from the TypeScript sources, as `npm run wasmlet -- ARGS` runs it. */
export function wasmlet(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  return run(NODE, [MAIN, ...args], options);
}

/** Like spawn() for `wasmlet ARGS`, collecting stdout and stderr into `output()`. */
export function spawnWasmlet(args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(NODE, [MAIN, ...args], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
  child.stderr.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, output: () => output };
}

/** Live processes whose command line mentions `text` (this process excluded). */
export async function processesMentioning(
  text: string,
): Promise<Array<{ pid: number; command: string }>> {
  const found: Array<{ pid: number; command: string }> = [];
  for (const entry of await readdir("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const command = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (command.includes(text)) found.push({ pid, command: command.replaceAll("\0", " ").trim() });
  }
  return found;
}

/** SIGKILLs, one by one, the processes a test started that are still alive (found by `marker`). */
export async function killLeftovers(marker: string): Promise<void> {
  for (const { pid } of await processesMentioning(marker)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
}
