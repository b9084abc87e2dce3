// Validation of what callers hand the runtime, with messages that name the field.
import { isIP } from "node:net";
import { posix } from "node:path";
import { runtimeError } from "./errors.ts";
import type { ContainerNetwork, ContainerSpec, ExecOptions, Mount } from "./types.ts";

function invalid(message: string): never {
  throw runtimeError("WASMLET_ERR_INVALID_SPEC", message);
}

function checkString(value: unknown, field: string, { empty = false } = {}): string {
  if (typeof value !== "string") invalid(`${field} must be a string`);
  if (!empty && value.length === 0) invalid(`${field} must not be empty`);
  if (value.includes("\0")) invalid(`${field} must not contain NUL`);
  return value;
}

export function checkArgs(args: unknown, field: string): string[] {
  if (!Array.isArray(args) || args.length === 0)
    invalid(`${field} must be a non-empty array (argv[0] included)`);
  for (const [i, arg] of args.entries()) checkString(arg, `${field}[${i}]`, { empty: true });
  return args as string[];
}

function checkGuestPath(path: unknown, field: string): string {
  const p = checkString(path, field);
  if (!p.startsWith("/")) invalid(`${field} must be an absolute path, got ${JSON.stringify(p)}`);
  if (posix.normalize(p) !== p && `${posix.normalize(p)}/` !== p) {
    invalid(`${field} must be normalised (no . or .. or //), got ${JSON.stringify(p)}`);
  }
  return p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p;
}

function checkMounts(mounts: unknown): Mount[] {
  if (!Array.isArray(mounts)) invalid("mounts must be an array");
  const seen = new Set<string>();
  return mounts.map((mount: Mount, i) => {
    const guestPath = checkGuestPath(mount?.guestPath, `mounts[${i}].guestPath`);
    const hostPath = checkString(mount.hostPath, `mounts[${i}].hostPath`);
    if (!hostPath.startsWith("/"))
      invalid(`mounts[${i}].hostPath must be absolute, got ${JSON.stringify(hostPath)}`);
    if (typeof mount.readOnly !== "boolean") invalid(`mounts[${i}].readOnly must be a boolean`);
    if (seen.has(guestPath)) invalid(`two mounts at ${guestPath}`);
    seen.add(guestPath);
    return { hostPath, guestPath, readOnly: mount.readOnly };
  });
}

function checkEnv(env: unknown): Record<string, string> {
  if (typeof env !== "object" || env === null || Array.isArray(env))
    invalid("env must be an object of strings");
  for (const [key, value] of Object.entries(env)) {
    if (key.length === 0 || key.includes("=") || key.includes("\0")) {
      invalid(`env name ${JSON.stringify(key)} is invalid (empty, or contains = or NUL)`);
    }
    checkString(value, `env.${key}`, { empty: true });
  }
  return env as Record<string, string>;
}

function checkPositive(value: unknown, field: string, minimum = 1): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < minimum) {
    invalid(`${field} must be a number of at least ${minimum}, got ${String(value)}`);
  }
  return value;
}

function checkNetwork(network: unknown): ContainerNetwork | undefined {
  if (network === undefined) return undefined;
  const n = network as ContainerNetwork;
  if (typeof n !== "object" || n === null || !Array.isArray(n.listen))
    invalid("network.listen must be an array");
  const ports = new Set<number>();
  const listen = n.listen.map((l, i) => {
    const field = `network.listen[${i}]`;
    const name = checkString(l?.name, `${field}.name`);
    if (name.includes(":")) invalid(`${field}.name must not contain ":"`);
    const host = checkString(l.host, `${field}.host`);
    if (isIP(host) === 0)
      invalid(`${field}.host must be an IP address, got ${JSON.stringify(host)}`);
    if (!Number.isInteger(l.port) || l.port < 1 || l.port > 65535)
      invalid(`${field}.port must be an integer from 1 to 65535, got ${String(l.port)}`);
    if (ports.has(l.port)) invalid(`${field}.port ${l.port} is listed twice`);
    ports.add(l.port);
    return { name, host, port: l.port };
  });
  if (!Number.isInteger(n.maxConnections) || n.maxConnections < 1)
    invalid(`network.maxConnections must be a positive integer, got ${String(n.maxConnections)}`);
  const o = n.outbound;
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === "string");
  const integers = (v: unknown) => Array.isArray(v) && v.every((x) => Number.isInteger(x));
  if (
    typeof o !== "object" ||
    o === null ||
    !strings(o.podLoopback) ||
    !strings(o.hostAddresses) ||
    !integers(o.wasmletPorts)
  )
    invalid(
      "network.outbound must have podLoopback and hostAddresses (strings) and wasmletPorts (integers)",
    );
  return { listen, maxConnections: n.maxConnections, outbound: o };
}

/** Validated copy of a spec; $PWD is set from workingDir unless env sets it. */
export function checkContainerSpec(spec: ContainerSpec): ContainerSpec {
  if (typeof spec !== "object" || spec === null) invalid("the container spec must be an object");
  const id = checkString(spec.id, "id");
  if (!(spec.module instanceof WebAssembly.Module) && !(spec.module instanceof Uint8Array)) {
    invalid("module must be a compiled WebAssembly.Module or the module's bytes");
  }
  const args = checkArgs(spec.args, "args");
  const env = { ...checkEnv(spec.env) };
  const mounts = checkMounts(spec.mounts);
  const workingDir =
    spec.workingDir === undefined ? undefined : checkGuestPath(spec.workingDir, "workingDir");
  if (workingDir !== undefined && env.PWD === undefined) env.PWD = workingDir;
  const entrypoint =
    spec.entrypoint === undefined ? undefined : checkString(spec.entrypoint, "entrypoint");
  const logPath = checkString(spec.logPath, "logPath");
  if (spec.logRotation !== undefined) {
    checkPositive(spec.logRotation.maxBytes, "logRotation.maxBytes");
    checkPositive(spec.logRotation.maxFiles, "logRotation.maxFiles");
    if (!Number.isInteger(spec.logRotation.maxFiles))
      invalid("logRotation.maxFiles must be an integer");
  }
  checkPositive(spec.memoryLimitBytes, "memoryLimitBytes", 65536);
  checkPositive(spec.cpuLimitMillis, "cpuLimitMillis", 1);
  checkPositive(spec.deadlineMs, "deadlineMs", 1);
  const network = checkNetwork(spec.network);
  return {
    ...spec,
    network,
    id,
    args,
    env,
    mounts,
    workingDir,
    entrypoint,
    logPath,
    stdin: spec.stdin === true,
  };
}

export function checkExecOptions(options: ExecOptions): ExecOptions {
  if (typeof options !== "object" || options === null) invalid("exec options must be an object");
  checkArgs(options.args, "args");
  if (typeof options.onOutput !== "function") invalid("exec options need an onOutput function");
  checkPositive(options.deadlineMs, "deadlineMs", 1);
  return options;
}
