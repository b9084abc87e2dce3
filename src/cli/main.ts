// The `wasmlet` command. Each subcommand lives in its own module and is loaded on demand, so
// `wasmlet --help` stays fast and a subcommand's dependencies load only when it runs.
import { describeError, isWasmletError } from "../errors.ts";
import { VERSION } from "../version.ts";

export interface Command {
  summary: string;
  /** Runs the command with the arguments after its name; resolves to the exit code. */
  load: () => Promise<{ main: (argv: string[]) => Promise<number> }>;
}

const commands: Record<string, Command> = {
  dev: {
    summary: "start a local wasm cluster: control plane, registry, node(s), demo pod",
    load: () => import("./dev.ts"),
  },
  run: { summary: "run a Kubernetes node that runs WebAssembly", load: () => import("./run.ts") },
  push: {
    summary: "publish a .wasm file as a CNCF wasm artifact",
    load: () => import("./push.ts"),
  },
  pull: { summary: "pull an image into wasmlet's content store", load: () => import("./pull.ts") },
  inspect: {
    summary: "show an image's format, digest, entrypoint and imports",
    load: () => import("./inspect.ts"),
  },
  version: {
    summary: "print wasmlet's version",
    load: async () => ({
      main: async () => {
        console.log(`wasmlet ${VERSION} (node ${process.versions.node}, WASI preview1)`);
        return 0;
      },
    }),
  },
};

export function usage(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  const lines = Object.entries(commands).map(
    ([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`,
  );
  return [
    "wasmlet — a Kubernetes node that runs WebAssembly",
    "",
    "Usage: wasmlet <command> [options]",
    "",
    "Commands:",
    ...lines,
    "",
    "Run `wasmlet <command> --help` for a command's options.",
  ].join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return 0;
  }
  if (name === "--version" || name === "-v") return main(["version"]);
  const command = commands[name];
  if (!command) {
    console.error(`wasmlet: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  try {
    return await (await command.load()).main(rest);
  } catch (error) {
    console.error(`wasmlet ${name}: ${describeError(error)}`);
    if (!isWasmletError(error) && process.env.WASMLET_DEBUG) console.error(error);
    return 1;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
