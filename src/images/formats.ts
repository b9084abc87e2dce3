// The ways people publish wasm in OCI registries, and how wasmlet tells them apart:
//
// - `wasm-artifact`: the CNCF TAG Runtime layout — config `application/vnd.wasm.config.v0+json`,
//   one `application/wasm` layer (oras, runwasi's oci-tar-builder, `wasmlet push`);
// - `wasm-to-oci`: config `application/vnd.wasm.config.v1+json`, layer
//   `application/vnd.wasm.content.layer.v1+wasm` (what Krustlet pulled);
// - `container-image`: an ordinary image whose tar layers hold the `.wasm`; its config's
//   Entrypoint/Cmd name it (runwasi's `path#function` form included). It runs when that file is
//   wasm, whatever platform the config names (early wasm images said linux/amd64).
// - Indexes and Docker manifest lists: the `wasip1/wasm` entry, else `wasi/wasm`.
import { wasmKind } from "../wasm/binary.ts";
import { imageError } from "./errors.ts";
import {
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  MediaType,
  TAR_LAYER_TYPES,
} from "./manifest.ts";

export type ImageFormat = "wasm-artifact" | "wasm-to-oci" | "container-image";

export const NOT_WASM_HINT = "this is an ordinary container image; wasmlet runs WebAssembly";

const WASM_LAYER_TYPES: ReadonlyMap<string, ImageFormat> = new Map<string, ImageFormat>([
  [MediaType.wasmLayer, "wasm-artifact"],
  [MediaType.wasmToOciLayer, "wasm-to-oci"],
  // Other module layer types seen in the wild (runwasi, early oci-tar-builder).
  ["application/vnd.w3c.wasm.module.v1+wasm", "wasm-artifact"],
  ["application/vnd.bytecodealliance.wasm.module.layer.v0+wasm", "wasm-artifact"],
]);

const COMPONENT_LAYER_TYPES: ReadonlySet<string> = new Set([
  MediaType.wasmComponentLayer,
  "application/vnd.w3c.wasm.component.v1+wasm",
]);

/** Artifact types wasmlet recognises, to say what an unsupported artifact is. */
const KNOWN_ARTIFACTS: ReadonlyMap<string, string> = new Map([
  [
    "application/vnd.fermyon.spin.application.v1+config",
    "a Spin application (needs the Spin runtime)",
  ],
  ["application/vnd.cncf.helm.config.v1+json", "a Helm chart"],
  ["application/vnd.oci.image.config.v1+json", "an image without layers"],
]);

const WASM_PLATFORMS: readonly { os: string; architecture: string }[] = [
  { os: "wasip1", architecture: "wasm" },
  { os: "wasi", architecture: "wasm" },
];

function platformName(d: Descriptor): string {
  const p = d.platform;
  if (!p) return "(no platform)";
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

/** Chooses the wasm entry of an index; says clearly when there is none. */
export function selectPlatform(index: ImageIndex, what: string): Descriptor {
  for (const wanted of WASM_PLATFORMS) {
    const found = index.manifests.find(
      (d) => d.platform?.os === wanted.os && d.platform.architecture === wanted.architecture,
    );
    if (found) return found;
  }
  if (index.manifests.some((d) => d.platform?.os === "wasip2")) {
    throw imageError(
      "WASMLET_ERR_IMAGE_COMPONENT",
      `${what} offers only wasip2 (WebAssembly component) platforms`,
    );
  }
  // Attestation manifests (buildx) are not platforms anyone runs.
  const platforms = index.manifests
    .filter((d) => d.platform?.os !== "unknown")
    .map(platformName)
    .filter((p, i, all) => all.indexOf(p) === i);
  throw imageError(
    "WASMLET_ERR_IMAGE_NOT_WASM",
    `${what} has no wasm platform (wasip1/wasm or wasi/wasm); it offers ${platforms.join(", ") || "no platforms"}: ${NOT_WASM_HINT}`,
    { hint: NOT_WASM_HINT },
  );
}

export interface Classified {
  format: ImageFormat;
  /** The module layer for the artifact formats. */
  wasmLayer?: Descriptor;
  /** The tar layers, bottom to top, for container images. */
  tarLayers?: Descriptor[];
}

/** Decides which format a (platform) manifest is in, or fails saying what it is instead. */
export function classifyManifest(manifest: ImageManifest, what: string): Classified {
  const component = manifest.layers.find((l) => COMPONENT_LAYER_TYPES.has(l.mediaType));
  if (component) {
    throw imageError(
      "WASMLET_ERR_IMAGE_COMPONENT",
      `${what} is a WebAssembly component (layer ${component.mediaType}); wasmlet runs core modules`,
    );
  }
  const wasmLayers = manifest.layers.filter((l) => WASM_LAYER_TYPES.has(l.mediaType));
  if (wasmLayers.length > 1) {
    throw imageError(
      "WASMLET_ERR_IMAGE_MANIFEST_INVALID",
      `${what} has ${wasmLayers.length} wasm layers; wasmlet expects one module per image`,
    );
  }
  if (wasmLayers.length === 1) {
    const layer = wasmLayers[0]!;
    const format =
      manifest.config.mediaType === MediaType.wasmToOciConfig
        ? "wasm-to-oci"
        : WASM_LAYER_TYPES.get(layer.mediaType)!;
    return { format, wasmLayer: layer };
  }
  const tarLayers = manifest.layers.filter((l) => TAR_LAYER_TYPES.has(l.mediaType));
  if (tarLayers.length > 0 && tarLayers.length === manifest.layers.length) {
    return { format: "container-image", tarLayers };
  }
  const type = manifest.artifactType ?? manifest.config.mediaType;
  const known = KNOWN_ARTIFACTS.get(type);
  const layerTypes = [...new Set(manifest.layers.map((l) => l.mediaType))].join(", ") || "none";
  throw imageError(
    "WASMLET_ERR_IMAGE_MANIFEST_INVALID",
    `${what} is ${known ?? `an artifact of type ${type}`} with layers of type ${layerTypes}; wasmlet runs wasm artifacts (${MediaType.wasmLayer}) and images whose layers hold a .wasm entrypoint`,
  );
}

/** runwasi's `path#function` entrypoint form. */
export function splitFunction(argv0: string): { path: string; func: string | undefined } {
  const hash = argv0.lastIndexOf("#");
  if (hash <= 0) return { path: argv0, func: undefined };
  return { path: argv0.slice(0, hash), func: argv0.slice(hash + 1) || undefined };
}

/**
 * Fails unless `bytes` is a valid core module. Validation compiles asynchronously (V8 does it off
 * the main thread), where `WebAssembly.validate` would block the event loop ~100 ms per 20 MB.
 */
export async function assertRunnableWasm(
  bytes: Uint8Array,
  what: string,
  notWasmIsOrdinaryImage: boolean,
): Promise<void> {
  const kind = wasmKind(bytes);
  if (kind === "component") {
    throw imageError(
      "WASMLET_ERR_IMAGE_COMPONENT",
      `${what} is a WebAssembly component, not a core module`,
    );
  }
  if (kind === "not-wasm") {
    if (notWasmIsOrdinaryImage) {
      throw imageError(
        "WASMLET_ERR_IMAGE_NOT_WASM",
        `${what} is not WebAssembly: ${NOT_WASM_HINT}`,
        {
          hint: NOT_WASM_HINT,
        },
      );
    }
    throw imageError(
      "WASMLET_ERR_IMAGE_INVALID_WASM",
      `${what} is not WebAssembly (no \\0asm header)`,
    );
  }
  try {
    await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  } catch (error) {
    throw imageError(
      "WASMLET_ERR_IMAGE_INVALID_WASM",
      `${what} is not a valid WebAssembly module: ${(error as Error).message}`,
      { cause: error },
    );
  }
}
