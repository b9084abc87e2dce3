// Test-side publishing of every image layout wasmlet pulls, over HTTP with wasmlet's own client:
// blobs (POST then PUT), manifests and indexes, tar layers built from a file map.
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { create } from "tar";
import type { RegistryCredential } from "../../../../src/images/credentials.ts";
import { type Descriptor, MediaType } from "../../../../src/images/manifest.ts";
import { type RegistryClient, sha256Digest } from "../../../../src/images/registry-client.ts";

export interface Target {
  client: RegistryClient;
  registry: string;
  repository: string;
  credentials?: RegistryCredential[];
}

function repo(t: Target) {
  return t.client.repository(t.registry, t.repository, t.credentials ?? []);
}

export async function pushBlob(
  t: Target,
  bytes: Uint8Array,
  mediaType: string,
  extra: Partial<Descriptor> = {},
): Promise<Descriptor> {
  const digest = sha256Digest(bytes);
  await repo(t).uploadBlob(digest, bytes.length, () => bytes as Uint8Array<ArrayBuffer>);
  return { mediaType, digest, size: bytes.length, ...extra };
}

export async function pushJson(
  t: Target,
  target: string,
  json: unknown,
  mediaType: string,
): Promise<Descriptor> {
  const bytes = Buffer.from(JSON.stringify(json));
  const digest = await repo(t).putManifest(target, bytes, mediaType);
  return { mediaType, digest, size: bytes.length };
}

export type TarEntry = Uint8Array | string | { symlink: string };

/** A tar (gzip unless told) holding `files` (paths relative to the image root). */
export async function makeTar(files: Record<string, TarEntry>, gzip = true): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), "wasmlet-tar-"));
  try {
    for (const [path, content] of Object.entries(files)) {
      const full = join(dir, path);
      await mkdir(dirname(full), { recursive: true });
      if (typeof content === "object" && "symlink" in content) await symlink(content.symlink, full);
      else await writeFile(full, content);
    }
    const out = join(dir, "..", `${dir.split("/").pop()}.tar`);
    await create(
      { cwd: dir, file: out, gzip, portable: true },
      Object.keys(files).map((p) => p.replace(/^\//, "")),
    );
    const bytes = await readFile(out);
    await rm(out);
    return bytes;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** CNCF wasm artifact (by hand, independent of wasmlet's push). */
export async function pushCncfArtifact(
  t: Target,
  tag: string,
  wasm: Uint8Array,
  layerType: string = MediaType.wasmLayer,
): Promise<Descriptor> {
  const config = await pushBlob(
    t,
    Buffer.from(JSON.stringify({ architecture: "wasm", os: "wasip1" })),
    MediaType.wasmConfigV0,
  );
  const layer = await pushBlob(t, wasm, layerType);
  return pushJson(
    t,
    tag,
    { schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [layer] },
    MediaType.ociManifest,
  );
}

/** wasm-to-oci layout (what Krustlet pulled). */
export async function pushWasmToOci(t: Target, tag: string, wasm: Uint8Array): Promise<Descriptor> {
  const config = await pushBlob(t, Buffer.from("{}"), MediaType.wasmToOciConfig);
  const layer = await pushBlob(t, wasm, MediaType.wasmToOciLayer);
  return pushJson(t, tag, { schemaVersion: 2, config, layers: [layer] }, MediaType.ociManifest);
}

export interface ContainerImageSpec {
  layers: Buffer[];
  config: { Entrypoint?: string[]; Cmd?: string[]; Env?: string[]; WorkingDir?: string };
  os?: string;
  architecture?: string;
  docker?: boolean;
  /** The layers' media type; by default tar+gzip of the OCI or Docker kind. */
  layerMediaType?: string;
}

/** An ordinary image (OCI or Docker media types) whose tar layers hold the module. */
export async function pushContainerImage(
  t: Target,
  tag: string,
  spec: ContainerImageSpec,
): Promise<Descriptor> {
  const layerType =
    spec.layerMediaType ?? (spec.docker ? MediaType.dockerLayerTarGzip : MediaType.ociLayerTarGzip);
  const layers: Descriptor[] = [];
  for (const l of spec.layers) layers.push(await pushBlob(t, l, layerType));
  const config = await pushBlob(
    t,
    Buffer.from(
      JSON.stringify({
        architecture: spec.architecture ?? "amd64",
        os: spec.os ?? "linux",
        config: spec.config,
        rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
      }),
    ),
    spec.docker ? MediaType.dockerConfig : MediaType.ociConfig,
  );
  const mediaType = spec.docker ? MediaType.dockerManifest : MediaType.ociManifest;
  return pushJson(t, tag, { schemaVersion: 2, mediaType, config, layers }, mediaType);
}

/** An index (or Docker manifest list) over already pushed manifests. */
export async function pushIndex(
  t: Target,
  tag: string,
  entries: { descriptor: Descriptor; os: string; architecture: string }[],
  docker = false,
): Promise<Descriptor> {
  const mediaType = docker ? MediaType.dockerManifestList : MediaType.ociIndex;
  return pushJson(
    t,
    tag,
    {
      schemaVersion: 2,
      mediaType,
      manifests: entries.map((e) => ({
        ...e.descriptor,
        platform: { os: e.os, architecture: e.architecture },
      })),
    },
    mediaType,
  );
}
