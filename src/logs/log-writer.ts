// Writes a container's stdout and stderr as CRI log records (see cri-format.ts) to its log file,
// synchronously and with bounded memory: a write() formats what it was given and hands it to the
// kernel before returning; only an unfinished line (at most `maxLineBytes` per stream) is kept.
//
// File layout and rotation (what a reader relies on):
//
//   <path>       the current file, appended to; always this name.
//   <path>.<n>   rotated files, n = 1, 2, 3, … in order of rotation: a higher n is newer. A rotated
//                file is never renamed or written again; it is only deleted when it is the oldest
//                beyond the limit.
//
// Rotation happens between records, before a record would make the current file exceed `maxBytes`
// (a file holds at least one record even if that record alone is larger): the current file is
// renamed to <path>.<highest n + 1>, a new empty <path> is created, and the oldest rotated files
// are deleted so that at most `maxFiles` files exist (the current one included, like the kubelet's
// containerLogMaxFiles). Numbering continues from the highest n found when a writer opens an
// existing log.
//
// So a reader lists <path>.<n> sorted by n, then reads <path>: that is the whole log in order. A
// follower holding <path> open notices a rotation when the name <path> points at another inode;
// it reads its open descriptor to the end (the renamed file gets no more writes), then opens the
// new <path> from its start. Nothing is copied or truncated in place, so no record is lost or
// repeated by a reader that works this way.
import {
  closeSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import {
  DEFAULT_MAX_LINE_BYTES,
  formatTimestamp,
  type LogStream,
  type LogTag,
} from "./cri-format.ts";
import { logsError } from "./errors.ts";

export interface LogRotation {
  /** Rotate before the current file would exceed this many bytes. */
  maxBytes: number;
  /** Files kept in all, the current one included (at least 1). */
  maxFiles: number;
}

export interface CriLogWriterOptions {
  path: string;
  rotation?: LogRotation;
  /** Content bytes per record; longer lines are cut into P records. */
  maxLineBytes?: number;
  /** Nanoseconds since the epoch; injectable for tests. */
  now?: () => bigint;
}

/** The kubelet's defaults (containerLogMaxSize 10Mi, containerLogMaxFiles 5). */
export const DEFAULT_LOG_ROTATION: LogRotation = { maxBytes: 10 * 1024 * 1024, maxFiles: 5 };

/** Longest header: 30-byte timestamp, space, "stdout", space, tag, space. */
const MAX_HEADER_BYTES = 40;

/** Epoch nanoseconds from the high-resolution clock (microsecond precision, monotonic per thread). */
export function epochNanoseconds(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
}

/** The rotated files of a log, oldest first, as `{ n, path }`. */
export function rotatedLogFiles(path: string): { n: number; path: string }[] {
  const prefix = `${basename(path)}.`;
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  const out: { n: number; path: string }[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const suffix = name.slice(prefix.length);
    if (/^[1-9]\d*$/.test(suffix)) out.push({ n: Number(suffix), path: join(dirname(path), name) });
  }
  return out.sort((a, b) => a.n - b.n);
}

class Partial {
  readonly bytes: Buffer;
  length = 0;
  constructor(size: number) {
    this.bytes = Buffer.allocUnsafe(size);
  }
}

export class CriLogWriter {
  readonly path: string;
  readonly #maxBytes: number;
  readonly #maxFiles: number;
  readonly #maxLineBytes: number;
  readonly #now: () => bigint;
  readonly #partial: Record<LogStream, Partial>;
  #fd: number | undefined;
  #size: number;
  #rotated: number[];
  #scratch: Buffer;
  #scratchLength = 0;
  #time = "";
  #bytesWritten = 0;
  #rotations = 0;

  constructor(options: CriLogWriterOptions) {
    const rotation = options.rotation ?? DEFAULT_LOG_ROTATION;
    const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1) {
      throw logsError(
        "WASMLET_ERR_LOG_OPTIONS",
        `maxLineBytes must be a positive integer, got ${maxLineBytes}`,
      );
    }
    if (!Number.isInteger(rotation.maxFiles) || rotation.maxFiles < 1) {
      throw logsError(
        "WASMLET_ERR_LOG_OPTIONS",
        `rotation.maxFiles must be at least 1, got ${rotation.maxFiles}`,
      );
    }
    if (!Number.isFinite(rotation.maxBytes) || rotation.maxBytes < 1) {
      throw logsError(
        "WASMLET_ERR_LOG_OPTIONS",
        `rotation.maxBytes must be positive, got ${rotation.maxBytes}`,
      );
    }
    this.path = options.path;
    this.#maxBytes = rotation.maxBytes;
    this.#maxFiles = rotation.maxFiles;
    this.#maxLineBytes = maxLineBytes;
    this.#now = options.now ?? epochNanoseconds;
    this.#partial = { stdout: new Partial(maxLineBytes), stderr: new Partial(maxLineBytes) };
    this.#scratch = Buffer.allocUnsafe(Math.min(64 * 1024, maxLineBytes + MAX_HEADER_BYTES + 1));
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      this.#fd = openSync(this.path, "a", 0o640);
      this.#size = fstatSync(this.#fd).size;
      this.#rotated = rotatedLogFiles(this.path).map((f) => f.n);
      this.#prune();
    } catch (error) {
      if (this.#fd !== undefined) closeSync(this.#fd);
      throw logsError(
        "WASMLET_ERR_LOG_WRITE",
        `cannot open log file ${this.path}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  }

  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  get rotations(): number {
    return this.#rotations;
  }

  /** Appends output of one stream; complete lines are on disk when this returns. */
  write(stream: LogStream, data: Uint8Array): void {
    if (this.#fd === undefined)
      throw logsError("WASMLET_ERR_LOG_WRITE", `log file ${this.path} is closed`);
    if (data.length === 0) return;
    this.#time = formatTimestamp(this.#now());
    let start = 0;
    while (start < data.length) {
      const newline = data.indexOf(0x0a, start);
      if (newline < 0) {
        this.#append(stream, data.subarray(start), false);
        break;
      }
      this.#append(stream, data.subarray(start, newline), true);
      start = newline + 1;
    }
    this.#flushScratch();
  }

  /** Writes unfinished lines as P records, so a reader sees them (before the guest blocks). */
  flushPartial(): void {
    if (this.#fd === undefined) return;
    this.#flushPartials("P");
  }

  /** Writes unfinished lines as F records (the stream ended) and closes the file. Idempotent. */
  close(): void {
    if (this.#fd === undefined) return;
    try {
      this.#flushPartials("F");
    } finally {
      const fd = this.#fd;
      this.#fd = undefined;
      closeSync(fd);
    }
  }

  #flushPartials(tag: LogTag): void {
    let any = false;
    for (const stream of ["stdout", "stderr"] as const) {
      const partial = this.#partial[stream];
      if (partial.length === 0) continue;
      if (!any) this.#time = formatTimestamp(this.#now());
      any = true;
      this.#record(stream, tag, partial.bytes.subarray(0, partial.length), undefined);
      partial.length = 0;
    }
    if (any) this.#flushScratch();
  }

  /** Adds a piece of one line; `ends` when a newline followed it. */
  #append(stream: LogStream, piece: Uint8Array, ends: boolean): void {
    const partial = this.#partial[stream];
    const max = this.#maxLineBytes;
    let offset = 0;
    while (partial.length + (piece.length - offset) > max) {
      const take = max - partial.length;
      this.#record(
        stream,
        "P",
        partial.bytes.subarray(0, partial.length),
        piece.subarray(offset, offset + take),
      );
      partial.length = 0;
      offset += take;
    }
    if (ends) {
      this.#record(stream, "F", partial.bytes.subarray(0, partial.length), piece.subarray(offset));
      partial.length = 0;
    } else {
      partial.bytes.set(piece.subarray(offset), partial.length);
      partial.length += piece.length - offset;
    }
  }

  #record(stream: LogStream, tag: LogTag, head: Uint8Array, tail: Uint8Array | undefined): void {
    const header = `${this.#time} ${stream} ${tag} `;
    const length = header.length + head.length + (tail?.length ?? 0) + 1;
    if (
      this.#size + this.#scratchLength > 0 &&
      this.#size + this.#scratchLength + length > this.#maxBytes
    ) {
      this.#flushScratch();
      this.#rotate();
    }
    if (this.#scratchLength + length > this.#scratch.length) {
      this.#flushScratch();
      if (length > this.#scratch.length) this.#scratch = Buffer.allocUnsafe(length);
    }
    const scratch = this.#scratch;
    let at = this.#scratchLength;
    at += scratch.write(header, at, "latin1");
    scratch.set(head, at);
    at += head.length;
    if (tail) {
      scratch.set(tail, at);
      at += tail.length;
    }
    scratch[at++] = 0x0a;
    this.#scratchLength = at;
  }

  #flushScratch(): void {
    if (this.#scratchLength === 0 || this.#fd === undefined) return;
    const length = this.#scratchLength;
    this.#scratchLength = 0;
    let written = 0;
    try {
      while (written < length)
        written += writeSync(this.#fd, this.#scratch, written, length - written);
    } catch (error) {
      // A write cut short (ENOSPC, EFBIG) must not leave half a record for the next one to be
      // appended to: what reached the file of these records is taken back.
      if (written > 0) this.#takeBack(written);
      throw logsError(
        "WASMLET_ERR_LOG_WRITE",
        `cannot write log file ${this.path}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    this.#size += length;
    this.#bytesWritten += length;
  }

  /** Cuts the file back to its last whole record; failing that, ends the torn one with a newline. */
  #takeBack(written: number): void {
    try {
      ftruncateSync(this.#fd!, this.#size);
    } catch {
      this.#size += written;
      this.#scratch[0] = 0x0a;
      this.#scratchLength = 1;
    }
  }

  #rotate(): void {
    try {
      closeSync(this.#fd!);
      this.#fd = undefined;
      const n = (this.#rotated.at(-1) ?? 0) + 1;
      renameSync(this.path, `${this.path}.${n}`);
      this.#rotated.push(n);
      this.#rotations++;
      this.#prune();
      this.#fd = openSync(this.path, "a", 0o640);
      this.#size = 0;
    } catch (error) {
      // Keep writing to the current name if the rotation failed half-way.
      if (this.#fd === undefined) {
        try {
          this.#fd = openSync(this.path, "a", 0o640);
          this.#size = fstatSync(this.#fd).size;
        } catch {}
      }
      throw logsError(
        "WASMLET_ERR_LOG_WRITE",
        `cannot rotate log file ${this.path}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  }

  #prune(): void {
    while (this.#rotated.length > this.#maxFiles - 1) {
      const oldest = this.#rotated.shift()!;
      try {
        unlinkSync(`${this.path}.${oldest}`);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
    }
  }
}
