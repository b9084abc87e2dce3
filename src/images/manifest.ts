// OCI and Docker manifest shapes: media types, descriptors, and strict-enough parsing of
// manifests, indexes and image configs (what wasmlet reads from them and nothing more).
import { imageError } from "./errors.ts";
import { isValidDigest } from "./reference.ts";

export const MediaType = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayerTar: "application/vnd.oci.image.layer.v1.tar",
  ociLayerTarGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerTarZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  ociLayerNondistTar: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  ociLayerNondistTarGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  ociEmpty: "application/vnd.oci.empty.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifestV1: "application/vnd.docker.distribution.manifest.v1+json",
  dockerManifestV1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerTarGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerLayerForeignTarGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  /** CNCF TAG Runtime wasm artifact. */
  wasmConfigV0: "application/vnd.wasm.config.v0+json",
  wasmLayer: "application/wasm",
  /** wasm-to-oci (Krustlet). */
  wasmToOciConfig: "application/vnd.wasm.config.v1+json",
  wasmToOciLayer: "application/vnd.wasm.content.layer.v1+wasm",
  wasmComponentLayer: "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
} as const;

/** The Accept header for manifest requests: OCI and Docker manifests and indexes. */
export const MANIFEST_ACCEPT = [
  MediaType.ociIndex,
  MediaType.ociManifest,
  MediaType.dockerManifestList,
  MediaType.dockerManifest,
].join(", ");

export const TAR_LAYER_TYPES: ReadonlySet<string> = new Set([
  MediaType.ociLayerTar,
  MediaType.ociLayerTarGzip,
  MediaType.ociLayerTarZstd,
  MediaType.ociLayerNondistTar,
  MediaType.ociLayerNondistTarGzip,
  MediaType.dockerLayerTarGzip,
  MediaType.dockerLayerForeignTarGzip,
]);

export const IMAGE_CONFIG_TYPES: ReadonlySet<string> = new Set([
  MediaType.ociConfig,
  MediaType.dockerConfig,
]);

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface ImageManifest {
  kind: "manifest";
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  kind: "index";
  mediaType: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** What wasmlet reads from an OCI/Docker image config. */
export interface ImageConfig {
  os?: string;
  architecture?: string;
  entrypoint: string[];
  cmd: string[];
  env: string[];
  workingDir: string | undefined;
  labels: Record<string, string>;
  created?: string;
}

function invalid(what: string, why: string): Error {
  return imageError("WASMLET_ERR_IMAGE_MANIFEST_INVALID", `${what}: ${why}`);
}

function parseDescriptor(value: unknown, what: string): Descriptor {
  if (typeof value !== "object" || value === null)
    throw invalid(what, "descriptor is not an object");
  const d = value as Record<string, unknown>;
  if (typeof d.mediaType !== "string") throw invalid(what, "descriptor has no mediaType");
  if (typeof d.digest !== "string" || !isValidDigest(d.digest))
    throw invalid(what, `bad digest ${String(d.digest)}`);
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw invalid(what, `bad size ${String(d.size)} for ${d.digest}`);
  }
  const out: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (typeof d.annotations === "object" && d.annotations !== null)
    out.annotations = d.annotations as Record<string, string>;
  if (typeof d.artifactType === "string") out.artifactType = d.artifactType;
  if (typeof d.platform === "object" && d.platform !== null) {
    const p = d.platform as Record<string, unknown>;
    out.platform = { os: String(p.os ?? ""), architecture: String(p.architecture ?? "") };
    if (typeof p.variant === "string") out.platform.variant = p.variant;
  }
  return out;
}

/**
 * Parses manifest bytes. The media type comes from the document, else from the response's
 * Content-Type, else from its shape (old registries omit it).
 */
export function parseManifest(
  bytes: Uint8Array,
  contentType: string | undefined,
  what: string,
): ImageManifest | ImageIndex {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw imageError("WASMLET_ERR_IMAGE_MANIFEST_INVALID", `${what}: manifest is not JSON`, {
      cause: error,
    });
  }
  if (typeof json !== "object" || json === null)
    throw invalid(what, "manifest is not a JSON object");
  const m = json as Record<string, unknown>;
  const headerType = contentType?.split(";")[0]?.trim();
  let mediaType = typeof m.mediaType === "string" ? m.mediaType : headerType;
  if (mediaType === undefined || mediaType === "" || mediaType === "application/json") {
    mediaType = Array.isArray(m.manifests)
      ? MediaType.ociIndex
      : Array.isArray(m.layers)
        ? MediaType.ociManifest
        : "";
  }
  if (
    mediaType === MediaType.dockerManifestV1 ||
    mediaType === MediaType.dockerManifestV1Signed ||
    m.schemaVersion === 1
  ) {
    throw invalid(
      what,
      "Docker schema 1 manifests are not supported (deprecated by Docker in 2019)",
    );
  }
  if (mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList) {
    if (!Array.isArray(m.manifests)) throw invalid(what, "index has no manifests array");
    const out: ImageIndex = {
      kind: "index",
      mediaType,
      manifests: m.manifests.map((d, i) => parseDescriptor(d, `${what} manifests[${i}]`)),
    };
    if (typeof m.annotations === "object" && m.annotations !== null)
      out.annotations = m.annotations as Record<string, string>;
    return out;
  }
  if (mediaType === MediaType.ociManifest || mediaType === MediaType.dockerManifest) {
    if (!Array.isArray(m.layers)) throw invalid(what, "manifest has no layers array");
    const out: ImageManifest = {
      kind: "manifest",
      mediaType,
      config: parseDescriptor(m.config, `${what} config`),
      layers: m.layers.map((d, i) => parseDescriptor(d, `${what} layers[${i}]`)),
    };
    if (typeof m.artifactType === "string") out.artifactType = m.artifactType;
    if (typeof m.annotations === "object" && m.annotations !== null)
      out.annotations = m.annotations as Record<string, string>;
    return out;
  }
  throw invalid(what, `unsupported manifest media type "${mediaType}"`);
}

function stringArray(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

/** Reads an image config (OCI or Docker). Unknown config types (e.g. wasm configs) give defaults. */
export function parseImageConfig(bytes: Uint8Array, what: string): ImageConfig {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw imageError("WASMLET_ERR_IMAGE_MANIFEST_INVALID", `${what}: image config is not JSON`, {
      cause: error,
    });
  }
  if (typeof json !== "object" || json === null)
    throw invalid(what, "image config is not a JSON object");
  const c = json as Record<string, unknown>;
  const inner = (typeof c.config === "object" && c.config !== null ? c.config : {}) as Record<
    string,
    unknown
  >;
  const out: ImageConfig = {
    entrypoint: stringArray(inner.Entrypoint),
    cmd: stringArray(inner.Cmd),
    env: stringArray(inner.Env),
    workingDir:
      typeof inner.WorkingDir === "string" && inner.WorkingDir !== ""
        ? inner.WorkingDir
        : undefined,
    labels:
      typeof inner.Labels === "object" && inner.Labels !== null
        ? (inner.Labels as Record<string, string>)
        : {},
  };
  if (typeof c.os === "string") out.os = c.os;
  if (typeof c.architecture === "string") out.architecture = c.architecture;
  if (typeof c.created === "string") out.created = c.created;
  return out;
}

export function emptyImageConfig(): ImageConfig {
  return { entrypoint: [], cmd: [], env: [], workingDir: undefined, labels: {} };
}
