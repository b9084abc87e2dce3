// Publishing a module as a CNCF wasm artifact (TAG Runtime layout): config
// `application/vnd.wasm.config.v0+json` (`os: wasip1`, `architecture: wasm`), one
// `application/wasm` layer, OCI image manifest with annotations (creation time, source…).
import { wasmKind } from "../wasm/binary.ts";
import type { RegistryCredential } from "./credentials.ts";
import { imageError } from "./errors.ts";
import { type Descriptor, MediaType } from "./manifest.ts";
import { formatReference, parseReference } from "./reference.ts";
import { type RegistryClient, sha256Digest } from "./registry-client.ts";

export const ANNOTATION_CREATED = "org.opencontainers.image.created";
export const ANNOTATION_SOURCE = "org.opencontainers.image.source";
export const ANNOTATION_TITLE = "org.opencontainers.image.title";
export const ANNOTATION_REVISION = "org.opencontainers.image.revision";

export interface PushOptions {
  client: RegistryClient;
  /** Credentials to try, in order (see CredentialSet.lookup). */
  credentials?: readonly RegistryCredential[];
  /** Manifest annotations (creation time is added unless given). */
  annotations?: Record<string, string>;
  /** The layer's file name (`org.opencontainers.image.title`). */
  title?: string;
  created?: Date;
  /** Called as the module's bytes go out. */
  onProgress?: (sent: number, total: number) => void;
  /** Upload chunk size for progress reporting. Default 256 KiB. */
  chunkBytes?: number;
}

export interface PushResult {
  /** Normalised reference pushed. */
  reference: string;
  /** The manifest's digest. */
  digest: string;
  /** `registry/repository@digest`. */
  pinned: string;
  config: Descriptor;
  layer: Descriptor;
  /** False when the registry already had the module's blob. */
  uploadedLayer: boolean;
  manifestSize: number;
}

/** The CNCF wasm artifact for a module: config and manifest bytes. */
export function buildWasmArtifact(
  module: Uint8Array,
  options: { annotations?: Record<string, string>; title?: string; created?: Date } = {},
): { config: Uint8Array; configDescriptor: Descriptor; layer: Descriptor; manifest: Uint8Array } {
  const created = (options.created ?? new Date()).toISOString();
  const layer: Descriptor = {
    mediaType: MediaType.wasmLayer,
    digest: sha256Digest(module),
    size: module.length,
  };
  if (options.title) layer.annotations = { [ANNOTATION_TITLE]: options.title };
  const config = Buffer.from(
    JSON.stringify({ created, architecture: "wasm", os: "wasip1", layerDigests: [layer.digest] }),
  );
  const configDescriptor: Descriptor = {
    mediaType: MediaType.wasmConfigV0,
    digest: sha256Digest(config),
    size: config.length,
  };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: configDescriptor,
      layers: [layer],
      annotations: { [ANNOTATION_CREATED]: created, ...options.annotations },
    }),
  );
  return { config, configDescriptor, layer, manifest };
}

function chunkedBody(
  bytes: Uint8Array,
  chunkBytes: number,
  onProgress?: (sent: number, total: number) => void,
) {
  return () => {
    let offset = 0;
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        if (offset >= bytes.length) {
          controller.close();
          return;
        }
        const end = Math.min(bytes.length, offset + chunkBytes);
        controller.enqueue(bytes.subarray(offset, end));
        offset = end;
        onProgress?.(offset, bytes.length);
      },
    });
  };
}

/** Pushes `module` (a core module or a component) as a CNCF wasm artifact to `reference`. */
export async function pushWasmArtifact(
  module: Uint8Array,
  reference: string,
  options: PushOptions,
): Promise<PushResult> {
  const ref = parseReference(reference);
  const kind = wasmKind(module);
  if (kind === "not-wasm")
    throw imageError(
      "WASMLET_ERR_IMAGE_INVALID_WASM",
      "the file is not WebAssembly (no \\0asm header)",
    );
  if (kind === "module" && !WebAssembly.validate(module as Uint8Array<ArrayBuffer>)) {
    throw imageError(
      "WASMLET_ERR_IMAGE_INVALID_WASM",
      "the file is not a valid WebAssembly module",
    );
  }
  const built = buildWasmArtifact(module, options);
  const repository = options.client.repository(
    ref.registry,
    ref.repository,
    options.credentials ?? [],
  );
  await repository.uploadBlob(
    built.configDescriptor.digest,
    built.config.length,
    () => built.config as Uint8Array<ArrayBuffer>,
  );
  const uploadedLayer = await repository.uploadBlob(
    built.layer.digest,
    module.length,
    chunkedBody(module, options.chunkBytes ?? 256 * 1024, options.onProgress),
  );
  if (!uploadedLayer) options.onProgress?.(module.length, module.length);
  const target = ref.digest ?? ref.tag ?? "latest";
  const digest = await repository.putManifest(target, built.manifest, MediaType.ociManifest);
  if (ref.digest && ref.digest !== digest) {
    throw imageError(
      "WASMLET_ERR_IMAGE_DIGEST_MISMATCH",
      `pushed manifest has digest ${digest}, not ${ref.digest}`,
    );
  }
  return {
    reference: formatReference(ref),
    digest,
    pinned: `${ref.registry}/${ref.repository}@${digest}`,
    config: built.configDescriptor,
    layer: built.layer,
    uploadedLayer,
    manifestSize: built.manifest.length,
  };
}
