// A container's environment, command line and working directory, with the kubelet's rules:
// envFrom first (prefix, invalid keys skipped with an event), then env in order (value with $(VAR)
// expansion against what came before and the service variables, or valueFrom), optional vs
// required references, then the service variables the container does not set itself; and
// command/args over the image's entrypoint/cmd.
import type { V1ConfigMap, V1Container, V1Pod, V1Secret } from "@kubernetes/client-node";
import { type DownwardContext, podFieldValue, resourceFieldValue } from "../volumes/field-ref.ts";
import type { VolumeSourcePort } from "../volumes/ports.ts";
import { podError } from "./errors.ts";
import type { ImageRunConfig } from "./ports.ts";

const OPERATOR = "$";
const OPENER = "(";
const CLOSER = ")";

/** Kubernetes' third_party/forked/golang/expansion.Expand. */
export function expand(input: string, mapping: (name: string) => string): string {
  let out = "";
  let checkpoint = 0;
  for (let cursor = 0; cursor < input.length; cursor++) {
    if (input[cursor] === OPERATOR && cursor + 1 < input.length) {
      out += input.slice(checkpoint, cursor);
      const rest = input.slice(cursor + 1);
      let read: string;
      let isVar = false;
      let advance: number;
      if (rest[0] === OPERATOR) {
        read = OPERATOR;
        advance = 1;
      } else if (rest[0] === OPENER) {
        const close = rest.indexOf(CLOSER, 1);
        if (close >= 0) {
          read = rest.slice(1, close);
          isVar = true;
          advance = close + 1;
        } else {
          read = OPERATOR + OPENER;
          advance = 1;
        }
      } else {
        read = OPERATOR + (rest[0] ?? "");
        advance = 1;
      }
      out += isVar ? mapping(read) : read;
      cursor += advance;
      checkpoint = cursor + 1;
    }
  }
  return out + input.slice(checkpoint);
}

/** Kubernetes' MappingFuncFor: the first context holding the name wins; unknown names stay `$(NAME)`. */
export function mappingFor(...contexts: ReadonlyMap<string, string>[]): (name: string) => string {
  return (name) => {
    for (const context of contexts) {
      const value = context.get(name);
      if (value !== undefined) return value;
    }
    return `${OPERATOR}${OPENER}${name}${CLOSER}`;
  };
}

const ENV_VAR_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/** Kubernetes' IsEnvVarName. */
export function isEnvVarName(name: string): boolean {
  return ENV_VAR_NAME.test(name);
}

export interface EnvResolution {
  /** Final variables, in the order they were first defined. */
  env: Map<string, string>;
  /** envFrom sources whose invalid keys were skipped (for the InvalidEnvironmentVariableNames event). */
  skipped: { kind: "configMap" | "secret"; name: string; keys: string[] }[];
}

export interface EnvDependencies {
  source: Pick<VolumeSourcePort, "getConfigMap" | "getSecret">;
  downward: DownwardContext;
  /** The pod's service variables (see service-env.ts): `$(VAR)` sees them, the container's own win. */
  services?: ReadonlyMap<string, string>;
}

/** The message of the kubelet's InvalidEnvironmentVariableNames event. */
export function invalidKeysMessage(
  skipped: EnvResolution["skipped"][number],
  namespace: string,
): string {
  return `Keys [${skipped.keys.join(", ")}] from the EnvFrom ${skipped.kind} ${namespace}/${skipped.name} were skipped since they are considered invalid environment variable names.`;
}

function configError(message: string): Error {
  return podError("WASMLET_ERR_CONTAINER_CONFIG", message);
}

/**
 * Resolves a container's env and envFrom as the kubelet's makeEnvironmentVariables does. Rejects
 * with WASMLET_ERR_CONTAINER_CONFIG (→ CreateContainerConfigError) carrying the kubelet's message.
 */
export async function resolveEnv(
  pod: V1Pod,
  container: V1Container,
  deps: EnvDependencies,
): Promise<EnvResolution> {
  const namespace = pod.metadata?.namespace ?? "default";
  const configMaps = new Map<string, V1ConfigMap | undefined>();
  const secrets = new Map<string, V1Secret | undefined>();
  const getConfigMap = async (name: string) => {
    if (!configMaps.has(name))
      configMaps.set(name, await deps.source.getConfigMap(namespace, name));
    return configMaps.get(name);
  };
  const getSecret = async (name: string) => {
    if (!secrets.has(name)) secrets.set(name, await deps.source.getSecret(namespace, name));
    return secrets.get(name);
  };
  const env = new Map<string, string>();
  const skipped: EnvResolution["skipped"] = [];
  const services = deps.services ?? new Map<string, string>();

  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? "";
    let data: [string, string][];
    let kind: "configMap" | "secret";
    let name: string;
    if (from.configMapRef) {
      kind = "configMap";
      name = from.configMapRef.name ?? "";
      const configMap = await getConfigMap(name);
      if (!configMap) {
        if (from.configMapRef.optional) continue;
        throw configError(`configmap "${name}" not found`);
      }
      data = Object.entries(configMap.data ?? {});
    } else if (from.secretRef) {
      kind = "secret";
      name = from.secretRef.name ?? "";
      const secret = await getSecret(name);
      if (!secret) {
        if (from.secretRef.optional) continue;
        throw configError(`secret "${name}" not found`);
      }
      data = Object.entries(secret.data ?? {}).map(([k, v]) => [
        k,
        Buffer.from(v, "base64").toString(),
      ]);
    } else {
      continue;
    }
    const invalid: string[] = [];
    for (const [key, value] of data) {
      const full = prefix + key;
      if (!isEnvVarName(full)) {
        invalid.push(full);
        continue;
      }
      env.set(full, value);
    }
    if (invalid.length > 0) skipped.push({ kind, name, keys: invalid.sort() });
  }

  for (const variable of container.env ?? []) {
    let value = variable.value ?? "";
    if (value !== "") {
      value = expand(value, mappingFor(env, services));
    } else if (variable.valueFrom) {
      const from = variable.valueFrom;
      if (from.fieldRef) {
        try {
          value = podFieldValue(pod, from.fieldRef, deps.downward);
        } catch (error) {
          throw configError((error as Error).message);
        }
      } else if (from.resourceFieldRef) {
        try {
          value = resourceFieldValue(
            from.resourceFieldRef,
            container,
            deps.downward.nodeAllocatable,
          );
        } catch (error) {
          throw configError((error as Error).message);
        }
      } else if (from.configMapKeyRef) {
        const ref = from.configMapKeyRef;
        const configMap = await getConfigMap(ref.name ?? "");
        if (!configMap) {
          if (ref.optional) continue;
          throw configError(`configmap "${ref.name ?? ""}" not found`);
        }
        const found = configMap.data?.[ref.key];
        if (found === undefined) {
          if (ref.optional) continue;
          throw configError(
            `couldn't find key ${ref.key} in ConfigMap ${namespace}/${ref.name ?? ""}`,
          );
        }
        value = found;
      } else if (from.secretKeyRef) {
        const ref = from.secretKeyRef;
        const secret = await getSecret(ref.name ?? "");
        if (!secret) {
          if (ref.optional) continue;
          throw configError(`secret "${ref.name ?? ""}" not found`);
        }
        const found = secret.data?.[ref.key];
        if (found === undefined) {
          if (ref.optional) continue;
          throw configError(
            `couldn't find key ${ref.key} in Secret ${namespace}/${ref.name ?? ""}`,
          );
        }
        value = Buffer.from(found, "base64").toString();
      }
    }
    env.set(variable.name, value);
  }
  for (const [name, value] of services) if (!env.has(name)) env.set(name, value);
  return { env, skipped };
}

export interface CommandLine {
  /** argv, argv[0] included. */
  args: string[];
  workingDir: string;
}

/**
 * The argv the container runs: `command` replaces the image's entrypoint and drops its cmd; `args`
 * alone replaces cmd; `$(VAR)` in command/args expands against the container's env (never the
 * image's defaults). A wasm module needs no executable, so an empty result runs as [container name].
 */
export function commandLine(
  container: V1Container,
  image: ImageRunConfig,
  env: ReadonlyMap<string, string>,
): CommandLine {
  const mapping = mappingFor(env);
  const command = (container.command ?? []).map((part) => expand(part, mapping));
  const args = (container.args ?? []).map((part) => expand(part, mapping));
  let argv: string[];
  if (command.length > 0) argv = [...command, ...args];
  else if (args.length > 0) argv = [...(image.entrypoint ?? []), ...args];
  else argv = [...(image.entrypoint ?? []), ...(image.cmd ?? [])];
  if (argv.length === 0) argv = [container.name];
  return { args: argv, workingDir: container.workingDir || image.workingDir || "/" };
}

/** The instance's environment: the image's defaults, overridden by the container's resolved env. */
/** The pod's hostname: spec.hostname, else its name (at most 63 characters, like the kubelet's). */
export function podHostname(pod: V1Pod): string {
  return (pod.spec?.hostname || pod.metadata?.name || "").slice(0, 63).replace(/[-.]+$/, "");
}

export function runEnvironment(
  image: ImageRunConfig,
  env: ReadonlyMap<string, string>,
  hostname: string,
): Record<string, string> {
  // The pod's hostname first, as containerd's CRI sets it; the image and the pod may override.
  const out: Record<string, string> = { HOSTNAME: hostname };
  for (const entry of image.env ?? []) {
    const eq = entry.indexOf("=");
    if (eq > 0) out[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  for (const [name, value] of env) out[name] = value;
  return out;
}
