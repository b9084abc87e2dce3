// A child process of the local cluster: its output goes to a log file, its readiness is probed,
// and it is stopped (SIGTERM, then SIGKILL) when the cluster stops or this process exits, so a
// failing test never leaves an orphan behind.
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { devclusterError } from "./errors.ts";

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}

export interface ManagedProcessOptions {
  name: string;
  command: string;
  args: string[];
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export class ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  #child: ChildProcess;
  #exited: Promise<number | null>;
  #exitCode: number | null | undefined;

  constructor(options: ManagedProcessOptions) {
    installExitHook();
    this.name = options.name;
    this.logFile = options.logFile;
    const log = createWriteStream(options.logFile, { flags: "a" });
    this.#child = spawn(options.command, options.args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.#child.stdout?.pipe(log, { end: false });
    this.#child.stderr?.pipe(log, { end: false });
    live.add(this.#child);
    this.#exited = new Promise((resolve) => {
      this.#child.once("error", (error) => {
        log.write(`spawn failed: ${error.message}\n`);
        live.delete(this.#child);
        this.#exitCode = -1;
        resolve(-1);
      });
      this.#child.once("exit", (code, signal) => {
        live.delete(this.#child);
        this.#exitCode = code ?? (signal ? 128 : null);
        log.end(() => resolve(this.#exitCode ?? null));
      });
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get running(): boolean {
    return this.#exitCode === undefined;
  }

  /** Polls `probe` until it returns true; fails with the tail of the log if the process dies or time runs out. */
  async waitUntil(probe: () => Promise<boolean>, timeoutMs: number, what = "ready"): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) {
        throw devclusterError(
          "WASMLET_ERR_COMPONENT_EXITED",
          `${this.name} exited (code ${this.#exitCode}) before it was ${what}; last lines of ${this.logFile}:\n${await this.logTail()}`,
        );
      }
      if (await probe().catch(() => false)) return;
      await sleep(100);
    }
    throw devclusterError(
      "WASMLET_ERR_COMPONENT_NOT_READY",
      `${this.name} was not ${what} after ${Math.round(timeoutMs / 1000)} s; last lines of ${this.logFile}:\n${await this.logTail()}`,
    );
  }

  async logTail(lines = 20): Promise<string> {
    const text = await readFile(this.logFile, "utf8").catch(() => "");
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Safe to call twice. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.#child.kill("SIGTERM");
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }

  kill(): Promise<number | null> {
    this.#child.kill("SIGKILL");
    return this.#exited;
  }
}
