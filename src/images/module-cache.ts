// Compile once: a `WebAssembly.Module` per module digest and memory cap (the cap is written into
// the binary before compiling, so it is part of the key), shared by every container of the image.
// Before a module is handed out its imports are checked against what the runtime provides.
import { WASM_PAGE_BYTES, withMemoryMaximum } from "../wasm/binary.ts";
import { instrumentYieldPoints, YIELD_IMPORT } from "../wasm/yield-points.ts";
import { imageError } from "./errors.ts";

/**
 * The imports a runtime provides, as `module.name` strings; `module.*` allows every name of a
 * module (e.g. `wasi_snapshot_preview1.*`).
 */
export type SupportedImports = Iterable<string>;

export class ImportChecker {
  readonly #names: Set<string>;
  readonly #modules: Set<string>;

  constructor(supported: SupportedImports) {
    this.#names = new Set();
    this.#modules = new Set();
    // The yield point is wasmlet's own, added to every module it compiles.
    this.#names.add(`${YIELD_IMPORT.module}.${YIELD_IMPORT.name}`);
    for (const entry of supported) {
      if (entry.endsWith(".*")) this.#modules.add(entry.slice(0, -2));
      else this.#names.add(entry);
    }
  }

  /** The module's imports the runtime lacks, as `module.name (kind)`. */
  missing(module: WebAssembly.Module): string[] {
    return WebAssembly.Module.imports(module)
      .filter((i) => !this.#modules.has(i.module) && !this.#names.has(`${i.module}.${i.name}`))
      .map((i) => `${i.module}.${i.name} (${i.kind})`);
  }

  /** Fails with WASMLET_ERR_IMAGE_UNSUPPORTED_IMPORTS naming every missing import. */
  check(module: WebAssembly.Module, what: string): void {
    const missing = this.missing(module);
    if (missing.length > 0) {
      throw imageError(
        "WASMLET_ERR_IMAGE_UNSUPPORTED_IMPORTS",
        `${what} imports ${missing.length === 1 ? "a function" : `${missing.length} functions`} wasmlet's runtime does not provide: ${missing.join(", ")}`,
      );
    }
  }
}

export interface ModuleCacheOptions {
  /** What the runtime provides; when absent, imports are not checked. */
  supportedImports?: SupportedImports;
  /** Compiled modules kept (least recently used go first). Default 64. */
  maxEntries?: number;
}

export interface CompileRequest {
  /** Digest of the module's bytes (the cache key). */
  digest: string;
  /** The container's memory limit: becomes the module's memory maximum before compiling. */
  memoryLimitBytes?: number;
  /** For messages: the image reference. */
  what: string;
  /** Loads the (verified) module bytes on a cache miss. */
  load: () => Promise<Uint8Array>;
}

export class ModuleCache {
  readonly #checker: ImportChecker | undefined;
  readonly #maxEntries: number;
  readonly #entries = new Map<string, Promise<WebAssembly.Module>>();
  #compilations = 0;

  constructor(options: ModuleCacheOptions = {}) {
    this.#checker = options.supportedImports
      ? new ImportChecker(options.supportedImports)
      : undefined;
    this.#maxEntries = options.maxEntries ?? 64;
  }

  /** How many compilations ran (a cache hit runs none). */
  get compilations(): number {
    return this.#compilations;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(request: CompileRequest): Promise<WebAssembly.Module> {
    const pages =
      request.memoryLimitBytes === undefined
        ? "unlimited"
        : Math.floor(request.memoryLimitBytes / WASM_PAGE_BYTES);
    const key = `${request.digest}|${pages}`;
    let entry = this.#entries.get(key);
    if (entry) {
      // Refresh its place in the LRU order.
      this.#entries.delete(key);
      this.#entries.set(key, entry);
      return entry;
    }
    entry = this.#compile(request);
    this.#entries.set(key, entry);
    // A failed compilation is not kept: the bytes may be pulled again.
    entry.catch(() => {
      if (this.#entries.get(key) === entry) this.#entries.delete(key);
    });
    while (this.#entries.size > this.#maxEntries) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
    return entry;
  }

  async #compile(request: CompileRequest): Promise<WebAssembly.Module> {
    let bytes = (await request.load()) as Uint8Array<ArrayBuffer>;
    if (request.memoryLimitBytes !== undefined)
      bytes = withMemoryMaximum(bytes, request.memoryLimitBytes);
    try {
      // Yield points let the guest share a worker thread (see src/wasm/yield-points.ts).
      bytes = instrumentYieldPoints(bytes) as Uint8Array<ArrayBuffer>;
    } catch (error) {
      throw imageError(
        "WASMLET_ERR_IMAGE_INVALID_WASM",
        `${request.what}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    this.#compilations++;
    let module: WebAssembly.Module;
    try {
      module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
    } catch (error) {
      throw imageError(
        "WASMLET_ERR_IMAGE_INVALID_WASM",
        `${request.what}: the module does not compile: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    this.#checker?.check(module, request.what);
    return module;
  }

  /** Forgets compiled modules whose digest `keep` rejects (e.g. images collected by GC). */
  retain(keep: (digest: string) => boolean): void {
    for (const key of [...this.#entries.keys()])
      if (!keep(key.slice(0, key.indexOf("|")))) this.#entries.delete(key);
  }
}
