// Builds the Config from command-line flags, WASMLET_* environment variables and an optional YAML
// file (--config / WASMLET_CONFIG). The first invalid value ends loading with one line that names
// the option as the user wrote it and says why.
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { type Config, type DefaultsContext, OPTIONS, type OptionSpec } from "./config.ts";
import { configError } from "./errors.ts";
import { type HostDefaults, hostDefaults } from "./host-defaults.ts";
import { ValueError } from "./values.ts";

export interface LoadOptions {
  argv: readonly string[];
  env?: NodeJS.ProcessEnv;
  host?: HostDefaults;
  cwd?: string;
}

export type LoadResult =
  | { help: true }
  | { help: false; config: Config; configFile: string | undefined };

const CONFIG_FLAG = "config";
const CONFIG_ENV = "WASMLET_CONFIG";

type Source =
  | { kind: "flag"; values: string[] }
  | { kind: "env"; name: string; value: string }
  | { kind: "file"; file: string; value: unknown };

function isBooleanOption(spec: OptionSpec): boolean {
  return spec.placeholder === "";
}

function invalid(message: string): never {
  throw configError("WASMLET_ERR_CONFIG_INVALID", message);
}

function parseArgv(argv: readonly string[]): {
  flags: Map<string, string[]>;
  help: boolean;
  configFile?: string;
} {
  const byFlag = new Map(OPTIONS.map((spec) => [spec.flag, spec]));
  const flags = new Map<string, string[]>();
  let help = false;
  let configFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    if (!arg.startsWith("--")) {
      invalid(
        `unexpected argument ${JSON.stringify(arg)}: every option is a --flag (see \`wasmlet run --help\`)`,
      );
    }
    const eq = arg.indexOf("=");
    let name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    let value = eq < 0 ? undefined : arg.slice(eq + 1);
    if (name === CONFIG_FLAG) {
      if (value === undefined) value = argv[++i];
      if (value === undefined || value === "") invalid("--config needs a file path");
      configFile = value;
      continue;
    }
    let spec = byFlag.get(name);
    if (!spec && name.startsWith("no-") && value === undefined) {
      const negated = byFlag.get(name.slice(3));
      if (negated && isBooleanOption(negated)) {
        spec = negated;
        name = negated.flag;
        value = "false";
      }
    }
    if (!spec) invalid(`unknown option --${name} (see \`wasmlet run --help\`)`);
    if (value === undefined) {
      if (isBooleanOption(spec)) value = "true";
      else {
        value = argv[++i];
        if (value === undefined || value.startsWith("--"))
          invalid(`--${name} needs a value (${spec.placeholder})`);
      }
    }
    const list = flags.get(name) ?? [];
    if (list.length > 0 && !spec.repeatable) invalid(`--${name} is given more than once`);
    list.push(value);
    flags.set(name, list);
  }
  return configFile === undefined ? { flags, help } : { flags, help, configFile };
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw configError(
      "WASMLET_ERR_CONFIG_FILE",
      `cannot read the config file ${file}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (error) {
    throw configError(
      "WASMLET_ERR_CONFIG_FILE",
      `the config file ${file} is not valid YAML: ${(error as Error).message.split("\n")[0]}`,
      { cause: error },
    );
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== "object" || Array.isArray(data)) {
    throw configError(
      "WASMLET_ERR_CONFIG_FILE",
      `the config file ${file} must be a mapping of option names to values`,
    );
  }
  const known = new Set<string>(OPTIONS.map((spec) => spec.fileKey));
  for (const key of Object.keys(data)) {
    if (!known.has(key)) {
      throw configError(
        "WASMLET_ERR_CONFIG_FILE",
        `the config file ${file} has an unknown key ${JSON.stringify(key)}`,
        {
          hint: "keys are the camelCase option names listed by `wasmlet run --help`",
        },
      );
    }
  }
  return data as Record<string, unknown>;
}

function describeSource(spec: OptionSpec, source: Source): string {
  switch (source.kind) {
    case "flag":
      return `--${spec.flag}`;
    case "env":
      return `${source.name} (--${spec.flag})`;
    case "file":
      return `${spec.fileKey} in ${source.file} (--${spec.flag})`;
  }
}

function mergeRepeated(values: unknown[]): unknown {
  if (values.every(Array.isArray)) return values.flat();
  if (values.every((v) => v !== null && typeof v === "object")) return Object.assign({}, ...values);
  return values.at(-1);
}

function parseFromSource(spec: OptionSpec, source: Source, cwd: string): unknown {
  const label = describeSource(spec, source);
  try {
    let value: unknown;
    if (source.kind === "flag") value = mergeRepeated(source.values.map((raw) => spec.parse(raw)));
    else value = spec.parse(source.value);
    if ((spec.file || spec.path || spec.directory) && typeof value === "string") {
      const base = source.kind === "file" ? dirname(resolve(cwd, source.file)) : cwd;
      value = isAbsolute(value) ? value : resolve(base, value);
      if (spec.file && !existsSync(value as string))
        throw new ValueError(`${value} does not exist`);
      if (spec.file && statSync(value as string).isDirectory())
        throw new ValueError(`${value} is a directory`);
    }
    return value;
  } catch (error) {
    if (error instanceof ValueError) invalid(`invalid ${label}: ${error.message}`);
    throw error;
  }
}

function checkCombinations(config: Config): void {
  if (config.kubeconfig && !config.bootstrapKubeconfig && !existsSync(config.kubeconfig))
    invalid(`invalid --kubeconfig: ${config.kubeconfig} does not exist`);
  if (
    (config.imageCredentialProviderConfig === undefined) !==
    (config.imageCredentialProviderBinDir === undefined)
  )
    invalid(
      "--image-credential-provider-config and --image-credential-provider-bin-dir go together: give both or neither",
    );
  if (config.bootstrapKubeconfig && !config.kubeconfig)
    invalid(
      "--bootstrap-kubeconfig needs --kubeconfig: the path where wasmlet writes the node's kubeconfig",
    );
  if ((config.tlsCertFile === undefined) !== (config.tlsPrivateKeyFile === undefined)) {
    invalid("--tls-cert-file and --tls-private-key-file go together: give both or neither");
  }
  if (config.tlsCertFile === undefined && !config.tlsBootstrap && !config.allowSelfSigned) {
    invalid(
      "no serving certificate for the kubelet API: give --tls-cert-file and --tls-private-key-file, keep --tls-bootstrap, or pass --allow-self-signed",
    );
  }
  if (config.nodeLeaseRenewIntervalMs >= config.nodeLeaseDurationSeconds * 1000) {
    invalid(
      `--node-lease-renew-interval (${config.nodeLeaseRenewIntervalMs} ms) must be shorter than --node-lease-duration (${config.nodeLeaseDurationSeconds} s)`,
    );
  }
  if (config.nodeStatusReportFrequencyMs < config.nodeStatusUpdateFrequencyMs) {
    invalid(
      "--node-status-report-frequency must not be shorter than --node-status-update-frequency",
    );
  }
  if (config.crashLoopBackoffMaxMs < config.crashLoopBackoffBaseMs) {
    invalid("--crash-loop-backoff-max must not be shorter than --crash-loop-backoff");
  }
  if (config.imageGcLowThresholdPercent >= config.imageGcHighThresholdPercent) {
    invalid(
      `--image-gc-low-threshold (${config.imageGcLowThresholdPercent}%) must be below --image-gc-high-threshold (${config.imageGcHighThresholdPercent}%)`,
    );
  }
}

export function loadConfig(options: LoadOptions): LoadResult {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const context: DefaultsContext = { host: options.host ?? hostDefaults, env };
  const { flags, help, configFile: flagFile } = parseArgv(options.argv);
  if (help) return { help: true };

  const configFile = flagFile ?? (env[CONFIG_ENV] || undefined);
  const fileValues = configFile === undefined ? {} : readConfigFile(resolve(cwd, configFile));

  const config: Record<string, unknown> = {};
  for (const spec of OPTIONS) {
    const flagValues = flags.get(spec.flag);
    const envValue = env[spec.env];
    let source: Source | undefined;
    if (flagValues) source = { kind: "flag", values: flagValues };
    else if (envValue !== undefined && envValue !== "")
      source = { kind: "env", name: spec.env, value: envValue };
    else if (spec.fileKey in fileValues) {
      source = { kind: "file", file: configFile as string, value: fileValues[spec.fileKey] };
    }
    if (source) {
      config[spec.key] = parseFromSource(spec, source, cwd);
    } else {
      try {
        config[spec.key] = spec.defaultValue(context);
      } catch (error) {
        if (error instanceof ValueError)
          invalid(`--${spec.flag} has no default here: ${error.message}`);
        throw error;
      }
      if (spec.directory && typeof config[spec.key] === "string")
        config[spec.key] = resolve(cwd, config[spec.key] as string);
    }
  }
  const result = config as unknown as Config;
  if (result.kubeconfig === undefined && !env.KUBERNETES_SERVICE_HOST) {
    invalid(
      "no API server to talk to: give --kubeconfig (or WASMLET_KUBECONFIG), or run wasmlet in a pod",
    );
  }
  checkCombinations(result);
  return { help: false, config: result, configFile };
}

function wrap(text: string, width: number, indent: string): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(line);
  return lines.map((l) => indent + l);
}

/** `wasmlet run --help`: every option with its flag, environment variable, file key and default. */
export function helpText(): string {
  const out = [
    "Usage: wasmlet run [options]",
    "",
    "Runs one Kubernetes node that runs WebAssembly: registers the Node, keeps its Lease fresh,",
    "reports honest status and serves the kubelet API. Stops cleanly on SIGTERM or SIGINT.",
    "",
    "Every option can be given as a flag, as an environment variable, or as a key of a YAML file",
    "named by --config FILE (or WASMLET_CONFIG); flags win over the environment, the environment",
    "over the file. Durations: 500ms, 10s, 1m30s. Quantities: 100m (cpu), 256Mi, 1Gi. Boolean",
    "switches take --name, --name=false or --no-name.",
    "",
    "  --config FILE",
    "      YAML file of options (keys as shown below)  [env WASMLET_CONFIG]",
    "  -h, --help",
    "      show this help",
  ];
  let group = "";
  for (const spec of OPTIONS) {
    if (spec.group !== group) {
      group = spec.group;
      out.push("", `${group}:`);
    }
    out.push(`  --${spec.flag}${spec.placeholder ? ` ${spec.placeholder}` : ""}`);
    out.push(...wrap(spec.description, 92, "      "));
    out.push(`      default: ${spec.defaultText}  [env ${spec.env}, file key ${spec.fileKey}]`);
  }
  return out.join("\n");
}
