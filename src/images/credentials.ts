// Registry credentials from docker-style configs: the content of a pull secret
// (`kubernetes.io/dockerconfigjson`: `{"auths": {…}}`, or legacy `kubernetes.io/dockercfg`: the
// `auths` map alone) and the node's own `config.json`. Keys are matched to an image the way the
// kubelet's keyring does: scheme and Docker Hub's `/v1/` suffix ignored, `*` globs per host
// label, the port must agree, and a key's path must be a prefix of the repository. The most
// specific keys come first; the registry client tries them in order.
import { readFile, stat } from "node:fs/promises";
import { imageError } from "./errors.ts";
import { DEFAULT_REGISTRY } from "./reference.ts";

export interface RegistryCredential {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (`identitytoken`), exchanged at the registry's token endpoint. */
  identityToken?: string;
  /** A bearer token used as is (`registrytoken`). */
  registryToken?: string;
  /** Where it came from, for messages: "pull secret 1", "/root/.docker/config.json". */
  source: string;
}

interface Entry {
  host: string;
  port: string;
  path: string;
  credential: RegistryCredential;
}

const HUB_ALIASES = new Set([
  "docker.io",
  "index.docker.io",
  "registry-1.docker.io",
  "registry.hub.docker.com",
]);

interface AuthConfigJson {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
  identitytoken?: unknown;
  registrytoken?: unknown;
}

function parseKey(key: string): { host: string; port: string; path: string } {
  let rest = key.trim().replace(/^[a-z]+:\/\//i, "");
  const slash = rest.indexOf("/");
  let path = slash === -1 ? "" : rest.slice(slash + 1);
  rest = slash === -1 ? rest : rest.slice(0, slash);
  const portMatch = /:([0-9]+)$/.exec(rest);
  const port = portMatch ? portMatch[1]! : "";
  let host = (portMatch ? rest.slice(0, portMatch.index) : rest).toLowerCase();
  if (HUB_ALIASES.has(host)) {
    host = DEFAULT_REGISTRY;
    path = path.replace(/^v[12]\/?/, "");
  }
  return { host, port, path: path.replace(/\/+$/, "") };
}

function credentialFrom(json: AuthConfigJson, source: string): RegistryCredential | undefined {
  const credential: RegistryCredential = { source };
  if (typeof json.auth === "string" && json.auth !== "") {
    const decoded = Buffer.from(json.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon === -1) return undefined;
    credential.username = decoded.slice(0, colon);
    credential.password = decoded.slice(colon + 1);
  }
  if (typeof json.username === "string" && json.username !== "")
    credential.username = json.username;
  if (typeof json.password === "string" && json.password !== "")
    credential.password = json.password;
  if (typeof json.identitytoken === "string" && json.identitytoken !== "")
    credential.identityToken = json.identitytoken;
  if (typeof json.registrytoken === "string" && json.registrytoken !== "")
    credential.registryToken = json.registrytoken;
  const usable =
    (credential.username !== undefined && credential.password !== undefined) ||
    credential.identityToken !== undefined ||
    credential.registryToken !== undefined;
  return usable ? credential : undefined;
}

/** Whether a key (host glob, port, path prefix) covers `host:port/repository`. */
function keyMatches(
  key: { host: string; port: string; path: string },
  host: string,
  port: string,
  repository: string,
): boolean {
  if (key.port !== port || !globMatch(key.host, host)) return false;
  return key.path === "" || repository === key.path || repository.startsWith(`${key.path}/`);
}

/** Whether an image pattern (a docker config key, or a credential provider's matchImages entry) covers the image. */
export function imageMatches(pattern: string, registry: string, repository: string): boolean {
  const { host, port } = parseKey(registry);
  return keyMatches(parseKey(pattern), host, port, repository);
}

function globMatch(pattern: string, value: string): boolean {
  const patternLabels = pattern.split(".");
  const labels = value.split(".");
  if (patternLabels.length !== labels.length) return false;
  return patternLabels.every((p, i) => {
    const re = new RegExp(`^${p.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^.]*")}$`);
    return re.test(labels[i]!);
  });
}

export class CredentialSet {
  readonly #entries: Entry[];

  constructor(entries: Entry[] = []) {
    this.#entries = entries;
  }

  static empty(): CredentialSet {
    return new CredentialSet();
  }

  /** Several sets in order of precedence (pull secrets before the node's own config). */
  static concat(...sets: CredentialSet[]): CredentialSet {
    return new CredentialSet(sets.flatMap((s) => s.#entries));
  }

  /**
   * Parses a docker config: `{"auths": {...}}` (dockerconfigjson / config.json) or the legacy
   * dockercfg map. `source` names it in messages.
   */
  static parse(content: string | object, source: string): CredentialSet {
    let json: unknown = content;
    if (typeof content === "string") {
      try {
        json = JSON.parse(content);
      } catch (error) {
        throw imageError("WASMLET_ERR_IMAGE_CREDENTIALS_INVALID", `${source}: not valid JSON`, {
          cause: error,
        });
      }
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      throw imageError(
        "WASMLET_ERR_IMAGE_CREDENTIALS_INVALID",
        `${source}: expected a JSON object of registry credentials`,
      );
    }
    const object = json as Record<string, unknown>;
    const auths = "auths" in object ? object.auths : object;
    if (typeof auths !== "object" || auths === null || Array.isArray(auths)) {
      throw imageError(
        "WASMLET_ERR_IMAGE_CREDENTIALS_INVALID",
        `${source}: "auths" must be an object`,
      );
    }
    const entries: Entry[] = [];
    for (const [key, value] of Object.entries(auths)) {
      // A docker config.json has other top-level keys (credsStore, HttpHeaders…): skip non-entries.
      if (typeof value !== "object" || value === null) continue;
      const credential = credentialFrom(value as AuthConfigJson, source);
      if (credential) entries.push({ ...parseKey(key), credential });
    }
    return new CredentialSet(entries);
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Credentials for `registry/repository`, most specific key first, each source's order kept. */
  lookup(registry: string, repository: string): RegistryCredential[] {
    const { host, port } = parseKey(registry);
    const matches: { entry: Entry; index: number }[] = [];
    this.#entries.forEach((entry, index) => {
      if (keyMatches(entry, host, port, repository)) matches.push({ entry, index });
    });
    const specificity = (e: Entry) => (e.host.includes("*") ? 0 : 1000) + e.path.length;
    matches.sort((a, b) => specificity(b.entry) - specificity(a.entry) || a.index - b.index);
    return matches.map((m) => m.entry.credential);
  }
}

/** Pull secrets as the pods code has them: the decoded `.dockerconfigjson` or `.dockercfg` values. */
export function credentialsFromPullSecrets(secrets: readonly string[]): CredentialSet {
  return CredentialSet.concat(
    ...secrets.map((s, i) => CredentialSet.parse(s, `pull secret ${i + 1}`)),
  );
}

/**
 * The node's docker config file (e.g. `/root/.docker/config.json`), re-read when it changes. A
 * missing file means no credentials.
 */
export class DockerConfigFile {
  readonly path: string;
  #cached: { mtimeMs: number; size: number; set: CredentialSet } | undefined;

  constructor(path: string) {
    this.path = path;
  }

  async load(): Promise<CredentialSet> {
    const info = await stat(this.path).catch(() => undefined);
    if (!info) return CredentialSet.empty();
    if (this.#cached && this.#cached.mtimeMs === info.mtimeMs && this.#cached.size === info.size) {
      return this.#cached.set;
    }
    const set = CredentialSet.parse(await readFile(this.path, "utf8"), this.path);
    this.#cached = { mtimeMs: info.mtimeMs, size: info.size, set };
    return set;
  }
}
