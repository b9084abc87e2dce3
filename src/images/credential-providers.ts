// The kubelet's credential-provider plugins: executables that hand out registry credentials on
// demand (managed clusters pull from their registries this way: ECR, GCR/Artifact Registry, ACR).
// The configuration file is the kubelet's (`kubelet.config.k8s.io/v1` CredentialProviderConfig:
// providers with `name`, `matchImages`, `defaultCacheDuration`, `apiVersion`, `args`, `env`), and
// so is the exec protocol: the plugin `<bin dir>/<name>` gets a CredentialProviderRequest
// (`credentialprovider.kubelet.k8s.io/v1`, the image) on stdin and prints a
// CredentialProviderResponse: `auth` (credentials by registry key, matched like a docker config's
// keys), `cacheKeyType` (Image, Registry or Global) and `cacheDuration`. Answers are cached by that
// key for that long. A plugin that fails does not stop the pull (the image may be public): its
// error goes with the pull's own, so the pod's events say why credentials were missing.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { CredentialSet, imageMatches } from "./credentials.ts";
import { parseDuration } from "./duration.ts";
import { imageError } from "./errors.ts";

const CONFIG_KIND = "CredentialProviderConfig";
const CONFIG_API_VERSIONS = ["kubelet.config.k8s.io/v1", "kubelet.config.k8s.io/v1beta1"];
const PLUGIN_API_VERSIONS = [
  "credentialprovider.kubelet.k8s.io/v1",
  "credentialprovider.kubelet.k8s.io/v1beta1",
];
/** A plugin that has not answered in this long is stopped. */
const PLUGIN_TIMEOUT_MS = 30_000;

interface ProviderConfig {
  name: string;
  matchImages: string[];
  defaultCacheDurationMs: number;
  apiVersion: string;
  args: string[];
  env: Record<string, string>;
}

interface CachedAnswer {
  credentials: CredentialSet;
  expires: number;
}

export interface ProviderLookup {
  credentials: CredentialSet;
  /** Plugins that failed, with why: "credential provider ecr: exited with 1: …". */
  errors: string[];
}

function invalid(file: string, message: string): never {
  throw imageError("WASMLET_ERR_CREDENTIAL_PROVIDER_CONFIG", `${file}: ${message}`);
}

function parseProvider(file: string, raw: unknown, index: number): ProviderConfig {
  const at = `providers[${index}]`;
  if (typeof raw !== "object" || raw === null) invalid(file, `${at} must be an object`);
  const p = raw as Record<string, unknown>;
  if (typeof p.name !== "string" || !/^[A-Za-z0-9._-]+$/.test(p.name))
    invalid(file, `${at}.name must name an executable in the bin dir (no slashes)`);
  if (
    !Array.isArray(p.matchImages) ||
    p.matchImages.length === 0 ||
    !p.matchImages.every((m) => typeof m === "string" && m !== "")
  )
    invalid(file, `${at}.matchImages must be a non-empty list of image patterns`);
  if (typeof p.defaultCacheDuration !== "string")
    invalid(file, `${at}.defaultCacheDuration is required (e.g. "12h")`);
  const defaultCacheDurationMs = parseDuration(p.defaultCacheDuration);
  if (defaultCacheDurationMs === undefined)
    invalid(
      file,
      `${at}.defaultCacheDuration ${JSON.stringify(p.defaultCacheDuration)} is not a duration`,
    );
  if (typeof p.apiVersion !== "string" || !PLUGIN_API_VERSIONS.includes(p.apiVersion))
    invalid(file, `${at}.apiVersion must be one of ${PLUGIN_API_VERSIONS.join(", ")}`);
  const args = p.args ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === "string"))
    invalid(file, `${at}.args must be a list of strings`);
  const env: Record<string, string> = {};
  for (const [i, e] of ((p.env ?? []) as unknown[]).entries()) {
    const entry = e as { name?: unknown; value?: unknown };
    if (typeof entry?.name !== "string" || typeof entry.value !== "string")
      invalid(file, `${at}.env[${i}] must have a name and a value`);
    env[entry.name] = entry.value;
  }
  return {
    name: p.name,
    matchImages: p.matchImages as string[],
    defaultCacheDurationMs,
    apiVersion: p.apiVersion,
    args: args as string[],
    env,
  };
}

export class CredentialProviders {
  readonly #providers: ProviderConfig[];
  readonly #binDir: string;
  readonly #cache = new Map<string, CachedAnswer>();
  readonly #now: () => number;

  constructor(providers: ProviderConfig[], binDir: string, now: () => number = Date.now) {
    this.#providers = providers;
    this.#binDir = binDir;
    this.#now = now;
  }

  /** Reads the kubelet's CredentialProviderConfig (YAML or JSON). */
  static fromFile(configFile: string, binDir: string): CredentialProviders {
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(configFile, "utf8"));
    } catch (error) {
      invalid(configFile, `cannot be read: ${(error as Error).message}`);
    }
    const config = doc as { apiVersion?: unknown; kind?: unknown; providers?: unknown };
    if (config?.kind !== CONFIG_KIND || !CONFIG_API_VERSIONS.includes(String(config.apiVersion)))
      invalid(configFile, `expected kind ${CONFIG_KIND}, apiVersion ${CONFIG_API_VERSIONS[0]}`);
    if (!Array.isArray(config.providers)) invalid(configFile, "providers must be a list");
    const providers = config.providers.map((p, i) => parseProvider(configFile, p, i));
    return new CredentialProviders(providers, binDir);
  }

  /** Credentials for `image` (registry/repository[:tag]) from every provider that matches it. */
  async lookup(registry: string, repository: string, image: string): Promise<ProviderLookup> {
    const sets: CredentialSet[] = [];
    const errors: string[] = [];
    for (const provider of this.#providers) {
      if (!provider.matchImages.some((pattern) => imageMatches(pattern, registry, repository)))
        continue;
      try {
        sets.push(await this.#answer(provider, registry, image));
      } catch (error) {
        errors.push(`credential provider ${provider.name}: ${(error as Error).message}`);
      }
    }
    return { credentials: CredentialSet.concat(...sets), errors };
  }

  async #answer(provider: ProviderConfig, registry: string, image: string): Promise<CredentialSet> {
    for (const key of [`image:${image}`, `registry:${registry}`, "global"]) {
      const cached = this.#cache.get(`${provider.name}|${key}`);
      if (cached && cached.expires > this.#now()) return cached.credentials;
    }
    const response = await this.#exec(provider, image);
    const credentials = CredentialSet.parse(
      { auths: response.auth ?? {} },
      `credential provider ${provider.name}`,
    );
    const durationMs =
      typeof response.cacheDuration === "string"
        ? (parseDuration(response.cacheDuration) ?? provider.defaultCacheDurationMs)
        : provider.defaultCacheDurationMs;
    if (durationMs > 0) {
      const type = response.cacheKeyType;
      const key =
        type === "Image" ? `image:${image}` : type === "Global" ? "global" : `registry:${registry}`;
      this.#cache.set(`${provider.name}|${key}`, {
        credentials,
        expires: this.#now() + durationMs,
      });
    }
    return credentials;
  }

  #exec(
    provider: ProviderConfig,
    image: string,
  ): Promise<{ auth?: Record<string, unknown>; cacheKeyType?: string; cacheDuration?: string }> {
    const request = JSON.stringify({
      apiVersion: provider.apiVersion,
      kind: "CredentialProviderRequest",
      image,
    });
    return new Promise((resolve, reject) => {
      const child = execFile(
        join(this.#binDir, provider.name),
        provider.args,
        {
          env: { ...process.env, ...provider.env },
          timeout: PLUGIN_TIMEOUT_MS,
          maxBuffer: 1 << 20,
        },
        (error, stdout, stderr) => {
          if (error) {
            const why = stderr.trim() || error.message;
            reject(new Error(`${error.code === "ENOENT" ? "not found" : `failed`}: ${why}`));
            return;
          }
          let response: Record<string, unknown>;
          try {
            response = JSON.parse(stdout);
          } catch {
            reject(new Error("printed no JSON CredentialProviderResponse"));
            return;
          }
          if (response.kind !== "CredentialProviderResponse") {
            reject(
              new Error(`printed a ${String(response.kind)}, not a CredentialProviderResponse`),
            );
            return;
          }
          resolve(response);
        },
      );
      child.stdin?.end(request);
    });
  }
}
