// Image references, parsed and normalised exactly like Docker and containerd do
// (github.com/distribution/reference): `docker.io` is the default registry, single-component
// names get `library/`, `index.docker.io` is `docker.io`, the first component is a registry only
// when it has a `.` or a `:` or is `localhost` (or has upper case), a reference without tag or
// digest means `:latest`, and docker.io is served by `registry-1.docker.io`.
import { imageError } from "./errors.ts";

export const DEFAULT_REGISTRY = "docker.io";
export const DOCKER_HUB_HOST = "registry-1.docker.io";
const LEGACY_DEFAULT_REGISTRY = "index.docker.io";
const OFFICIAL_REPO_PREFIX = "library/";
export const DEFAULT_TAG = "latest";
const NAME_TOTAL_LENGTH_MAX = 255;

// The distribution/reference grammar.
const alphanumeric = "[a-z0-9]+";
const separator = "(?:[._]|__|[-]+)";
const pathComponent = `${alphanumeric}(?:${separator}${alphanumeric})*`;
const domainComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const ipv6 = "\\[(?:[a-fA-F0-9:]+)\\]";
const domainName = `${domainComponent}(?:\\.${domainComponent})*`;
const host = `(?:${domainName}|${ipv6})`;
const domain = `${host}(?::[0-9]+)?`;
const PATH_RE = new RegExp(`^${pathComponent}(?:/${pathComponent})*$`);
const DOMAIN_RE = new RegExp(`^${domain}$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const SHA256_HEX_RE = /^[a-f0-9]{64}$/;

export interface ImageReference {
  /** Registry as written in normalised references: `docker.io`, `ghcr.io`, `localhost:5000`. */
  readonly registry: string;
  /** Repository path inside the registry: `library/nginx`, `team/app`. */
  readonly repository: string;
  /** The tag, when the reference names one (`latest` is filled in when neither tag nor digest is given). */
  readonly tag: string | undefined;
  /** `sha256:…` when the reference pins a digest. */
  readonly digest: string | undefined;
}

function invalid(input: string, why: string): Error {
  return imageError(
    "WASMLET_ERR_IMAGE_REFERENCE_INVALID",
    `invalid image reference "${input}": ${why}`,
  );
}

/** Checks a digest string (`algorithm:hex`); sha256 digests must be 64 lower-case hex digits. */
export function isValidDigest(value: string): boolean {
  if (!DIGEST_RE.test(value)) return false;
  const [algorithm, hex] = value.split(":") as [string, string];
  if (algorithm === "sha256") return SHA256_HEX_RE.test(hex);
  if (algorithm === "sha512") return /^[a-f0-9]{128}$/.test(hex);
  return true;
}

/**
 * Parses and normalises a reference the way `docker pull` and containerd do. A reference with
 * neither tag nor digest gets the tag `latest`; one with both keeps both (the digest wins for
 * pulling).
 */
export function parseReference(input: string): ImageReference {
  if (input.length === 0) throw invalid(input, "empty reference");
  if (input !== input.trim()) throw invalid(input, "surrounding whitespace");
  if (SHA256_HEX_RE.test(input)) {
    throw invalid(input, "a 64-character hexadecimal string is an image ID, not a repository name");
  }
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isValidDigest(digest)) throw invalid(input, `bad digest "${digest}"`);
  }
  let tag: string | undefined;
  // A tag is after the last ':' that comes after the last '/' (a ':' before it is a port).
  const lastColon = rest.lastIndexOf(":");
  if (lastColon > rest.lastIndexOf("/") && !rest.slice(lastColon).includes("]")) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG_RE.test(tag)) throw invalid(input, `bad tag "${tag}"`);
  }
  if (rest.length === 0) throw invalid(input, "missing repository name");

  let registry: string;
  let repository: string;
  const slash = rest.indexOf("/");
  const first = slash === -1 ? "" : rest.slice(0, slash);
  if (
    slash === -1 ||
    (!/[.:]/.test(first) && first !== "localhost" && first.toLowerCase() === first)
  ) {
    registry = DEFAULT_REGISTRY;
    repository = rest;
  } else {
    registry = first;
    repository = rest.slice(slash + 1);
    if (!DOMAIN_RE.test(registry)) throw invalid(input, `bad registry host "${registry}"`);
  }
  if (registry === LEGACY_DEFAULT_REGISTRY) registry = DEFAULT_REGISTRY;
  if (registry === DEFAULT_REGISTRY && !repository.includes("/")) {
    repository = OFFICIAL_REPO_PREFIX + repository;
  }
  if (repository.toLowerCase() !== repository)
    throw invalid(input, "repository name must be lowercase");
  if (!PATH_RE.test(repository)) throw invalid(input, `bad repository name "${repository}"`);
  if (`${registry}/${repository}`.length > NAME_TOTAL_LENGTH_MAX) {
    throw invalid(input, `repository name longer than ${NAME_TOTAL_LENGTH_MAX} characters`);
  }
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return { registry, repository, tag, digest };
}

/** `registry/repository`, e.g. `docker.io/library/nginx`. */
export function repositoryName(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}`;
}

/** The fully normalised string: `docker.io/library/nginx:latest`, `host:5000/a/b@sha256:…`. */
export function formatReference(ref: ImageReference): string {
  let out = repositoryName(ref);
  if (ref.tag !== undefined) out += `:${ref.tag}`;
  if (ref.digest !== undefined) out += `@${ref.digest}`;
  return out;
}

/** Docker's short form: `nginx:latest`, `team/app:1`, `ghcr.io/x/y@sha256:…`. */
export function familiarReference(ref: ImageReference): string {
  let name = repositoryName(ref);
  if (ref.registry === DEFAULT_REGISTRY) {
    name = ref.repository.startsWith(OFFICIAL_REPO_PREFIX)
      ? ref.repository.slice(OFFICIAL_REPO_PREFIX.length)
      : ref.repository;
  }
  if (ref.tag !== undefined) name += `:${ref.tag}`;
  if (ref.digest !== undefined) name += `@${ref.digest}`;
  return name;
}

/** What a pull resolves: the digest when there is one, else the tag. */
export function referenceTarget(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}

/** The host serving the registry's API: `registry-1.docker.io` for docker.io, else the registry. */
export function registryHost(registry: string): string {
  return registry === DEFAULT_REGISTRY ? DOCKER_HUB_HOST : registry;
}

/** Loopback registries talk plain HTTP by default, like containerd. */
export function isLoopbackRegistry(registry: string): boolean {
  const hostname = registry.replace(/:[0-9]+$/, "");
  return (
    hostname === "localhost" ||
    hostname.endsWith(".localhost") ||
    /^127\.[0-9]+\.[0-9]+\.[0-9]+$/.test(hostname) ||
    hostname === "[::1]"
  );
}

/** The image ID reported in pod status: `repository@digest` (containerd's repo digest). */
export function imageIdFor(ref: ImageReference, digest: string): string {
  return `${repositoryName(ref)}@${digest}`;
}
