// Registry hosts configuration in containerd's layout (`certs.d`, docs/hosts.md): one directory
// per registry host namespace under a root, `<root>/<host[:port]>/hosts.toml` (or
// `<host>_<port>_`), with `<root>/_default/hosts.toml` for registries that have none.
//
//   server = "https://registry.example.com"      # the upstream; default https://<host>
//   ca = "ca.pem"                                # root-level settings apply to the server
//   [host."https://mirror.internal"]             # tried in file order, before the server
//     capabilities = ["pull", "resolve"]         # default pull, resolve, push
//     ca = ["mirror-ca.pem"]                     # path(s), relative to the hosts.toml's directory
//     client = [["client.crt", "client.key"]]    # or "both.pem", or a list of either
//     skip_verify = false
//     header = { x-team = "a" }                  # or [host."…".header] with string or list values
//     override_path = false                      # the URL's path is the API root (no /v2 added)
//     dial_timeout = "1s"
//
// A directory without hosts.toml falls back, as in containerd, to Docker's certificate files:
// `*.crt` are CAs, `*.cert` client certificates with their `*.key`. Everything — the TOML, every
// key, the certificate and key files — is read and checked when the configuration is loaded (node
// or CLI start), so a mistake stops the start with the file and what is wrong instead of being
// ignored; later changes need a restart. Unknown keys are errors (a misspelt `skip_verify` would
// otherwise silently verify). The `referrers` capability is accepted and has no use here.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import { parseDuration } from "./duration.ts";
import { imageError } from "./errors.ts";

export type HostCapability = "pull" | "resolve" | "push";

export const ALL_CAPABILITIES: ReadonlySet<HostCapability> = new Set(["pull", "resolve", "push"]);

/** TLS settings of one host, certificates already read (PEM). */
export interface HostTls {
  /** Extra CAs, trusted besides the default roots. */
  ca: string[];
  /** Client certificate chains and their keys, pairwise. */
  certs: { cert: string; key: string }[];
  /** `skip_verify`, when set. */
  skipVerify: boolean | undefined;
}

export interface ConfiguredHost {
  /** `https`/`http`; undefined for the default server (decided per registry). */
  scheme: "http" | "https" | undefined;
  /** `host[:port]` as in a URL; undefined for the default server. */
  host: string | undefined;
  /** The API root's path: `/v2` unless the URL says more or `override_path`. */
  path: string;
  capabilities: ReadonlySet<HostCapability>;
  /** undefined when no TLS key is set (the defaults then apply). */
  tls: HostTls | undefined;
  headers: Record<string, string[]>;
  dialTimeoutMs: number | undefined;
  /** The `server` entry (last); the others are `[host."…"]` tables. */
  server: boolean;
}

/** The registry's own host with every capability and default settings (but `tls`). */
export function defaultServer(tls?: HostTls): ConfiguredHost {
  return {
    scheme: undefined,
    host: undefined,
    path: "/v2",
    capabilities: ALL_CAPABILITIES,
    tls,
    headers: {},
    dialTimeoutMs: undefined,
    server: true,
  };
}

/** One host namespace: its hosts in the order they are tried, the server last. */
export interface HostNamespace {
  /** The hosts.toml (or, for Docker's certificate files, the directory) it came from. */
  source: string;
  /** The directory's name: `registry.example.com:5000`, `_default`, … */
  name: string;
  hosts: readonly ConfiguredHost[];
}

const ROOT_KEYS = new Set([
  "server",
  "host",
  "capabilities",
  "ca",
  "client",
  "skip_verify",
  "header",
  "override_path",
  "dial_timeout",
]);
const HOST_KEYS = new Set([...ROOT_KEYS].filter((k) => k !== "server" && k !== "host"));
const CAPABILITIES = new Set(["pull", "resolve", "push", "referrers"]);

class HostsFileError extends Error {}

function bad(message: string): never {
  throw new HostsFileError(message);
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringList(value: unknown, what: string): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) return value;
  bad(`${what} must be a string or a list of strings, not ${JSON.stringify(value)}`);
}

function readFile(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    bad(`${what} ${path} cannot be read: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
}

function readCa(path: string): string {
  const pem = readFile(path, "ca");
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) bad(`ca ${path} holds no PEM certificate`);
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (error) {
      bad(`ca ${path} holds a certificate that does not parse: ${(error as Error).message}`);
    }
  }
  return blocks.join("\n");
}

function readClientPair(certPath: string, keyPath: string): { cert: string; key: string } {
  const cert = readFile(certPath, "client certificate");
  const key = keyPath === certPath ? cert : readFile(keyPath, "client key");
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (error) {
    bad(`client certificate ${certPath} does not parse: ${(error as Error).message}`);
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    bad(
      keyPath === certPath
        ? `client certificate ${certPath} holds no private key (give [["cert", "key"]] when the key is apart)`
        : `client key ${keyPath} does not parse: ${(error as Error).message}`,
    );
  }
  if (!certificate.checkPrivateKey(privateKey))
    bad(`client key ${keyPath} does not belong to client certificate ${certPath}`);
  return { cert, key };
}

/** `server = "…"` or a `[host."…"]` key: scheme, host and API root path (containerd's rules). */
function parseUrl(
  raw: string,
  overridePath: boolean,
  what: string,
): { scheme: "http" | "https"; host: string; path: string } {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) && !/^https?:\/\//i.test(raw))
    bad(`${what} ${JSON.stringify(raw)} must be http:// or https://`);
  const text = /^https?:\/\//i.test(raw) ? raw : `https://${raw}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    bad(`${what} ${JSON.stringify(raw)} is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    bad(`${what} ${JSON.stringify(raw)} must be http:// or https://`);
  if (url.username || url.password) bad(`${what} ${JSON.stringify(raw)} must not hold credentials`);
  if (url.search || url.hash)
    bad(`${what} ${JSON.stringify(raw)} must not have a query or fragment`);
  let path = url.pathname.replace(/\/+$/, "");
  if (path !== "") {
    path = path.replace(/\/{2,}/g, "/");
    if (!path.endsWith("/v2") && !overridePath) path = `${path}/v2`;
  } else if (!overridePath) path = "/v2";
  return { scheme: url.protocol === "http:" ? "http" : "https", host: url.host, path };
}

function parseHostTable(
  table: Record<string, unknown>,
  keys: ReadonlySet<string>,
  baseDir: string,
  what: string,
): Omit<ConfiguredHost, "scheme" | "host" | "path" | "server"> & { overridePath: boolean } {
  for (const key of Object.keys(table)) {
    if (!keys.has(key))
      bad(`${what}: unknown key "${key}" (known: ${[...keys].sort().join(", ")})`);
  }
  let capabilities: ReadonlySet<HostCapability> = ALL_CAPABILITIES;
  if (table.capabilities !== undefined) {
    const list = stringList(table.capabilities, `${what}: capabilities`);
    const set = new Set<HostCapability>();
    for (const raw of list) {
      const c = raw.toLowerCase();
      if (!CAPABILITIES.has(c))
        bad(`${what}: unknown capability "${raw}" (pull, resolve, push, referrers)`);
      if (c !== "referrers") set.add(c as HostCapability);
    }
    if (list.length > 0) capabilities = set;
  }
  const path = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  let tls: HostTls | undefined;
  const tlsOf = () => {
    tls ??= { ca: [], certs: [], skipVerify: undefined };
    return tls;
  };
  if (table.ca !== undefined) {
    for (const file of stringList(table.ca, `${what}: ca`)) tlsOf().ca.push(readCa(path(file)));
  }
  if (table.client !== undefined) {
    const entries = typeof table.client === "string" ? [table.client] : table.client;
    if (!Array.isArray(entries))
      bad(`${what}: client must be a path, a list of paths or a list of [cert, key] pairs`);
    for (const entry of entries) {
      if (typeof entry === "string") {
        tlsOf().certs.push(readClientPair(path(entry), path(entry)));
      } else if (
        Array.isArray(entry) &&
        entry.length === 2 &&
        entry.every((e) => typeof e === "string")
      ) {
        const [cert, key] = entry as [string, string];
        tlsOf().certs.push(readClientPair(path(cert), key === "" ? path(cert) : path(key)));
      } else {
        bad(`${what}: client entry ${JSON.stringify(entry)} is neither a path nor [cert, key]`);
      }
    }
  }
  if (table.skip_verify !== undefined) {
    if (typeof table.skip_verify !== "boolean") bad(`${what}: skip_verify must be true or false`);
    tlsOf().skipVerify = table.skip_verify;
  }
  const headers: Record<string, string[]> = {};
  if (table.header !== undefined) {
    if (!isTable(table.header)) bad(`${what}: header must be a table`);
    for (const [name, value] of Object.entries(table.header)) {
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name))
        bad(`${what}: header name ${JSON.stringify(name)} is not a valid HTTP header name`);
      const values = stringList(value, `${what}: header ${name}`);
      if (values.some((v) => /[\r\n\0]/.test(v)))
        bad(`${what}: header ${name} has a line break in its value`);
      headers[name.toLowerCase()] = values;
    }
  }
  if (table.override_path !== undefined && typeof table.override_path !== "boolean")
    bad(`${what}: override_path must be true or false`);
  let dialTimeoutMs: number | undefined;
  if (table.dial_timeout !== undefined) {
    const ms = typeof table.dial_timeout === "string" ? parseDuration(table.dial_timeout) : -1;
    if (ms === undefined || ms <= 0)
      bad(`${what}: dial_timeout must be a duration such as "1s" or "500ms"`);
    dialTimeoutMs = ms;
  }
  return {
    capabilities,
    tls,
    headers,
    dialTimeoutMs,
    overridePath: table.override_path === true,
  };
}

/** Parses one hosts.toml's text; `baseDir` anchors relative paths. Throws HostsFileError. */
function parseHostsToml(text: string, baseDir: string): ConfiguredHost[] {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (error) {
    if (error instanceof TomlError)
      bad(`not valid TOML at line ${error.line}, column ${error.column}: ${firstLine(error)}`);
    throw error;
  }
  const hosts: ConfiguredHost[] = [];
  if (doc.host !== undefined) {
    if (!isTable(doc.host)) bad(`host must be tables such as [host."https://mirror.example.com"]`);
    // TOML tables keep the order of the file: that is the order hosts are tried in.
    for (const [key, value] of Object.entries(doc.host)) {
      const what = `[host.${JSON.stringify(key)}]`;
      if (!isTable(value)) bad(`${what} must be a table`);
      const parsed = parseHostTable(value, HOST_KEYS, baseDir, what);
      const { overridePath, ...rest } = parsed;
      hosts.push({ ...parseUrl(key, overridePath, what), ...rest, server: false });
    }
  }
  const root = parseHostTable(
    Object.fromEntries(Object.entries(doc).filter(([k]) => k !== "host" && k !== "server")),
    ROOT_KEYS,
    baseDir,
    "top level",
  );
  const { overridePath, ...rest } = root;
  if (doc.server !== undefined && typeof doc.server !== "string")
    bad(`server must be a string such as "https://registry.example.com"`);
  if (doc.server) {
    hosts.push({
      ...parseUrl(doc.server as string, overridePath, "server"),
      ...rest,
      server: true,
    });
  } else {
    hosts.push({
      scheme: undefined,
      host: undefined,
      path: overridePath ? "" : "/v2",
      ...rest,
      server: true,
    });
  }
  return hosts;
}

function firstLine(error: Error): string {
  return (error.message.split("\n")[0] ?? "").replace(/^Invalid TOML document: /, "");
}

/** Docker's certificate files in a directory without hosts.toml: `*.crt` CAs, `*.cert` + `*.key`. */
function certificateFiles(dir: string): ConfiguredHost[] {
  const files = readdirSync(dir).sort();
  let tls: HostTls | undefined;
  for (const file of files) {
    if (file.endsWith(".crt")) {
      tls ??= { ca: [], certs: [], skipVerify: undefined };
      tls.ca.push(readCa(join(dir, file)));
    } else if (file.endsWith(".cert")) {
      tls ??= { ca: [], certs: [], skipVerify: undefined };
      const key = join(dir, `${file.slice(0, -".cert".length)}.key`);
      const cert = join(dir, file);
      tls.certs.push(readClientPair(cert, existsSync(key) ? key : cert));
    }
  }
  return [defaultServer(tls)];
}

/** The host namespaces under a `--registry-config-dir`, read and checked once. */
export class RegistryHosts {
  readonly dir: string | undefined;
  readonly #namespaces: Map<string, HostNamespace>;

  private constructor(dir: string | undefined, namespaces: Map<string, HostNamespace>) {
    this.dir = dir;
    this.#namespaces = namespaces;
  }

  static empty(): RegistryHosts {
    return new RegistryHosts(undefined, new Map());
  }

  /**
   * Reads every `<dir>/<namespace>/hosts.toml` (or Docker certificate files) and the files they
   * name. Throws WASMLET_ERR_REGISTRY_HOSTS_INVALID naming the file and what is wrong.
   */
  static load(dir: string): RegistryHosts {
    const root = resolve(dir);
    let entries: string[];
    try {
      if (!statSync(root).isDirectory()) throw Object.assign(new Error(), { code: "ENOTDIR" });
      entries = readdirSync(root).sort();
    } catch (error) {
      throw imageError(
        "WASMLET_ERR_REGISTRY_HOSTS_INVALID",
        `registry config dir ${root} cannot be read: ${(error as NodeJS.ErrnoException).code ?? error}`,
      );
    }
    const namespaces = new Map<string, HostNamespace>();
    for (const name of entries) {
      const nsDir = join(root, name);
      if (!statSync(nsDir).isDirectory()) continue;
      const file = join(nsDir, "hosts.toml");
      const hasFile = existsSync(file);
      const source = hasFile ? file : nsDir;
      try {
        const hosts = hasFile
          ? parseHostsToml(readFile(file, "hosts.toml"), nsDir)
          : certificateFiles(nsDir);
        namespaces.set(name, { source, name, hosts });
      } catch (error) {
        if (!(error instanceof HostsFileError)) throw error;
        throw imageError("WASMLET_ERR_REGISTRY_HOSTS_INVALID", `${source}: ${error.message}`);
      }
    }
    return new RegistryHosts(root, namespaces);
  }

  /** Parses one hosts.toml's text (tests and tools); relative paths resolve against `baseDir`. */
  static parse(text: string, baseDir: string, source = "hosts.toml"): HostNamespace {
    try {
      return { source, name: source, hosts: parseHostsToml(text, baseDir) };
    } catch (error) {
      if (!(error instanceof HostsFileError)) throw error;
      throw imageError("WASMLET_ERR_REGISTRY_HOSTS_INVALID", `${source}: ${error.message}`);
    }
  }

  /**
   * The namespace that configures `registry` (`host[:port]` as in references): the directory
   * `host_port_`, then `host:port`, then `_default` (containerd's order); undefined when none.
   */
  lookup(registry: string): HostNamespace | undefined {
    const colon = registry.lastIndexOf(":");
    const candidates =
      colon > 0 && !registry.endsWith("]")
        ? [`${registry.slice(0, colon)}_${registry.slice(colon + 1)}_`, registry]
        : [registry];
    for (const name of [...candidates, "_default"]) {
      const namespace = this.#namespaces.get(name);
      if (namespace) return namespace;
    }
    return undefined;
  }

  /** Namespaces by directory name, in name order. */
  get namespaces(): readonly HostNamespace[] {
    return [...this.#namespaces.values()];
  }
}
