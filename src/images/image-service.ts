// The image service: what the pods code calls to have an image on the node, and to get its
// compiled module. See index.ts for the API overview.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { ContentStore, type GcPolicy, type GcResult, type ImageRecord } from "./content-store.ts";
import type { CredentialProviders } from "./credential-providers.ts";
import {
  CredentialSet,
  credentialsFromPullSecrets,
  DockerConfigFile,
  type RegistryCredential,
} from "./credentials.ts";
import { imageError } from "./errors.ts";
import {
  assertRunnableWasm,
  classifyManifest,
  type ImageFormat,
  NOT_WASM_HINT,
  selectPlatform,
  splitFunction,
} from "./formats.ts";
import { findFile, findWasmFiles, type LayerFile, normalizeImagePath } from "./layers.ts";
import {
  emptyImageConfig,
  IMAGE_CONFIG_TYPES,
  type ImageConfig,
  type ImageManifest,
  MediaType,
  type Platform,
  parseImageConfig,
  parseManifest,
} from "./manifest.ts";
import { ModuleCache, type SupportedImports } from "./module-cache.ts";
import { defaultPullPolicy, type PullPolicy } from "./pull-policy.ts";
import {
  formatReference,
  type ImageReference,
  imageIdFor,
  parseReference,
  referenceTarget,
  repositoryName,
} from "./reference.ts";
import { RegistryClient, type RegistryClientOptions, type Repository } from "./registry-client.ts";
import { SharedWork } from "./shared-work.ts";

export interface SizeLimits {
  /** A manifest or index. Default 4 MiB (containerd's limit). */
  manifestBytes: number;
  /** An image config. Default 8 MiB. */
  configBytes: number;
  /** One tar layer. Default 1 GiB. */
  layerBytes: number;
  /** The module. Default 512 MiB. */
  wasmBytes: number;
  /** Everything an image's manifest lists. Default 2 GiB. */
  imageBytes: number;
}

export const DEFAULT_SIZE_LIMITS: SizeLimits = {
  manifestBytes: 4 * 1024 * 1024,
  configBytes: 8 * 1024 * 1024,
  layerBytes: 1024 * 1024 * 1024,
  wasmBytes: 512 * 1024 * 1024,
  imageBytes: 2 * 1024 * 1024 * 1024,
};

export interface ImageServiceOptions {
  /** wasmlet's data dir; images live in `<dataDir>/images`. */
  dataDir: string;
  /**
   * Registry client settings (plain-HTTP registries, mirrors, hosts.toml hosts, retries), or a
   * client to share (which the service then does not close).
   */
  registry?: RegistryClientOptions | RegistryClient;
  /** The node's docker config (`config.json`), used after a pod's pull secrets. */
  dockerConfigPath?: string;
  /** The kubelet's credential-provider plugins, asked after the pull secrets. */
  credentialProviders?: CredentialProviders;
  /** What the runtime provides (`module.name` or `module.*`); modules needing more are refused. */
  supportedImports?: SupportedImports;
  limits?: Partial<SizeLimits>;
  /** Garbage collection after each pull when the store passes a threshold. */
  gc?: GcPolicy & {
    /** Images used more recently than this are kept (kubelet: 2 minutes). */
    minAgeMs?: number;
  };
  /** References (or image IDs) of images the node's pods use: never collected. */
  inUse?: () => Iterable<string>;
  /** Compiled modules kept in memory. Default 64. */
  moduleCacheEntries?: number;
}

export interface EnsureOptions {
  /** Default: Kubernetes' rule (`Always` for `:latest`, else `IfNotPresent`). */
  pullPolicy?: PullPolicy;
  /** The pod's imagePullSecrets: decoded `.dockerconfigjson` or `.dockercfg` contents. */
  pullSecrets?: readonly string[];
  /** More credentials, tried after the pull secrets and before the node's. */
  credentials?: CredentialSet;
  /**
   * Container images only: the module's path inside the image when the pod's `command` names
   * one (default: the image's Entrypoint, else Cmd).
   */
  executable?: string;
  /**
   * Ends this call's wait (it rejects with the signal's reason). The pull itself, shared with
   * other calls for the same image, is aborted, down to its downloads, when no call waits for it.
   */
  signal?: AbortSignal;
}

/** An image present on the node, ready to compile and run. */
export interface PulledImage {
  /** Normalised reference: `docker.io/library/app:1`. */
  reference: string;
  /** `registry/repository`. */
  repository: string;
  /** What the reference resolved to (the index digest for multi-platform images). */
  digest: string;
  /** The manifest used (the wasm platform's manifest for an index). */
  manifestDigest: string;
  /** For pod status: `repository@digest`. */
  imageID: string;
  format: ImageFormat;
  /** The platform chosen from an index, else what the image config says (if anything). */
  platform: Platform | undefined;
  /** Digest of the module's bytes: the compile-cache key. */
  wasmDigest: string;
  /** The module file in the content store (read-only, shared). */
  wasmPath: string;
  wasmSize: number;
  /** Where the module sits inside a container image, e.g. `/app/hello.wasm`. */
  imagePath: string | undefined;
  /** runwasi's `path#function`: the export to call instead of `_start`. */
  wasmFunction: string | undefined;
  /** From the image config (empty for wasm artifacts); `#function` suffixes removed. */
  entrypoint: string[];
  cmd: string[];
  env: string[];
  workingDir: string | undefined;
  annotations: Record<string, string>;
  /** Bytes of every blob of the image. */
  size: number;
  /** True when this call downloaded content; false when the image was present (or unchanged). */
  pulled: boolean;
  pulledAt: string;
}

interface ModuleFile {
  digest: string;
  size: number;
  func: string | undefined;
}

interface RecordDetails {
  format: ImageFormat;
  platform?: Platform;
  config: ImageConfig;
  annotations: Record<string, string>;
  /** The default module: the wasm layer, or the entrypoint's file. */
  module: ModuleFile;
  imagePath?: string;
  /** Container images: tar layer digests, bottom to top. */
  layers?: string[];
  /** Container images: modules extracted by path. */
  files?: Record<string, ModuleFile>;
  size: number;
}

function details(record: ImageRecord): RecordDetails {
  return record.details as unknown as RecordDetails;
}

function credentialIdentity(credentials: readonly RegistryCredential[]): string {
  return createHash("sha256")
    .update(
      JSON.stringify(
        credentials.map((c) => [c.username, c.password, c.identityToken, c.registryToken]),
      ),
    )
    .digest("hex")
    .slice(0, 16);
}

export class ImageService {
  readonly store: ContentStore;
  readonly client: RegistryClient;
  readonly limits: SizeLimits;
  readonly modules: ModuleCache;
  readonly #nodeConfig: DockerConfigFile | undefined;
  readonly #credentialProviders: CredentialProviders | undefined;
  readonly #gc: ImageServiceOptions["gc"];
  readonly #inUse: (() => Iterable<string>) | undefined;
  readonly #pulls = new SharedWork<PulledImage>();
  readonly #ownsClient: boolean;
  #closed = false;

  constructor(options: ImageServiceOptions) {
    if (!options.dataDir) throw new TypeError("ImageService: dataDir is required");
    this.store = new ContentStore(join(options.dataDir, "images"));
    this.#ownsClient = !(options.registry instanceof RegistryClient);
    this.client =
      options.registry instanceof RegistryClient
        ? options.registry
        : new RegistryClient(options.registry);
    this.limits = { ...DEFAULT_SIZE_LIMITS, ...options.limits };
    for (const [name, value] of Object.entries(this.limits)) {
      if (!Number.isSafeInteger(value) || value <= 0)
        throw new TypeError(`ImageService: limits.${name} must be a positive integer`);
    }
    this.modules = new ModuleCache({
      supportedImports: options.supportedImports,
      maxEntries: options.moduleCacheEntries,
    });
    this.#credentialProviders = options.credentialProviders;
    this.#nodeConfig = options.dockerConfigPath
      ? new DockerConfigFile(options.dockerConfigPath)
      : undefined;
    this.#gc = options.gc;
    this.#inUse = options.inUse;
  }

  /** Opens the content store. Called by every operation; call it early to fail early. */
  start(): Promise<void> {
    return this.store.open();
  }

  /**
   * Makes the image present according to the pull policy and returns it. Concurrent calls for
   * the same reference and credentials share one pull, aborted once none of them waits for it
   * (see `signal`); blobs are downloaded once whatever the reference.
   */
  async ensure(reference: string, options: EnsureOptions = {}): Promise<PulledImage> {
    if (this.#closed) throw new Error("ImageService is closed");
    await this.start();
    const ref = parseReference(reference);
    const policy = options.pullPolicy ?? defaultPullPolicy(ref);
    const sets = [credentialsFromPullSecrets(options.pullSecrets ?? [])];
    if (options.credentials) sets.push(options.credentials);
    const provided = await this.#credentialProviders?.lookup(
      ref.registry,
      ref.repository,
      formatReference(ref),
    );
    if (provided) sets.push(provided.credentials);
    if (this.#nodeConfig) sets.push(await this.#nodeConfig.load());
    const credentials = CredentialSet.concat(...sets).lookup(ref.registry, ref.repository);
    const executable =
      options.executable === undefined
        ? undefined
        : normalizeImagePath(splitFunction(options.executable).path);
    const key = [
      formatReference(ref),
      policy,
      credentialIdentity(credentials),
      executable ?? "",
    ].join("|");
    const pull = this.#pulls.run(
      key,
      (signal) => this.#ensure(ref, policy, credentials, options.executable, signal),
      options.signal,
    );
    if (!provided?.errors.length) return pull;
    // A plugin's failure did not stop the pull (the image may be public); if the pull fails
    // anyway, say why credentials were missing.
    return pull.catch((error: unknown) => {
      if (error instanceof Error) error.message += ` (${provided.errors.join("; ")})`;
      throw error;
    });
  }

  /** The image if it is present (no network). */
  async get(reference: string): Promise<PulledImage | undefined> {
    await this.start();
    const ref = parseReference(reference);
    const record = this.#presentRecord(ref);
    return record ? this.#result(record, details(record).module, false) : undefined;
  }

  /** Every image present, for the node's status. */
  async list(): Promise<PulledImage[]> {
    await this.start();
    return this.store
      .records()
      .filter((r) => this.store.record(r.reference))
      .map((r) => this.#result(r, details(r).module, false));
  }

  /**
   * The compiled module for an image, compiled once per module digest and memory limit; its
   * imports are checked against the runtime's.
   */
  compile(
    image: PulledImage,
    options: { memoryLimitBytes?: number } = {},
  ): Promise<WebAssembly.Module> {
    return this.modules.get({
      digest: image.wasmDigest,
      what: `image ${image.reference}`,
      ...(options.memoryLimitBytes === undefined
        ? {}
        : { memoryLimitBytes: options.memoryLimitBytes }),
      load: () =>
        this.store.withPins([image.wasmDigest], () =>
          this.store.read(image.wasmDigest, this.limits.wasmBytes),
        ),
    });
  }

  /**
   * Collects images no pod uses, least recently used first, when the store passes the GC policy
   * (or always, with `force`), then removes blobs nothing refers to.
   */
  /**
   * `inUse` replaces the constructor's `inUse` callback for this call; `keep` adds references;
   * `force` collects every image not in use, whatever the thresholds and ages.
   */
  async gc(
    options: { inUse?: Iterable<string>; keep?: Iterable<string>; force?: boolean } = {},
  ): Promise<GcResult> {
    await this.start();
    const inUse = new Set<string>();
    for (const entry of [...(options.inUse ?? this.#inUse?.() ?? []), ...(options.keep ?? [])]) {
      inUse.add(entry);
      try {
        const ref = parseReference(entry);
        inUse.add(formatReference(ref));
        if (ref.digest) inUse.add(imageIdFor(ref, ref.digest));
      } catch {
        // an image ID or digest: matched as given
      }
    }
    const minAge = this.#gc?.minAgeMs ?? 2 * 60_000;
    const now = Date.now();
    const isInUse = (r: ImageRecord) =>
      inUse.has(r.reference) ||
      inUse.has(`${r.repository}@${r.digest}`) ||
      inUse.has(r.digest) ||
      inUse.has(`${r.repository}@${r.manifestDigest}`) ||
      (!options.force && now - Date.parse(r.lastUsedAt) < minAge);
    const toFree = options.force
      ? Number.POSITIVE_INFINITY
      : await this.store.bytesOverPolicy(this.#gc ?? {});
    const result = await this.store.collect(isInUse, toFree);
    // Running pods keep their modules; new ones of removed images are pulled and compiled again.
    this.modules.retain((digest) => this.store.has(digest));
    return result;
  }

  /** Waits for pulls in progress and pending writes; later calls fail. Safe to call twice. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#pulls.settled();
    await this.store.flush();
    if (this.#ownsClient) await this.client.close();
  }

  // --- internals -----------------------------------------------------------------------------

  #presentRecord(ref: ImageReference): ImageRecord | undefined {
    const record = this.store.record(formatReference(ref));
    if (record) return record;
    if (!ref.digest) return undefined;
    // Pulled under another reference (a tag) that resolved to this digest.
    const repository = repositoryName(ref);
    return this.store
      .records()
      .find(
        (r) =>
          r.repository === repository &&
          (r.digest === ref.digest || r.manifestDigest === ref.digest) &&
          this.store.record(r.reference),
      );
  }

  async #ensure(
    ref: ImageReference,
    policy: PullPolicy,
    credentials: readonly RegistryCredential[],
    executable: string | undefined,
    signal: AbortSignal,
  ): Promise<PulledImage> {
    const what = `image ${formatReference(ref)}`;
    const present = this.#presentRecord(ref);
    if (present && (policy !== "Always" || ref.digest))
      return this.#use(ref, present, executable, false);
    if (!present && policy === "Never") {
      throw imageError(
        "WASMLET_ERR_IMAGE_NEVER_PULL",
        `${what} is not present on this node and its pull policy is "Never"`,
      );
    }
    const repository = this.client.repository(ref.registry, ref.repository, credentials);
    if (present) {
      // Always: ask the registry what the tag points at; unchanged means nothing to download.
      const head = await repository.resolve(referenceTarget(ref), signal).catch(() => undefined);
      signal.throwIfAborted();
      if (head?.digest === present.digest) return this.#use(ref, present, executable, false);
    }
    const record = await this.#pull(ref, repository, what, signal);
    const image = await this.#use(ref, record, executable, true);
    // The image just pulled is about to be used: never its own GC victim.
    if (this.#gc) await this.gc({ keep: [image.reference] }).catch(() => undefined);
    return image;
  }

  /** Records the reference as used and returns it (extracting another module path if asked). */
  async #use(
    ref: ImageReference,
    record: ImageRecord,
    executable: string | undefined,
    pulled: boolean,
  ): Promise<PulledImage> {
    const key = formatReference(ref);
    const module =
      executable === undefined ? details(record).module : await this.#moduleAt(record, executable);
    if (record.reference === key) {
      this.store.markUsed(key);
      return this.#result(record, module, pulled);
    }
    const now = new Date().toISOString();
    const stored = { ...record, reference: key, pulledAt: now, lastUsedAt: now };
    await this.store.putRecord(stored);
    return this.#result(stored, module, pulled);
  }

  /** A container image's module at `executable` (from the stored layers, no network). */
  async #moduleAt(record: ImageRecord, executable: string): Promise<ModuleFile> {
    const d = details(record);
    const { path: raw, func } = splitFunction(executable);
    const path = normalizeImagePath(raw);
    if (d.format !== "container-image") return d.module;
    if (path === d.imagePath) return { ...d.module, func: func ?? d.module.func };
    const known = d.files?.[path];
    if (known && this.store.has(known.digest)) return { ...known, func };
    const file = await this.#extract(record.reference, d.layers ?? [], path);
    d.files = { ...d.files, [path]: { ...file, func: undefined } };
    record.blobs = [...new Set([...record.blobs, file.digest])];
    return { ...file, func };
  }

  async #extract(
    what: string,
    layers: readonly string[],
    path: string,
  ): Promise<{ digest: string; size: number }> {
    const files: LayerFile[] = layers.map((digest) => ({
      digest,
      path: this.store.blobPath(digest),
    }));
    const lookup = await findFile(files, path, this.limits.wasmBytes);
    if (!lookup.found) {
      const why =
        lookup.reason === "whiteout"
          ? "deleted by a later layer"
          : lookup.reason === "not-a-file"
            ? "not a regular file"
            : "not in any layer";
      throw imageError(
        "WASMLET_ERR_IMAGE_ENTRYPOINT_MISSING",
        `${what}: entrypoint ${path} is ${why}`,
      );
    }
    await assertRunnableWasm(lookup.bytes, `${what}: entrypoint ${path}`, true);
    const digest = await this.store.putBytes(lookup.bytes);
    return { digest, size: lookup.bytes.length };
  }

  async #pull(
    ref: ImageReference,
    repository: Repository,
    what: string,
    signal: AbortSignal,
  ): Promise<ImageRecord> {
    const pinned: string[] = [];
    const pin = (digest: string) => {
      this.store.pin(digest);
      pinned.push(digest);
    };
    try {
      const top = await repository.getManifest(
        referenceTarget(ref),
        this.limits.manifestBytes,
        signal,
      );
      pin(top.digest);
      await this.store.putBytes(top.bytes);
      const blobs = [top.digest];
      const parsed = parseManifest(top.bytes, top.mediaType, what);
      let manifest: ImageManifest;
      let manifestDigest = top.digest;
      let platform: Platform | undefined;
      if (parsed.kind === "index") {
        const entry = selectPlatform(parsed, what);
        platform = entry.platform;
        const inner = await repository.getManifest(entry.digest, this.limits.manifestBytes, signal);
        pin(inner.digest);
        await this.store.putBytes(inner.bytes);
        blobs.push(inner.digest);
        manifestDigest = inner.digest;
        const innerParsed = parseManifest(
          inner.bytes,
          inner.mediaType ?? entry.mediaType,
          `${what} (${entry.digest})`,
        );
        if (innerParsed.kind !== "manifest") {
          throw imageError(
            "WASMLET_ERR_IMAGE_MANIFEST_INVALID",
            `${what}: the ${platform?.os}/${platform?.architecture} entry is itself an index`,
          );
        }
        manifest = innerParsed;
      } else {
        manifest = parsed;
      }
      const classified = classifyManifest(manifest, what);
      const total = manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0);
      if (total > this.limits.imageBytes) {
        throw imageError(
          "WASMLET_ERR_IMAGE_TOO_LARGE",
          `${what} is ${total} bytes, more than the limit of ${this.limits.imageBytes}`,
        );
      }
      const fetchBlob = async (digest: string, size: number, max: number) => {
        pin(digest);
        blobs.push(digest);
        await this.store.ingest(
          digest,
          size,
          max,
          async (download) => {
            const blob = await repository.getBlob(digest, download);
            return {
              body: blob.body,
              origin: `registry ${repository.registry} (${blob.endpoint.base})`,
            };
          },
          signal,
        );
      };

      // The config: entrypoint, cmd, env, working dir for images; platform facts for artifacts.
      await fetchBlob(manifest.config.digest, manifest.config.size, this.limits.configBytes);
      let config = emptyImageConfig();
      const configType = manifest.config.mediaType;
      if (
        IMAGE_CONFIG_TYPES.has(configType) ||
        configType === MediaType.wasmConfigV0 ||
        configType === MediaType.wasmToOciConfig
      ) {
        const bytes = await this.store.read(manifest.config.digest, this.limits.configBytes);
        if (bytes.length > 0) config = parseImageConfig(bytes, what);
      }
      platform ??=
        config.os && config.architecture
          ? { os: config.os, architecture: config.architecture }
          : undefined;
      const annotations = {
        ...manifest.annotations,
        ...(parsed.kind === "index" ? parsed.annotations : {}),
      };

      let module: ModuleFile;
      let imagePath: string | undefined;
      let layers: string[] | undefined;
      if (classified.wasmLayer) {
        const layer = classified.wasmLayer;
        await fetchBlob(layer.digest, layer.size, this.limits.wasmBytes);
        const bytes = await this.store.read(layer.digest, this.limits.wasmBytes);
        await assertRunnableWasm(bytes, `${what}: wasm layer ${layer.digest}`, false);
        module = { digest: layer.digest, size: layer.size, func: undefined };
      } else {
        layers = classified.tarLayers!.map((l) => l.digest);
        for (const layer of classified.tarLayers!)
          await fetchBlob(layer.digest, layer.size, this.limits.layerBytes);
        const argv0 = config.entrypoint[0] ?? config.cmd[0];
        let path: string;
        let func: string | undefined;
        if (argv0 !== undefined) {
          ({ path, func } = splitFunction(argv0));
        } else {
          const candidates = await findWasmFiles(
            layers.map((digest) => ({ digest, path: this.store.blobPath(digest) })),
          );
          if (candidates.length === 0) {
            throw imageError(
              "WASMLET_ERR_IMAGE_NOT_WASM",
              `${what} has no entrypoint and no .wasm file: ${NOT_WASM_HINT}`,
              { hint: NOT_WASM_HINT },
            );
          }
          if (candidates.length > 1) {
            throw imageError(
              "WASMLET_ERR_IMAGE_ENTRYPOINT_MISSING",
              `${what} has no entrypoint and several .wasm files (${candidates.join(", ")})`,
              {
                hint: "set the image's ENTRYPOINT or the pod's command to the module to run",
              },
            );
          }
          path = candidates[0]!;
        }
        imagePath = normalizeImagePath(path);
        const file = await this.#extract(what, layers, imagePath);
        pin(file.digest);
        blobs.push(file.digest);
        module = { ...file, func };
        // runwasi's `path#function` is not an argument: the result's argv carries the path alone.
        if (config.entrypoint.length > 0) config.entrypoint = [path, ...config.entrypoint.slice(1)];
        else config.cmd = [path, ...config.cmd.slice(1)];
      }
      const now = new Date().toISOString();
      const recordDetails: RecordDetails = {
        format: classified.format,
        config,
        annotations,
        module,
        size: 0,
      };
      if (platform) recordDetails.platform = platform;
      if (imagePath !== undefined) recordDetails.imagePath = imagePath;
      if (layers) recordDetails.layers = layers;
      const unique = [...new Set(blobs)];
      recordDetails.size = unique.reduce((n, d) => n + (this.store.blobSize(d) ?? 0), 0);
      const record: ImageRecord = {
        reference: formatReference(ref),
        repository: repositoryName(ref),
        digest: top.digest,
        manifestDigest,
        blobs: unique,
        pulledAt: now,
        lastUsedAt: now,
        details: recordDetails as unknown as Record<string, unknown>,
      };
      await this.store.putRecord(record);
      return record;
    } finally {
      for (const digest of pinned) this.store.unpin(digest);
    }
  }

  #result(record: ImageRecord, module: ModuleFile, pulled: boolean): PulledImage {
    const d = details(record);
    const ref = parseReference(record.reference);
    return {
      reference: record.reference,
      repository: record.repository,
      digest: record.digest,
      manifestDigest: record.manifestDigest,
      imageID: imageIdFor(ref, record.digest),
      format: d.format,
      platform: d.platform,
      wasmDigest: module.digest,
      wasmPath: this.store.blobPath(module.digest),
      wasmSize: module.size,
      imagePath: d.imagePath,
      wasmFunction: module.func,
      entrypoint: [...d.config.entrypoint],
      cmd: [...d.config.cmd],
      env: [...d.config.env],
      workingDir: d.config.workingDir,
      annotations: { ...d.annotations },
      size: d.size,
      pulled,
      pulledAt: record.pulledAt,
    };
  }
}
