// The content-addressed store under the data dir, shared by every pod:
//
//   <root>/blobs/sha256/<hex>   verified blobs (manifests, configs, layers, modules)
//   <root>/ingest/              downloads in progress (removed at start)
//   <root>/images.json          one record per pulled reference (written atomically)
//
// A blob is streamed to `ingest/`, hashed on the way, and renamed into `blobs/` only when its
// digest and size match. Concurrent ingests of one digest share one download, aborted when the
// last of them stops waiting. Blobs read back for use are hashed again, so a blob corrupted on
// disk is detected, not run.
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import {
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  statfs,
  unlink,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { imageError } from "./errors.ts";
import { randomSuffix, sha256Digest } from "./registry-client.ts";
import { SharedWork } from "./shared-work.ts";

/** One pulled reference, as stored in images.json. */
export interface ImageRecord {
  /** Normalised reference as pulled: `docker.io/library/app:1`, `host/a@sha256:…`. */
  reference: string;
  /** `registry/repository`. */
  repository: string;
  /** What the reference resolved to: the index digest for multi-platform images. */
  digest: string;
  /** The manifest that was used (the platform's manifest for an index). */
  manifestDigest: string;
  /** Every blob the image needs (manifests, config, layers, extracted modules). */
  blobs: string[];
  pulledAt: string;
  lastUsedAt: string;
  /** Format-specific facts, opaque to the store. */
  details: Record<string, unknown>;
}

export interface GcPolicy {
  /** Collect when the store holds more than this many bytes, down to `lowBytes` (default 80 % of it). */
  highBytes?: number;
  lowBytes?: number;
  /** Kubelet style: collect when the data dir's filesystem is fuller than this percentage, down to `lowPercent`. */
  highPercent?: number;
  lowPercent?: number;
}

export interface GcResult {
  /** References whose records were removed. */
  removedImages: string[];
  removedBlobs: number;
  freedBytes: number;
  /** Store size after collection. */
  storeBytes: number;
}

/** Opens the blob's body; `signal` ends the request and the body. */
export type IngestSourceFactory = (signal: AbortSignal) => Promise<IngestSource>;

interface IngestSource {
  body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;
  /** Where the bytes come from, for messages. */
  origin: string;
}

/** Attempts at one blob whose body stream breaks off (the request itself has its own retries). */
const DOWNLOAD_ATTEMPTS = 3;

/** The blob's body stream failed: the connection, not the content. */
class BrokenDownload extends Error {
  readonly origin: string;
  readonly received: number;
  constructor(origin: string, received: number, cause: unknown) {
    super("download broke off", { cause });
    this.origin = origin;
    this.received = received;
  }
}

function describeCause(cause: unknown): string {
  const inner = (cause as { cause?: { code?: string; message?: string } })?.cause;
  return inner?.code ?? inner?.message ?? (cause as Error)?.message ?? String(cause);
}

export class ContentStore {
  readonly root: string;
  readonly #blobDir: string;
  readonly #ingestDir: string;
  readonly #dbFile: string;
  readonly #downloads = new SharedWork<boolean>();
  /** Digests that an operation in progress needs: GC leaves them alone. */
  readonly #pins = new Map<string, number>();
  #records = new Map<string, ImageRecord>();
  #sizes = new Map<string, number>();
  /** Blobs hashed by this process, with the file identity they had: read() skips re-hashing them. */
  readonly #verified = new Map<string, string>();
  #ready: Promise<void> | undefined;
  #writeChain: Promise<void> = Promise.resolve();
  #usedSave: NodeJS.Timeout | undefined;

  constructor(root: string) {
    this.root = root;
    this.#blobDir = join(root, "blobs", "sha256");
    this.#ingestDir = join(root, "ingest");
    this.#dbFile = join(root, "images.json");
  }

  /** Creates the layout, clears half-finished downloads, loads the records. Idempotent. */
  open(): Promise<void> {
    this.#ready ??= this.#open();
    return this.#ready;
  }

  async #open(): Promise<void> {
    await mkdir(this.#blobDir, { recursive: true });
    await rm(this.#ingestDir, { recursive: true, force: true });
    await mkdir(this.#ingestDir, { recursive: true });
    for (const name of await readdir(this.#blobDir)) {
      const info = await stat(join(this.#blobDir, name)).catch(() => undefined);
      if (info?.isFile()) this.#sizes.set(`sha256:${name}`, info.size);
    }
    const text = await readFile(this.#dbFile, "utf8").catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return "[]";
      throw error;
    });
    let records: ImageRecord[] = [];
    try {
      records = JSON.parse(text) as ImageRecord[];
    } catch {
      // A damaged index loses the records, not the blobs; images are pulled again.
      records = [];
    }
    this.#records = new Map(records.map((r) => [r.reference, r]));
  }

  blobPath(digest: string): string {
    const [algorithm, hex] = digest.split(":");
    if (algorithm !== "sha256" || !hex || !/^[a-f0-9]{64}$/.test(hex)) {
      throw imageError(
        "WASMLET_ERR_IMAGE_MANIFEST_INVALID",
        `unsupported digest ${digest} (wasmlet stores sha256 content)`,
      );
    }
    return join(this.#blobDir, hex);
  }

  has(digest: string): boolean {
    return this.#sizes.has(digest);
  }

  /** Bytes held in blobs. */
  get size(): number {
    let total = 0;
    for (const size of this.#sizes.values()) total += size;
    return total;
  }

  blobSize(digest: string): number | undefined {
    return this.#sizes.get(digest);
  }

  /**
   * Makes sure the blob is in the store: downloads it from `source()` unless present, verifying
   * digest and size. Concurrent calls for one digest share a download; `signal` ends this call's
   * wait, and the download once no call waits for it. Resolves to true when this call (or the one
   * it joined) downloaded it.
   */
  ingest(
    digest: string,
    size: number,
    maxBytes: number,
    source: IngestSourceFactory,
    signal?: AbortSignal,
  ): Promise<boolean> {
    this.blobPath(digest);
    if (this.#sizes.has(digest)) return Promise.resolve(false);
    if (size > maxBytes) {
      return Promise.reject(
        imageError(
          "WASMLET_ERR_IMAGE_TOO_LARGE",
          `blob ${digest} declares ${size} bytes, more than the limit of ${maxBytes}`,
        ),
      );
    }
    return this.#downloads.run(
      digest,
      (shared) => this.#download(digest, size, source, shared),
      signal,
    );
  }

  /** Downloads again when the connection breaks mid-blob; a wrong blob is not asked for twice. */
  async #download(
    digest: string,
    size: number,
    source: IngestSourceFactory,
    signal: AbortSignal,
  ): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#downloadOnce(digest, size, source, signal);
      } catch (error) {
        signal.throwIfAborted();
        if (!(error instanceof BrokenDownload)) throw error;
        if (attempt >= DOWNLOAD_ATTEMPTS) {
          throw imageError(
            "WASMLET_ERR_IMAGE_REGISTRY_UNAVAILABLE",
            `the download of blob ${digest} from ${error.origin} broke off ${attempt} times (last after ${error.received} of ${size} bytes: ${describeCause(error.cause)})`,
            { cause: error.cause },
          );
        }
      }
    }
  }

  async #downloadOnce(
    digest: string,
    size: number,
    source: IngestSourceFactory,
    signal: AbortSignal,
  ): Promise<boolean> {
    const { body, origin } = await source(signal);
    const tmp = join(this.#ingestDir, `${digest.slice(7)}.${randomSuffix()}`);
    const hash = createHash("sha256");
    let received = 0;
    const check = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        if (received > size) {
          callback(
            imageError(
              "WASMLET_ERR_IMAGE_DIGEST_MISMATCH",
              `blob ${digest} from ${origin} is longer than the ${size} bytes its descriptor declares`,
            ),
          );
          return;
        }
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    const readable =
      body instanceof ReadableStream
        ? Readable.fromWeb(body as import("node:stream/web").ReadableStream<Uint8Array>)
        : Readable.from(body);
    // The stream that fails first emits first; the pipeline then destroys the others with it.
    let failedFirst: "body" | "other" | undefined;
    const file = createWriteStream(tmp);
    readable.once("error", () => {
      failedFirst ??= "body";
    });
    for (const stream of [check, file])
      stream.once("error", () => {
        failedFirst ??= "other";
      });
    try {
      await pipeline(readable, check, file, { signal }).catch((error: unknown) => {
        throw failedFirst === "body" ? new BrokenDownload(origin, received, error) : error;
      });
      const actual = `sha256:${hash.digest("hex")}`;
      if (received !== size) {
        throw imageError(
          "WASMLET_ERR_IMAGE_DIGEST_MISMATCH",
          `blob ${digest} from ${origin} has ${received} bytes, its descriptor declares ${size}`,
        );
      }
      if (actual !== digest) {
        throw imageError(
          "WASMLET_ERR_IMAGE_DIGEST_MISMATCH",
          `blob from ${origin} has digest ${actual}, expected ${digest}`,
          {
            hint: "the registry or something between it and this node altered the content",
          },
        );
      }
      await rename(tmp, this.blobPath(digest));
      this.#sizes.set(digest, size);
      await this.#markVerified(digest);
      return true;
    } catch (error) {
      await unlink(tmp).catch(() => {});
      throw error;
    }
  }

  /** Stores bytes already in memory (manifests, extracted modules); resolves to their digest. */
  async putBytes(bytes: Uint8Array): Promise<string> {
    const digest = sha256Digest(bytes);
    if (this.#sizes.has(digest)) return digest;
    const tmp = join(this.#ingestDir, `${digest.slice(7)}.${randomSuffix()}`);
    await writeFile(tmp, bytes);
    await rename(tmp, this.blobPath(digest));
    this.#sizes.set(digest, bytes.length);
    await this.#markVerified(digest);
    return digest;
  }

  async #identity(digest: string): Promise<string | undefined> {
    const info = await stat(this.blobPath(digest), { bigint: true }).catch(() => undefined);
    return info ? `${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}` : undefined;
  }

  async #markVerified(digest: string): Promise<void> {
    const identity = await this.#identity(digest);
    if (identity) this.#verified.set(digest, identity);
  }

  /**
   * Reads a blob, verifying it again unless this process hashed this very file (same inode,
   * size, mtime and ctime) before: a blob changed on disk is detected, not used.
   */
  async read(digest: string, maxBytes = Number.POSITIVE_INFINITY): Promise<Buffer> {
    const size = this.#sizes.get(digest);
    if (size !== undefined && size > maxBytes) {
      throw imageError(
        "WASMLET_ERR_IMAGE_TOO_LARGE",
        `blob ${digest} is ${size} bytes, more than the limit of ${maxBytes}`,
      );
    }
    const identity = await this.#identity(digest);
    const bytes = await readFile(this.blobPath(digest));
    if (identity !== undefined && this.#verified.get(digest) === identity) return bytes;
    const actual = sha256Digest(bytes);
    if (actual !== digest) {
      await this.#dropBlob(digest);
      throw imageError(
        "WASMLET_ERR_IMAGE_DIGEST_MISMATCH",
        `stored blob ${digest} is corrupt (its content hashes to ${actual}); it was removed and will be pulled again`,
      );
    }
    if (identity !== undefined) this.#verified.set(digest, identity);
    return bytes;
  }

  async #dropBlob(digest: string): Promise<void> {
    await unlink(this.blobPath(digest)).catch(() => {});
    this.#sizes.delete(digest);
    this.#verified.delete(digest);
    for (const [reference, record] of this.#records) {
      if (record.blobs.includes(digest)) this.#records.delete(reference);
    }
    await this.#save();
  }

  // --- records -------------------------------------------------------------------------------

  record(reference: string): ImageRecord | undefined {
    const record = this.#records.get(reference);
    if (!record) return undefined;
    // A record is only good while all its blobs are present.
    return record.blobs.every((d) => this.#sizes.has(d)) ? record : undefined;
  }

  records(): ImageRecord[] {
    return [...this.#records.values()];
  }

  async putRecord(record: ImageRecord): Promise<void> {
    this.#records.set(record.reference, record);
    await this.#save();
  }

  /**
   * Records that an image was used now, persisted within a second together with other uses: a
   * pod start should not wait for the whole database to be rewritten for an LRU timestamp.
   */
  markUsed(reference: string): void {
    const record = this.#records.get(reference);
    if (!record) return;
    record.lastUsedAt = new Date().toISOString();
    this.#usedSave ??= setTimeout(() => {
      this.#usedSave = undefined;
      this.#save().catch(() => {
        // The next save writes the timestamps again; a lost one only reorders GC.
      });
    }, 1000);
    this.#usedSave.unref?.();
  }

  async removeRecord(reference: string): Promise<boolean> {
    const removed = this.#records.delete(reference);
    if (removed) await this.#save();
    return removed;
  }

  #save(): Promise<void> {
    const snapshot = JSON.stringify([...this.#records.values()], null, 1);
    this.#writeChain = this.#writeChain
      .catch(() => {})
      .then(async () => {
        const tmp = `${this.#dbFile}.${randomSuffix()}`;
        await writeFile(tmp, snapshot);
        await rename(tmp, this.#dbFile);
      });
    return this.#writeChain;
  }

  // --- pins and garbage collection -----------------------------------------------------------

  /** Keeps digests from GC while `run` works with them. */
  async withPins<T>(digests: Iterable<string>, run: () => Promise<T>): Promise<T> {
    const list = [...digests];
    for (const d of list) this.#pins.set(d, (this.#pins.get(d) ?? 0) + 1);
    try {
      return await run();
    } finally {
      for (const d of list) {
        const n = (this.#pins.get(d) ?? 1) - 1;
        if (n <= 0) this.#pins.delete(d);
        else this.#pins.set(d, n);
      }
    }
  }

  pin(digest: string): void {
    this.#pins.set(digest, (this.#pins.get(digest) ?? 0) + 1);
  }

  unpin(digest: string): void {
    const n = (this.#pins.get(digest) ?? 1) - 1;
    if (n <= 0) this.#pins.delete(digest);
    else this.#pins.set(digest, n);
  }

  /** How many bytes the policy wants freed now (0 when under its thresholds). */
  async bytesOverPolicy(policy: GcPolicy): Promise<number> {
    let toFree = 0;
    const size = this.size;
    if (policy.highBytes !== undefined && size > policy.highBytes) {
      toFree = Math.max(toFree, size - (policy.lowBytes ?? Math.floor(policy.highBytes * 0.8)));
    }
    if (policy.highPercent !== undefined) {
      const fs = await statfs(this.root);
      const capacity = fs.blocks * fs.bsize;
      const used = capacity - fs.bavail * fs.bsize;
      if (capacity > 0 && (used / capacity) * 100 > policy.highPercent) {
        const low = policy.lowPercent ?? Math.max(0, policy.highPercent - 5);
        toFree = Math.max(toFree, Math.ceil(used - (capacity * low) / 100));
      }
    }
    return toFree;
  }

  /**
   * Removes the least recently used images that `inUse` does not protect until `toFree` bytes
   * are freed, then every blob no remaining record or operation needs.
   */
  async collect(isInUse: (record: ImageRecord) => boolean, toFree: number): Promise<GcResult> {
    const removedImages: string[] = [];
    const candidates = this.records()
      .filter((r) => !isInUse(r))
      .sort((a, b) => a.lastUsedAt.localeCompare(b.lastUsedAt));
    let freed = 0;
    for (const record of candidates) {
      if (freed >= toFree) break;
      this.#records.delete(record.reference);
      removedImages.push(record.reference);
      freed = this.#unreferencedBytes();
    }
    if (removedImages.length > 0) await this.#save();
    const live = new Set<string>();
    for (const record of this.#records.values()) for (const d of record.blobs) live.add(d);
    let removedBlobs = 0;
    let freedBytes = 0;
    for (const [digest, size] of [...this.#sizes]) {
      if (live.has(digest) || this.#pins.has(digest) || this.#downloads.has(digest)) continue;
      await unlink(this.blobPath(digest)).catch(() => {});
      this.#sizes.delete(digest);
      this.#verified.delete(digest);
      removedBlobs++;
      freedBytes += size;
    }
    return { removedImages, removedBlobs, freedBytes, storeBytes: this.size };
  }

  #unreferencedBytes(): number {
    const live = new Set<string>();
    for (const record of this.#records.values()) for (const d of record.blobs) live.add(d);
    let total = 0;
    for (const [digest, size] of this.#sizes)
      if (!live.has(digest) && !this.#pins.has(digest)) total += size;
    return total;
  }

  /** Waits for pending record writes. */
  async flush(): Promise<void> {
    if (this.#usedSave) {
      clearTimeout(this.#usedSave);
      this.#usedSave = undefined;
      void this.#save();
    }
    await this.#writeChain;
  }
}
