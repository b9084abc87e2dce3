// Finding one file in an image's tar layers without unpacking them: layers are read from the top
// down, the first layer that has the path wins, OCI whiteouts (`.wh.name`, `.wh..wh..opq`) hide
// what lies below, and symlinks and hard links to the file are followed. tar auto-detects gzip
// and zstd compression. Only the wanted file's bytes are kept, up to a limit.
import { createReadStream } from "node:fs";
import { posix } from "node:path";
import { Parser, type ReadEntry } from "tar";
import { imageError } from "./errors.ts";

export interface LayerFile {
  /** Path of the layer blob on disk. */
  path: string;
  digest: string;
}

export type FileLookup =
  | { found: true; path: string; bytes: Buffer }
  | { found: false; reason: "missing" | "whiteout" | "not-a-file"; path: string };

const MAX_LINK_HOPS = 16;

/** `/a/b` form of a path in a layer or an entrypoint (no `.`/`..` escapes above the root). */
export function normalizeImagePath(path: string): string {
  const normalized = posix.normalize(`/${path}`);
  return normalized.length > 1 && normalized.endsWith("/") ? normalized.slice(0, -1) : normalized;
}

function isParentOrSelf(dir: string, path: string): boolean {
  return dir === "/" || path === dir || path.startsWith(`${dir}/`);
}

interface LayerScan {
  kind: "file" | "link" | "whiteout" | "other" | "none";
  bytes?: Buffer;
  linkTarget?: string;
}

async function readEntries(layer: LayerFile, onEntry: (entry: ReadEntry) => void): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const parser = new Parser({
      strict: true,
      onReadEntry: (entry) => {
        try {
          onEntry(entry);
        } catch (error) {
          reject(error);
          entry.resume();
        }
      },
    });
    parser.on("error", (error: Error) =>
      reject(
        imageError(
          "WASMLET_ERR_IMAGE_MANIFEST_INVALID",
          `layer ${layer.digest} is not a valid tar archive: ${error.message}`,
          { cause: error },
        ),
      ),
    );
    parser.on("end", () => resolve());
    const input = createReadStream(layer.path);
    input.on("error", reject);
    input.pipe(parser);
  });
}

async function scanLayer(layer: LayerFile, target: string, maxBytes: number): Promise<LayerScan> {
  const result: LayerScan = { kind: "none" };
  let collecting: Promise<Buffer> | undefined;
  await readEntries(layer, (entry) => {
    const path = normalizeImagePath(entry.path);
    const base = posix.basename(path);
    const dir = posix.dirname(path);
    if (base === ".wh..wh..opq") {
      if (isParentOrSelf(dir, target) && dir !== target && result.kind === "none")
        result.kind = "whiteout";
      entry.resume();
      return;
    }
    if (base.startsWith(".wh.")) {
      const hidden = posix.join(dir, base.slice(4));
      if (isParentOrSelf(hidden, target) && result.kind === "none") result.kind = "whiteout";
      entry.resume();
      return;
    }
    if (path !== target) {
      entry.resume();
      return;
    }
    if (entry.type === "File" || entry.type === "OldFile" || entry.type === "ContiguousFile") {
      if (entry.size > maxBytes) {
        throw imageError(
          "WASMLET_ERR_IMAGE_TOO_LARGE",
          `${target} in layer ${layer.digest} is ${entry.size} bytes, more than the limit of ${maxBytes}`,
        );
      }
      result.kind = "file";
      collecting = entry.concat();
      return;
    }
    if (entry.type === "SymbolicLink") {
      result.kind = "link";
      result.linkTarget = entry.linkpath?.startsWith("/")
        ? entry.linkpath
        : posix.join(posix.dirname(target), entry.linkpath ?? "");
    } else if (entry.type === "Link") {
      result.kind = "link";
      result.linkTarget = `/${entry.linkpath ?? ""}`;
    } else {
      result.kind = "other";
    }
    entry.resume();
  });
  if (collecting) result.bytes = await collecting;
  return result;
}

/**
 * Looks `path` up in the layers (ordered bottom to top, as in the manifest) and returns its
 * content.
 */
export async function findFile(
  layers: readonly LayerFile[],
  path: string,
  maxBytes: number,
): Promise<FileLookup> {
  let target = normalizeImagePath(path);
  for (let hop = 0; hop <= MAX_LINK_HOPS; hop++) {
    let next: string | undefined;
    for (let i = layers.length - 1; i >= 0; i--) {
      const scan = await scanLayer(layers[i]!, target, maxBytes);
      if (scan.kind === "file") return { found: true, path: target, bytes: scan.bytes! };
      if (scan.kind === "link") {
        next = normalizeImagePath(scan.linkTarget!);
        break;
      }
      if (scan.kind === "whiteout") return { found: false, reason: "whiteout", path: target };
      if (scan.kind === "other") return { found: false, reason: "not-a-file", path: target };
    }
    if (next === undefined) return { found: false, reason: "missing", path: target };
    target = next;
  }
  throw imageError(
    "WASMLET_ERR_IMAGE_ENTRYPOINT_MISSING",
    `${path}: more than ${MAX_LINK_HOPS} links to follow`,
  );
}

/** Every regular file whose name ends in `.wasm`, in the topmost layer that has any. */
export async function findWasmFiles(layers: readonly LayerFile[]): Promise<string[]> {
  for (let i = layers.length - 1; i >= 0; i--) {
    const found: string[] = [];
    await readEntries(layers[i]!, (entry) => {
      const path = normalizeImagePath(entry.path);
      if ((entry.type === "File" || entry.type === "OldFile") && path.endsWith(".wasm"))
        found.push(path);
      entry.resume();
    });
    if (found.length > 0) return found.sort();
  }
  return [];
}
