// A small OCI distribution client over the built-in `fetch`.
//
// - Auth is challenge-driven: a request goes out with whatever auth is known for its endpoint and
//   scope; a 401 brings a `WWW-Authenticate` challenge, answered with Basic credentials or a
//   bearer token from the challenge's realm (anonymous, with credentials, or with an identity
//   token), then the request is replayed. Candidate credentials are tried in order.
// - Bearer tokens are cached per endpoint, scope and credential until shortly before they expire.
// - Connection errors, 429 and 5xx (but 501) are retried with exponential backoff and jitter.
// - Loopback registries and those configured as plain HTTP are reached over http.
// - Hosts per registry come from a containerd-style hosts configuration (registry-hosts.ts): the
//   mirrors (`[host."…"]`) in order, then the server. Tags are resolved only by hosts with the
//   `resolve` capability, digests and blobs fetched from those with `pull`, pushes go to the first
//   with `push`. Each host with TLS settings (ca, client certificates, skip_verify) or a dial
//   timeout gets an undici Agent of its own, closed by `close()`.
// - The credentials given for a registry (pull secrets, docker configs, credential providers) go
//   to that registry's own host only (and to the token realm it names, as before). Mirrors and
//   other hosts get anonymous requests, with containerd's `ns=<registry>` query parameter.
// - A request's signal reaches `fetch` and every retry sleep: aborting it ends the request, the
//   body stream and the retries, with the signal's reason.
import { createHash, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { getCACertificates } from "node:tls";
import { Agent, type Dispatcher } from "undici";
import type { RegistryCredential } from "./credentials.ts";
import { imageError } from "./errors.ts";
import { MANIFEST_ACCEPT } from "./manifest.ts";
import { isLoopbackRegistry, registryHost } from "./reference.ts";
import {
  type ConfiguredHost,
  defaultServer,
  type HostCapability,
  RegistryHosts,
} from "./registry-hosts.ts";
import { type Challenge, parseChallenges } from "./www-authenticate.ts";

export interface RegistryClientOptions {
  /** Registries (`host[:port]` as in references) reached over plain HTTP. Loopback ones always are. */
  plainHttp?: Iterable<string>;
  /** Mirrors per registry: `{"docker.io": ["http://127.0.0.1:5001"]}`, tried before the registry for reads. */
  mirrors?: Record<string, readonly string[]>;
  /**
   * Hosts per registry (`--registry-config-dir`, containerd's hosts.toml): mirrors with
   * capabilities, servers, per-host TLS and headers. Registries it does not configure (no
   * namespace of their own, no `_default`) keep the defaults above.
   */
  hosts?: RegistryHosts;
  /** Retries after the first attempt for connection errors, 429 and 5xx. Default 4. */
  retries?: number;
  /** First backoff delay; doubles each retry (with jitter). Default 200 ms. */
  retryBaseMs?: number;
  /** Largest backoff delay, also the cap on Retry-After. Default 10 s. */
  retryMaxMs?: number;
  userAgent?: string;
  /** The fetch to use (tests). Default: the global fetch. */
  fetch?: typeof fetch;
}

export interface Endpoint {
  /** Scheme and host, `http://127.0.0.1:5000`: what relative realms and upload locations resolve against. */
  base: string;
  /** The API root, `http://127.0.0.1:5000/v2` (another path with `override_path`). */
  root: string;
  /** Host part, the key of the auth caches. */
  host: string;
  /** A mirror (tried before the server), not the server itself. */
  mirror: boolean;
  /** The registry's own host: the only one that gets the credentials held for the registry. */
  credentials: boolean;
  capabilities: ReadonlySet<HostCapability>;
  /** Extra headers for every request to this host (hosts.toml `header`). */
  headers: Record<string, string>;
  /** `ns` query parameter (the registry), for hosts other than the registry's own. */
  ns: string | undefined;
  /** The host's own connection settings (TLS, dial timeout); undefined: the defaults. */
  dispatcher: Dispatcher | undefined;
}

export interface ManifestResult {
  bytes: Buffer;
  digest: string;
  mediaType: string | undefined;
}

export interface BlobResponse {
  body: ReadableStream<Uint8Array>;
  /** Content-Length when the registry sent one. */
  length: number | undefined;
  endpoint: Endpoint;
}

type BodyFactory = () => BodyInit;

interface TokenEntry {
  token: string;
  expiresAt: number;
}

const RETRY_STATUS = new Set([429, 500, 502, 503, 504]);
const MAX_ERROR_BODY = 64 * 1024;

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** Reads a response body into memory, failing once it exceeds `max` bytes. */
export async function readLimited(response: Response, max: number, what: string): Promise<Buffer> {
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  if (declared > max) {
    await response.body?.cancel();
    throw imageError(
      "WASMLET_ERR_IMAGE_TOO_LARGE",
      `${what} is ${declared} bytes, more than the limit of ${max}`,
    );
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = response.body?.getReader();
  if (reader) {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > max) {
        await reader.cancel().catch(() => {});
        throw imageError(
          "WASMLET_ERR_IMAGE_TOO_LARGE",
          `${what} is more than the limit of ${max} bytes`,
        );
      }
      chunks.push(value);
    }
  }
  return Buffer.concat(chunks);
}

async function errorDetail(response: Response): Promise<string> {
  const text = (
    await readLimited(response, MAX_ERROR_BODY, "error body").catch(() => Buffer.alloc(0))
  ).toString();
  try {
    const json = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
    const first = json.errors?.[0];
    if (first) return [first.code, first.message].filter(Boolean).join(": ");
  } catch {
    // not JSON: fall through
  }
  return text.trim().slice(0, 200);
}

function credentialKey(credential: RegistryCredential | undefined): string {
  if (!credential) return "anonymous";
  return createHash("sha256")
    .update(
      JSON.stringify([
        credential.username,
        credential.password,
        credential.identityToken,
        credential.registryToken,
      ]),
    )
    .digest("hex")
    .slice(0, 16);
}

function describeCredential(credential: RegistryCredential | undefined): string {
  if (!credential) return "anonymously";
  if (credential.username) return `as "${credential.username}" (from ${credential.source})`;
  return `with a token (from ${credential.source})`;
}

const ANONYMOUS: readonly (RegistryCredential | undefined)[] = [undefined];
const MIRROR_CAPABILITIES: ReadonlySet<HostCapability> = new Set(["pull", "resolve"]);

/** `host[:port]` as URLs normalise it (default ports dropped, lower case). */
function normalizeHost(host: string, scheme = "https"): string {
  try {
    return new URL(`${scheme}://${host}`).host;
  } catch {
    return host;
  }
}

export class RegistryClient {
  readonly #plainHttp: Set<string>;
  readonly #mirrors: Map<string, readonly string[]>;
  readonly #hosts: RegistryHosts;
  /** Endpoints per registry, in the order they are tried. */
  readonly #endpoints = new Map<string, Endpoint[]>();
  /** One Agent per configured host with connection settings of its own. */
  readonly #agents = new Map<ConfiguredHost, Agent>();
  #closed = false;
  readonly #retries: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #userAgent: string;
  readonly #fetch: typeof fetch;
  readonly #tokens = new Map<string, TokenEntry>();
  /** Last challenge seen per endpoint host, so later requests authenticate up front. */
  readonly #challenges = new Map<string, Challenge>();

  constructor(options: RegistryClientOptions = {}) {
    this.#plainHttp = new Set(options.plainHttp ?? []);
    this.#mirrors = new Map(Object.entries(options.mirrors ?? {}));
    this.#hosts = options.hosts ?? RegistryHosts.empty();
    this.#retries = options.retries ?? 4;
    this.#retryBaseMs = options.retryBaseMs ?? 200;
    this.#retryMaxMs = options.retryMaxMs ?? 10_000;
    this.#userAgent = options.userAgent ?? "wasmlet";
    this.#fetch = options.fetch ?? fetch;
  }

  /**
   * The registry's server: its hosts.toml `server`, else its own host (http for loopback
   * registries without TLS settings and for configured plain-HTTP registries).
   */
  endpoint(registry: string): Endpoint {
    return this.endpoints(registry).at(-1)!;
  }

  /** Every host of `registry` in the order they are tried: mirrors, then the server. */
  endpoints(registry: string): readonly Endpoint[] {
    if (this.#closed) throw new Error("RegistryClient is closed");
    let endpoints = this.#endpoints.get(registry);
    if (!endpoints) {
      endpoints = this.#buildEndpoints(registry);
      this.#endpoints.set(registry, endpoints);
    }
    return endpoints;
  }

  /** The hosts that may do `capability` for `registry`, in order; an error when none may. */
  endpointsFor(registry: string, capability: HostCapability): Endpoint[] {
    const endpoints = this.endpoints(registry).filter((e) => e.capabilities.has(capability));
    if (endpoints.length === 0) {
      const namespace = this.#hosts.lookup(registry);
      throw imageError(
        "WASMLET_ERR_IMAGE_NO_REGISTRY_HOST",
        `no host configured for registry ${registry} has the "${capability}" capability${namespace ? ` (${namespace.source})` : ""}`,
      );
    }
    return endpoints;
  }

  #buildEndpoints(registry: string): Endpoint[] {
    const own = normalizeHost(registryHost(registry));
    const plain = this.#plainHttp.has(registry) || this.#plainHttp.has(registryHost(registry));
    const mirrors: Endpoint[] = (this.#mirrors.get(registry) ?? []).map((url) => {
      const base = url.replace(/\/+$/, "").replace(/\/v2$/, "");
      const parsed = new URL(base);
      return {
        base: parsed.origin,
        root: `${base}/v2`,
        host: parsed.host,
        mirror: true,
        credentials: false,
        capabilities: MIRROR_CAPABILITIES,
        headers: {},
        ns: registry,
        dispatcher: undefined,
      };
    });
    const namespace = this.#hosts.lookup(registry);
    const configured = namespace?.hosts ?? [defaultServer()];
    const hosts = configured.map((h): Endpoint => {
      const scheme =
        h.scheme ??
        (plain || (isLoopbackRegistry(registry) && h.tls === undefined) ? "http" : "https");
      const host = h.host ?? normalizeHost(registryHost(registry), scheme);
      const base = `${scheme}://${host}`;
      const isOwn = normalizeHost(host, scheme) === own || host === registryHost(registry);
      return {
        base,
        root: `${base}${h.path}`,
        host,
        mirror: !h.server,
        credentials: isOwn,
        capabilities: h.capabilities,
        headers: Object.fromEntries(
          Object.entries(h.headers).map(([name, values]) => [name, values.join(", ")]),
        ),
        ns: isOwn ? undefined : registry,
        dispatcher: this.#dispatcher(h),
      };
    });
    return [...mirrors, ...hosts];
  }

  /** An Agent for a host with TLS settings or a dial timeout of its own (one per host config). */
  #dispatcher(host: ConfiguredHost): Dispatcher | undefined {
    if (host.tls === undefined && host.dialTimeoutMs === undefined) return undefined;
    let agent = this.#agents.get(host);
    if (!agent) {
      const connect: Record<string, unknown> = {};
      const tls = host.tls;
      if (tls?.ca.length) connect.ca = [...getCACertificates("default"), ...tls.ca];
      if (tls?.certs.length) {
        connect.cert = tls.certs.map((c) => c.cert);
        connect.key = tls.certs.map((c) => c.key);
      }
      if (tls?.skipVerify !== undefined) connect.rejectUnauthorized = !tls.skipVerify;
      if (host.dialTimeoutMs !== undefined) connect.timeout = host.dialTimeoutMs;
      agent = new Agent({ connect });
      this.#agents.set(host, agent);
    }
    return agent;
  }

  /** Closes the hosts' own connection pools; later requests fail. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#agents.values()].map((agent) => agent.close()));
  }

  /** A handle on one repository with the credentials to try, in order. */
  repository(
    registry: string,
    repository: string,
    credentials: readonly RegistryCredential[] = [],
  ): Repository {
    return new Repository(this, registry, repository, credentials);
  }

  /** fetch with retries on connection errors, 429 and 5xx (but 501); `init.signal` ends it all. */
  async fetchWithRetry(
    url: string,
    init: RequestInit,
    body: BodyFactory | undefined,
    registry: string,
    dispatcher?: Dispatcher,
  ): Promise<Response> {
    const signal = init.signal ?? undefined;
    for (let attempt = 0; ; attempt++) {
      let response: Response | undefined;
      let failure: unknown;
      try {
        const requestInit: RequestInit = {
          ...init,
          headers: { "user-agent": this.#userAgent, ...(init.headers as Record<string, string>) },
        };
        if (dispatcher) (requestInit as { dispatcher?: Dispatcher }).dispatcher = dispatcher;
        if (body) {
          requestInit.body = body();
          (requestInit as { duplex?: string }).duplex = "half";
        }
        response = await this.#fetch(url, requestInit);
      } catch (error) {
        signal?.throwIfAborted();
        failure = error;
      }
      if (response && !RETRY_STATUS.has(response.status)) return response;
      if (attempt >= this.#retries) {
        if (response) return response;
        const cause = (failure as { cause?: { code?: string; message?: string } })?.cause;
        const why = cause?.code ?? cause?.message ?? (failure as Error)?.message ?? String(failure);
        throw imageError(
          "WASMLET_ERR_IMAGE_REGISTRY_UNAVAILABLE",
          `registry ${registry} is unreachable (${why}) after ${attempt + 1} attempts: ${init.method ?? "GET"} ${url}`,
          { cause: failure },
        );
      }
      const backoff =
        Math.min(this.#retryMaxMs, this.#retryBaseMs * 2 ** attempt) * (0.5 + Math.random() / 2);
      const asked = retryAfterMs(response?.headers.get("retry-after") ?? null, Date.now());
      const delay = asked === undefined ? backoff : Math.min(this.#retryMaxMs, asked);
      await response?.body?.cancel().catch(() => {});
      await sleep(delay, undefined, { signal }).catch(() => signal?.throwIfAborted());
    }
  }

  forgetToken(endpoint: Endpoint, scope: string, credential: RegistryCredential | undefined): void {
    this.#tokens.delete(tokenCacheKey(endpoint, scope, credential));
  }

  cachedAuthorization(
    endpoint: Endpoint,
    scope: string,
    credential: RegistryCredential | undefined,
  ): string | undefined {
    const challenge = this.#challenges.get(endpoint.host);
    if (!challenge) return undefined;
    if (challenge.scheme === "basic") return basicHeader(credential);
    if (challenge.scheme === "bearer") {
      if (credential?.registryToken) return `Bearer ${credential.registryToken}`;
      const entry = this.#tokens.get(tokenCacheKey(endpoint, scope, credential));
      if (entry && entry.expiresAt > Date.now()) return `Bearer ${entry.token}`;
    }
    return undefined;
  }

  rememberChallenge(endpoint: Endpoint, challenge: Challenge): void {
    this.#challenges.set(endpoint.host, challenge);
  }

  /**
   * Answers a challenge for `scope` with `credential`: a Basic header, or a bearer token from the
   * realm. Resolves to undefined when the credential is refused (so the next one can be tried).
   */
  async authorize(
    registry: string,
    endpoint: Endpoint,
    challenge: Challenge,
    scope: string,
    credential: RegistryCredential | undefined,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    if (challenge.scheme === "basic") {
      if (!credential?.username || credential.password === undefined) return undefined;
      return basicHeader(credential);
    }
    if (challenge.scheme !== "bearer") {
      throw imageError(
        "WASMLET_ERR_IMAGE_AUTH_FAILED",
        `registry ${registry} asks for "${challenge.scheme}" authentication, which wasmlet does not support`,
      );
    }
    if (credential?.registryToken) return `Bearer ${credential.registryToken}`;
    const realm = challenge.params.realm;
    if (!realm)
      throw imageError(
        "WASMLET_ERR_IMAGE_AUTH_FAILED",
        `registry ${registry} sent a bearer challenge without a realm`,
      );
    const key = tokenCacheKey(endpoint, scope, credential);
    const cached = this.#tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    const url = new URL(realm, endpoint.base);
    const service = challenge.params.service;
    let response: Response;
    if (credential?.identityToken) {
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: credential.identityToken,
        client_id: "wasmlet",
      });
      if (service) form.set("service", service);
      form.set("scope", scope);
      response = await this.fetchWithRetry(
        url.href,
        {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          ...withSignal(signal),
        },
        () => form.toString(),
        registry,
        endpoint.dispatcher,
      );
    } else {
      if (service) url.searchParams.set("service", service);
      url.searchParams.append("scope", scope);
      const headers: Record<string, string> = {};
      if (credential?.username && credential.password !== undefined) {
        url.searchParams.set("account", credential.username);
        headers.authorization = basicHeader(credential)!;
      }
      response = await this.fetchWithRetry(
        url.href,
        { method: "GET", headers, ...withSignal(signal) },
        undefined,
        registry,
        endpoint.dispatcher,
      );
    }
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      return undefined;
    }
    if (!response.ok) {
      throw imageError(
        "WASMLET_ERR_IMAGE_AUTH_FAILED",
        `registry ${registry}: token server ${url.origin} answered ${response.status} (${await errorDetail(response)})`,
      );
    }
    const json = JSON.parse(
      (await readLimited(response, 1024 * 1024, "token response")).toString(),
    ) as {
      token?: string;
      access_token?: string;
      expires_in?: number;
    };
    const token = json.token ?? json.access_token;
    if (!token)
      throw imageError(
        "WASMLET_ERR_IMAGE_AUTH_FAILED",
        `registry ${registry}: token server ${url.origin} sent no token`,
      );
    const lifetime = Math.max(json.expires_in ?? 60, 10) * 1000;
    this.#tokens.set(key, {
      token,
      expiresAt: Date.now() + lifetime - Math.min(10_000, lifetime / 4),
    });
    return `Bearer ${token}`;
  }
}

function withSignal(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {};
}

function basicHeader(credential: RegistryCredential | undefined): string | undefined {
  if (!credential?.username || credential.password === undefined) return undefined;
  return `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString("base64")}`;
}

function tokenCacheKey(
  endpoint: Endpoint,
  scope: string,
  credential: RegistryCredential | undefined,
): string {
  return `${endpoint.host}|${scope}|${credentialKey(credential)}`;
}

export interface RequestOptions {
  method: string;
  /** Path after `/v2/<repository>/`, or a full URL (upload locations). */
  path: string;
  headers?: Record<string, string>;
  body?: BodyFactory;
  /** `pull` or `pull,push`. */
  actions: string;
  /** Ends the request, its body and its retries. */
  signal?: AbortSignal;
}

/** One repository on one registry, with the credentials to try in order. */
export class Repository {
  readonly client: RegistryClient;
  readonly registry: string;
  readonly name: string;
  readonly #credentials: readonly (RegistryCredential | undefined)[];
  /** Index of the credential that worked (or is being tried) on the registry's own host. */
  readonly #own = { index: 0 };

  constructor(
    client: RegistryClient,
    registry: string,
    name: string,
    credentials: readonly RegistryCredential[],
  ) {
    this.client = client;
    this.registry = registry;
    this.name = name;
    this.#credentials = credentials.length > 0 ? credentials : [undefined];
  }

  /**
   * Sends a request to one endpoint, answering auth challenges; the response is never a 401. The
   * registry's credentials go to the registry's own host only: other hosts (mirrors, a `server`
   * elsewhere, upload locations on another host) are asked anonymously.
   */
  async request(endpoint: Endpoint, options: RequestOptions): Promise<Response> {
    let url: string;
    if (/^https?:\/\//.test(options.path)) url = options.path;
    else {
      url = `${endpoint.root}/${this.name}/${options.path}`;
      if (endpoint.ns)
        url += `${url.includes("?") ? "&" : "?"}ns=${encodeURIComponent(endpoint.ns)}`;
    }
    const sameHost = new URL(url).host === endpoint.host;
    const own = endpoint.credentials && sameHost;
    const credentials = own ? this.#credentials : ANONYMOUS;
    const state = own ? this.#own : { index: 0 };
    const scope = `repository:${this.name}:${options.actions}`;
    let authorization = this.client.cachedAuthorization(endpoint, scope, credentials[state.index]);
    let challenged = false;
    for (;;) {
      const headers: Record<string, string> = {
        ...(sameHost ? endpoint.headers : {}),
        ...options.headers,
      };
      if (authorization) headers.authorization = authorization;
      const response = await this.client.fetchWithRetry(
        url,
        { method: options.method, headers, ...withSignal(options.signal) },
        options.body,
        this.registry,
        endpoint.dispatcher,
      );
      if (response.status !== 401) return response;
      const detail = await errorDetail(response);
      const challenge = parseChallenges(response.headers.get("www-authenticate")).find(
        (c) => c.scheme === "bearer" || c.scheme === "basic",
      );
      if (!challenge) {
        throw imageError(
          "WASMLET_ERR_IMAGE_AUTH_FAILED",
          `registry ${this.registry} refused ${this.name} (401 ${detail}) without a usable challenge`,
        );
      }
      this.client.rememberChallenge(endpoint, challenge);
      // A 401 after we answered a challenge means this credential is not good enough: next one.
      // A cached token the registry no longer takes (expired early, token server restarted) is
      // dropped, and the same credential asks for a fresh one first.
      if (challenged) state.index++;
      else if (authorization !== undefined)
        this.client.forgetToken(endpoint, scope, credentials[state.index]);
      challenged = true;
      authorization = undefined;
      while (state.index < credentials.length) {
        authorization = await this.client.authorize(
          this.registry,
          endpoint,
          challenge,
          scope,
          credentials[state.index],
          options.signal,
        );
        if (authorization) break;
        if (credentials[state.index] === undefined && challenge.scheme === "basic") break;
        state.index++;
      }
      if (!authorization) {
        const tried = credentials.map(describeCredential).join(", ");
        const anonymous = credentials.length === 1 && credentials[0] === undefined;
        state.index = 0;
        const where = own
          ? `registry ${this.registry}`
          : `host ${new URL(url).origin} (for registry ${this.registry}; it gets no credentials, those are the registry's own)`;
        throw imageError(
          "WASMLET_ERR_IMAGE_AUTH_FAILED",
          anonymous
            ? `${where} requires authentication for ${this.name} (${detail || "401 Unauthorized"})`
            : `authentication to registry ${this.registry} failed for ${this.name} (tried ${tried}): ${detail || "401 Unauthorized"}`,
        );
      }
    }
  }

  /** Maps an unsuccessful response to an error naming the registry and the object. */
  async fail(response: Response, what: string): Promise<never> {
    const detail = await errorDetail(response);
    if (response.status === 404) {
      throw imageError(
        "WASMLET_ERR_IMAGE_NOT_FOUND",
        `${what} not found in registry ${this.registry} (${detail || "404"})`,
      );
    }
    if (response.status === 403) {
      throw imageError(
        "WASMLET_ERR_IMAGE_AUTH_FAILED",
        `registry ${this.registry} denied access to ${what} (${detail || "403 Forbidden"})`,
      );
    }
    throw imageError(
      "WASMLET_ERR_IMAGE_REGISTRY_ERROR",
      `registry ${this.registry} answered ${response.status} for ${what}${detail ? ` (${detail})` : ""}`,
    );
  }

  /**
   * Tries each host that may do `capability` (mirrors, then the server); the last one's failure
   * is the one reported.
   */
  async #read<T>(
    what: string,
    capability: HostCapability,
    signal: AbortSignal | undefined,
    run: (endpoint: Endpoint) => Promise<T>,
  ): Promise<T> {
    const endpoints = this.client.endpointsFor(this.registry, capability);
    for (const [i, endpoint] of endpoints.entries()) {
      try {
        return await run(endpoint);
      } catch (error) {
        if (i === endpoints.length - 1 || signal?.aborted) throw error;
      }
    }
    throw new Error(`unreachable: no endpoint for ${what}`);
  }

  /** HEAD a manifest: its digest without downloading it (undefined if the registry does not say). */
  async resolve(
    target: string,
    signal?: AbortSignal,
  ): Promise<{
    digest: string | undefined;
    mediaType: string | undefined;
    size: number | undefined;
  }> {
    const what = `${this.name}:${target}`;
    return this.#read(what, targetCapability(target), signal, async (endpoint) => {
      const response = await this.request(endpoint, {
        method: "HEAD",
        path: `manifests/${target}`,
        headers: { accept: MANIFEST_ACCEPT },
        actions: "pull",
        ...withSignal(signal),
      });
      if (!response.ok) await this.fail(response, `manifest ${what}`);
      const size = response.headers.get("content-length");
      return {
        digest: response.headers.get("docker-content-digest") ?? undefined,
        mediaType: response.headers.get("content-type") ?? undefined,
        size: size === null ? undefined : Number(size),
      };
    });
  }

  /** GET a manifest (by tag or digest). A manifest fetched by digest is verified against it. */
  async getManifest(
    target: string,
    maxBytes: number,
    signal?: AbortSignal,
  ): Promise<ManifestResult> {
    const what = `${this.name}${target.includes(":") ? "@" : ":"}${target}`;
    return this.#read(what, targetCapability(target), signal, async (endpoint) => {
      const response = await this.request(endpoint, {
        method: "GET",
        path: `manifests/${target}`,
        headers: { accept: MANIFEST_ACCEPT },
        actions: "pull",
        ...withSignal(signal),
      });
      if (!response.ok) await this.fail(response, `manifest ${what}`);
      const bytes = await readLimited(response, maxBytes, `manifest ${what}`);
      const digest = sha256Digest(bytes);
      if (target.startsWith("sha256:") && digest !== target) {
        throw imageError(
          "WASMLET_ERR_IMAGE_DIGEST_MISMATCH",
          `manifest ${what} from registry ${this.registry} has digest ${digest}, not ${target}`,
        );
      }
      return { bytes, digest, mediaType: response.headers.get("content-type") ?? undefined };
    });
  }

  /** GET a blob as a stream (which `signal` also ends); the caller verifies it (see ContentStore). */
  async getBlob(digest: string, signal?: AbortSignal): Promise<BlobResponse> {
    return this.#read(`${this.name}@${digest}`, "pull", signal, async (endpoint) => {
      const response = await this.request(endpoint, {
        method: "GET",
        path: `blobs/${digest}`,
        actions: "pull",
        ...withSignal(signal),
      });
      if (!response.ok || !response.body) await this.fail(response, `blob ${this.name}@${digest}`);
      const length = response.headers.get("content-length");
      return {
        body: response.body!,
        length: length === null ? undefined : Number(length),
        endpoint,
      };
    });
  }

  async blobExists(digest: string, actions = "pull"): Promise<boolean> {
    const response = await this.request(this.client.endpointsFor(this.registry, "push")[0]!, {
      method: "HEAD",
      path: `blobs/${digest}`,
      actions,
    });
    await response.body?.cancel();
    if (response.ok) return true;
    if (response.status === 404) return false;
    return this.fail(response, `blob ${this.name}@${digest}`);
  }

  /**
   * Uploads a blob unless the registry has it: POST to open an upload, then one PUT with the body
   * and `?digest=` (distribution ignores a body sent with the POST). Resolves to false when the
   * blob was already there.
   */
  async uploadBlob(digest: string, size: number, body: BodyFactory): Promise<boolean> {
    if (await this.blobExists(digest, "pull,push")) return false;
    const endpoint = this.client.endpointsFor(this.registry, "push")[0]!;
    const start = await this.request(endpoint, {
      method: "POST",
      path: "blobs/uploads/",
      headers: { "content-length": "0" },
      actions: "pull,push",
    });
    if (start.status !== 202) await this.fail(start, `upload to ${this.name}`);
    await start.body?.cancel();
    const location = start.headers.get("location");
    if (!location)
      throw imageError(
        "WASMLET_ERR_IMAGE_REGISTRY_ERROR",
        `registry ${this.registry} opened an upload without a Location`,
      );
    const url = new URL(location, endpoint.base);
    url.searchParams.set("digest", digest);
    const put = await this.request(endpoint, {
      method: "PUT",
      path: url.href,
      headers: { "content-type": "application/octet-stream", "content-length": String(size) },
      body,
      actions: "pull,push",
    });
    if (put.status !== 201) await this.fail(put, `upload of ${digest} to ${this.name}`);
    await put.body?.cancel();
    return true;
  }

  /** PUT a manifest under a tag (or digest); resolves to its digest. */
  async putManifest(target: string, bytes: Uint8Array, mediaType: string): Promise<string> {
    const endpoint = this.client.endpointsFor(this.registry, "push")[0]!;
    const response = await this.request(endpoint, {
      method: "PUT",
      path: `manifests/${target}`,
      headers: { "content-type": mediaType },
      body: () => bytes as Uint8Array<ArrayBuffer>,
      actions: "pull,push",
    });
    if (response.status !== 201) await this.fail(response, `manifest ${this.name}:${target}`);
    await response.body?.cancel();
    const digest = sha256Digest(bytes);
    const reported = response.headers.get("docker-content-digest");
    if (reported && reported !== digest) {
      throw imageError(
        "WASMLET_ERR_IMAGE_DIGEST_MISMATCH",
        `registry ${this.registry} stored manifest ${this.name}:${target} as ${reported}, expected ${digest}`,
      );
    }
    return digest;
  }
}

/** Tags are resolved (the `resolve` capability); digests are content (`pull`). */
function targetCapability(target: string): HostCapability {
  return target.includes(":") ? "pull" : "resolve";
}

/** A random suffix for temporary names. */
export function randomSuffix(): string {
  return randomBytes(6).toString("hex");
}

/** The wait a `Retry-After` header asks for (seconds or an HTTP date), undefined when it asks none. */
export function retryAfterMs(header: string | null, now: number): number | undefined {
  const value = header?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
