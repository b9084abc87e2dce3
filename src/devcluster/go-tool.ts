// What every tool built from the Go module proxy shares (the control plane, kubectl, metrics-server,
// helm): commands run with their output in a build log, a failure naming that log and its last
// lines, and the lookup order of a cached tool: an environment variable, the cache, a build.
import { spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { access, constants, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { devclusterError } from "./errors.ts";

export const isExecutable = (path: string): Promise<boolean> =>
  access(path, constants.X_OK).then(
    () => true,
    () => false,
  );

/** The log file of one build: every command's output goes to it. */
export class BuildLog {
  readonly path: string;
  readonly stream: WriteStream;

  constructor(path: string) {
    this.path = path;
    this.stream = createWriteStream(path, { flags: "w" });
  }

  /** Runs `command args…` in `cwd` with `env` added; resolves with its stdout (also logged). */
  run(
    command: string,
    args: string[],
    cwd: string,
    env: Record<string, string> = {},
  ): Promise<string> {
    this.stream.write(`$ ${command} ${args.join(" ")}\n`);
    return new Promise((resolve, reject) => {
      const child = spawn(command, args, { cwd, env: { ...process.env, ...env } });
      let stdout = "";
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString("utf8");
      });
      child.stdout.pipe(this.stream, { end: false });
      child.stderr.pipe(this.stream, { end: false });
      child.once("error", reject);
      child.once("exit", (code) =>
        code === 0
          ? resolve(stdout)
          : reject(new Error(`${command} ${args[0]} exited with code ${code}`)),
      );
    });
  }

  /** `go args…` in module mode. */
  go(args: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
    return this.run("go", args, cwd, { GOFLAGS: "-mod=mod", ...env });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.stream.end(resolve));
  }

  /** Closes the log and throws WASMLET_ERR_BUILD_FAILED for `step`, with the log's last lines. */
  async fail(step: string, error: unknown): Promise<never> {
    await this.close();
    const tail = (await readFile(this.path, "utf8").catch(() => ""))
      .trimEnd()
      .split("\n")
      .slice(-15)
      .join("\n");
    throw devclusterError(
      "WASMLET_ERR_BUILD_FAILED",
      `${step} failed: ${(error as Error).message}; see ${this.path}:\n${tail}`,
      { cause: error },
    );
  }
}

export interface GoToolSource {
  /** The binary's name, in messages and in the cache directory. */
  name: string;
  /** The environment variable that names a binary to use instead. */
  envVar: string;
  /** The cache directory of this tool's version. */
  cacheDir: string;
  /** Builds the binary into the (existing) cache directory; resolves with its path. */
  build: (dir: string) => Promise<string>;
}

/** The tool's binary: `$envVar` when set, else the cache, else a build into the cache. */
export async function obtainGoTool(
  tool: GoToolSource,
): Promise<{ binary: string; source: "environment" | "cache" | "built" }> {
  const fromEnv = process.env[tool.envVar];
  if (fromEnv) {
    if (!(await isExecutable(fromEnv))) {
      throw devclusterError(
        "WASMLET_ERR_TOOL_MISSING",
        `${tool.name} is not an executable file at ${fromEnv}`,
        { hint: `fix ${tool.envVar} or unset it to build ${tool.name}` },
      );
    }
    return { binary: fromEnv, source: "environment" };
  }
  const cached = join(tool.cacheDir, tool.name);
  if (await isExecutable(cached)) return { binary: cached, source: "cache" };
  await mkdir(tool.cacheDir, { recursive: true });
  return { binary: await tool.build(tool.cacheDir), source: "built" };
}
