// Reads a container's CRI log (see cri-format.ts) the way the kubelet serves `kubectl logs`:
// parsed records, content only, optionally prefixed by their timestamp, filtered by time and
// stream, cut to a number of bytes, from the last N records, and, when following, as the writer
// appends them until the container has exited and everything written is out.
//
// What goes out, record by record (pkg/kubelet/kuberuntime/logs in the kubelet):
// - an F record's content and `\n`; a P record's content alone, so the pieces of a long line come
//   out joined. Lines that are not CRI records are skipped.
// - with `timestamps`, a record that starts a line (the previous selected record ended one) gets
//   its time in RFC 3339 with nanoseconds, trailing zeros trimmed like Go's time.RFC3339Nano
//   (`2025-01-02T03:04:05.1234Z`), and a space.
// - `tailLines` counts records, like the kubelet (a line cut into P records counts once per
//   piece), across rotated files, found by reading backwards from the end in blocks.
// - `sinceNs` drops records written before it; `limitBytes` stops after exactly that many bytes.
// - bytes after the last newline of the current file are a record being written: without follow
//   they are left out. In a finished file (rotated, or once the container has exited) they are a
//   torn record and come out as the kubelet reads one, without a newline.
//
// Files (the layout of log-writer.ts): rotated `<path>.<n>` in order of n, then `<path>`. Files
// are told apart by device and inode, never by name: a reader opens the current file first, then
// lists the rotated ones and keeps only those older than it, so a rotation while listing neither
// loses nor repeats a file. A follower checks whether `<path>` still names its file before
// reading it to the end; when not, that read got all the file will ever have (a rotated file gets
// no more writes), and the reader goes on with every newer rotated file, then the new `<path>`.
// A follower outrun by the writer (its next files deleted by rotation before it got to them)
// skips what is gone, in order, without repeating anything. New data is noticed through fs.watch
// on the log's directory (about a millisecond), with a poll as a safety net (and the only means
// where fs.watch is unavailable).
import { type FSWatcher, watch } from "node:fs";
import { type FileHandle, open, stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { formatTimestamp, type LogStream, parseCriLine } from "./cri-format.ts";
import { rotatedLogFiles } from "./log-writer.ts";
import { readerError } from "./reader-errors.ts";

export interface ReadContainerLogOptions {
  /** Keep reading as the log grows, until `exited` settles (then drain) or `signal` aborts. */
  follow?: boolean;
  /** Start with the last N records of the whole log (all files); 0 = only what comes next. */
  tailLines?: number;
  /** Drop records with a timestamp before this, in nanoseconds since the epoch. */
  sinceNs?: bigint;
  /** Stop after exactly this many bytes of output (at least 1). */
  limitBytes?: number;
  /** Prefix every line with its RFC 3339 timestamp (nanoseconds, trailing zeros trimmed) and a space. */
  timestamps?: boolean;
  /** Only this stream; both when absent. */
  stream?: LogStream;
  /** Ends the output (quietly, with no error) and releases files and watchers. */
  signal?: AbortSignal;
  /**
   * With `follow`: settles once the container has exited and its writer has closed the log.
   * The reader then reads what is left, across rotations, and ends. Already settled = read to the
   * end and stop, like following a container that is not running.
   */
  exited?: PromiseLike<unknown>;
  /** Safety-net poll while following, in ms (default 250; 50 when fs.watch is unavailable). */
  pollIntervalMs?: number;
}

const BLOCK_BYTES = 64 * 1024;
const DEFAULT_POLL_MS = 250;
const FALLBACK_POLL_MS = 50;
const NEWLINE = 0x0a;
const EMPTY = Buffer.alloc(0);
const NEWLINE_BUFFER = Buffer.from("\n");

/** Go's time.RFC3339Nano for a UTC time: nanoseconds with trailing zeros (and a bare dot) trimmed. */
export function formatRfc3339Nano(epochNs: bigint): string {
  return formatTimestamp(epochNs).replace(/\.?0+Z$/, "Z");
}

/** The log as it is read: an async iterator of output chunks. */
export interface ContainerLogChunks extends AsyncIterableIterator<Buffer, void, undefined> {
  /** Stops reading (also when waiting for new lines) and releases files and watchers. */
  return(): Promise<IteratorResult<Buffer, void>>;
}

/**
 * The log at `path` (and its rotated files) as the kubelet would stream it. Options are checked
 * at once (WASMLET_ERR_LOG_READ_OPTIONS); reading starts on the first next(). A missing log is an
 * empty one (followed, it is waited for); other I/O failures reject with WASMLET_ERR_LOG_READ.
 * Ending the iteration early (`break`, return(), destroying a Readable.from() of it) stops a
 * follower at once, as aborting `signal` does.
 */
export function readContainerLog(
  path: string,
  options: ReadContainerLogOptions = {},
): ContainerLogChunks {
  const { tailLines, limitBytes, pollIntervalMs } = options;
  if (tailLines !== undefined && !(Number.isInteger(tailLines) && tailLines >= 0)) {
    throw readerError(
      "WASMLET_ERR_LOG_READ_OPTIONS",
      `tailLines must be an integer ≥ 0, got ${tailLines}`,
    );
  }
  if (limitBytes !== undefined && !(Number.isInteger(limitBytes) && limitBytes >= 1)) {
    throw readerError(
      "WASMLET_ERR_LOG_READ_OPTIONS",
      `limitBytes must be an integer ≥ 1, got ${limitBytes}`,
    );
  }
  if (pollIntervalMs !== undefined && !(pollIntervalMs > 0 && Number.isFinite(pollIntervalMs))) {
    throw readerError(
      "WASMLET_ERR_LOG_READ_OPTIONS",
      `pollIntervalMs must be positive, got ${pollIntervalMs}`,
    );
  }
  // A generator's return() waits for its pending step; a follower's step can wait indefinitely
  // for new lines, so ending early aborts first.
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const records = new LogReader(path, { ...options, signal }).records();
  return {
    next: () => records.next(),
    return: () => {
      stop.abort();
      return records.return();
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/** One open log file. */
interface LogFile {
  handle: FileHandle;
  /** `dev:ino`: what a file is, whatever its name. */
  id: string;
  /** Its rotation number, once known. */
  n: number | undefined;
  /** Every rotated file newer than this one has a number above this. */
  floor: number;
  /** Next byte to read. */
  position: number;
}

type FileIdentity = Pick<LogFile, "id" | "n" | "floor">;

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}

async function openLogFile(path: string, n: number | undefined): Promise<LogFile | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
  try {
    const stats = await handle.stat({ bigint: true });
    return { handle, id: `${stats.dev}:${stats.ino}`, n, floor: n ?? 0, position: 0 };
  } catch (error) {
    await handle.close().catch(() => {});
    throw error;
  }
}

async function closeAll(files: Iterable<LogFile>): Promise<void> {
  for (const file of files) await file.handle.close().catch(() => {});
}

async function fileId(path: string): Promise<string | undefined> {
  try {
    const stats = await stat(path, { bigint: true });
    return `${stats.dev}:${stats.ino}`;
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

/** How often filesAfter() lists again when rotations keep racing it. */
const LIST_ATTEMPTS = 20;

/**
 * The files that follow `after` (or the whole log when undefined), oldest first, ending with the
 * current file. Empty when `after` is still the current file.
 *
 * The current file is opened before the rotated ones are listed: a rotation in between shows the
 * current file among the rotated ones, and whatever is newer than it is left for the next call.
 * One case is ambiguous: the current file renamed away after the listing (every listed file is
 * older) or renamed and already deleted before it (listed files may be newer). `<path>` is looked
 * at again after the listing to tell, and the listing is done again when it cannot; should that
 * keep failing, the current file is left out (the next call finds what follows the rotated ones).
 */
async function filesAfter(path: string, after: FileIdentity | undefined): Promise<LogFile[]> {
  for (let attempt = 1; ; attempt++) {
    const files = await listAfter(path, after, attempt < LIST_ATTEMPTS);
    if (files) return files;
  }
}

async function listAfter(
  path: string,
  after: FileIdentity | undefined,
  retry: boolean,
): Promise<LogFile[] | undefined> {
  let head = await openLogFile(path, undefined);
  if (head && after && head.id === after.id) {
    await head.handle.close();
    return [];
  }
  const rotated: LogFile[] = [];
  let stillHead: boolean;
  try {
    for (const entry of rotatedLogFiles(path)) {
      const file = await openLogFile(entry.path, entry.n);
      if (file) rotated.push(file);
    }
    stillHead = head !== undefined && (await fileId(path)) === head.id;
  } catch (error) {
    await closeAll(rotated);
    if (head) await head.handle.close().catch(() => {});
    throw error;
  }
  if (head && !stillHead && !rotated.some((f) => f.id === head!.id)) {
    await head.handle.close();
    head = undefined;
    if (retry) {
      await closeAll(rotated);
      return undefined;
    }
  }
  const self = after ? rotated.find((f) => f.id === after.id) : undefined;
  const from = self?.n ?? after?.floor ?? 0;
  const out: LogFile[] = [];
  const unused: LogFile[] = [];
  let headSeen = false;
  let highest = from;
  for (const file of rotated) {
    highest = Math.max(highest, file.n ?? 0);
    if (headSeen || file.n! <= from || file.id === after?.id) {
      unused.push(file);
    } else if (head && file.id === head.id) {
      headSeen = true;
      head.n = file.n;
      head.floor = file.n!;
      unused.push(file);
    } else {
      out.push(file);
    }
  }
  await closeAll(unused);
  if (head) {
    // Still current after the listing: every listed file is older.
    if (head.n === undefined) head.floor = highest;
    out.push(head);
  }
  return out;
}

/** Reads exactly `length` bytes at `position` unless the file is shorter; returns the count. */
async function readAt(
  handle: FileHandle,
  buffer: Buffer,
  length: number,
  position: number,
): Promise<number> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buffer, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/**
 * Positions the log at its last `lines` records: closes the files before the start and sets the
 * position of the first one kept. Reads backwards in blocks; bytes after the last newline of the
 * newest file (a record being written) are not a record yet.
 */
async function seekTail(files: LogFile[], lines: number, buffer: Buffer): Promise<LogFile[]> {
  let need = lines;
  for (let i = files.length - 1; i >= 0; i--) {
    const file = files[i]!;
    const size = Number((await file.handle.stat()).size);
    let seenEnd = false;
    let found = 0;
    let start: number | undefined;
    let right = size;
    scan: while (right > 0) {
      const left = Math.max(0, right - buffer.length);
      const length = await readAt(file.handle, buffer, right - left, left);
      let at = length - 1;
      while (at >= 0) {
        const newline = buffer.lastIndexOf(NEWLINE, at);
        if (newline < 0 || newline > at) break;
        at = newline - 1;
        if (!seenEnd) {
          seenEnd = true;
          if (need === 0) {
            start = left + newline + 1;
            break scan;
          }
          continue;
        }
        if (++found === need) {
          start = left + newline + 1;
          break scan;
        }
      }
      right = left;
    }
    if (start === undefined && need === 0) start = 0;
    if (start === undefined && seenEnd && found + 1 === need) start = 0;
    if (start !== undefined) {
      file.position = start;
      await closeAll(files.slice(0, i));
      return files.slice(i);
    }
    if (seenEnd) need -= found + 1;
  }
  return files;
}

/** Wakes a follower: a change in the log's directory, a poll tick, the exit, or the abort. */
class ChangeWaiter {
  readonly #pollMs: number;
  #watcher: FSWatcher | undefined;
  #dirty = false;
  #wake: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(path: string, pollMs: number | undefined) {
    const name = basename(path);
    try {
      this.#watcher = watch(dirname(path), { persistent: false }, (_event, filename) => {
        const changed = filename?.toString();
        if (!changed || changed === name || changed.startsWith(`${name}.`)) this.notify();
      });
      this.#watcher.on("error", () => {
        this.#watcher?.close();
        this.#watcher = undefined;
        this.notify();
      });
    } catch {
      this.#watcher = undefined;
    }
    this.#pollMs = pollMs ?? DEFAULT_POLL_MS;
  }

  /** Forget earlier changes: call before reading, so a change during the read is not missed. */
  arm(): void {
    this.#dirty = false;
  }

  notify = (): void => {
    this.#dirty = true;
    const wake = this.#wake;
    this.#wake = undefined;
    clearTimeout(this.#timer);
    wake?.();
  };

  /** Resolves on the next change since arm(), or after the poll interval. */
  wait(): Promise<void> {
    if (this.#dirty) return Promise.resolve();
    return new Promise((resolve) => {
      this.#wake = resolve;
      const ms = this.#watcher ? this.#pollMs : Math.min(this.#pollMs, FALLBACK_POLL_MS);
      this.#timer = setTimeout(this.notify, ms);
    });
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#watcher = undefined;
    this.notify();
  }
}

class LogReader {
  readonly #path: string;
  readonly #options: ReadContainerLogOptions;
  readonly #buffer = Buffer.allocUnsafe(BLOCK_BYTES);
  /** Output of the current pass, not yet yielded. */
  #out: Buffer[] = [];
  /** Bytes still allowed by limitBytes. */
  #remaining: number;
  /** Records still to read when a tail is read without following (the kubelet's limited mode). */
  #recordsLeft: number | undefined;
  /** The previous selected record ended a line. */
  #atLineStart = true;
  /** An unfinished line of the file being read. */
  #pending: Buffer = EMPTY;
  #done = false;

  constructor(path: string, options: ReadContainerLogOptions) {
    this.#path = path;
    this.#options = options;
    this.#remaining = options.limitBytes ?? Number.POSITIVE_INFINITY;
    this.#recordsLeft = options.follow ? undefined : options.tailLines;
    if (this.#recordsLeft === 0) this.#done = true;
  }

  async *records(): AsyncGenerator<Buffer, void, undefined> {
    const { follow = false, signal, exited } = this.#options;
    if (signal?.aborted) return;
    let files: LogFile[] = [];
    let current: LogFile | undefined;
    let waiter: ChangeWaiter | undefined;
    let exitedNow = false;
    try {
      files = await this.#io(filesAfter(this.#path, undefined));
      if (this.#options.tailLines !== undefined) {
        files = await this.#io(seekTail(files, this.#options.tailLines, this.#buffer));
      }
      current = files.shift();
      /** The last file read to its end and closed, to find what follows it. */
      let last: FileIdentity | undefined;
      if (follow) {
        waiter = new ChangeWaiter(this.#path, this.#options.pollIntervalMs);
        signal?.addEventListener("abort", waiter.notify, { once: true });
        const onExit = () => {
          exitedNow = true;
          waiter?.notify();
        };
        exited?.then(onExit, onExit);
      }
      while (!this.#done && !signal?.aborted) {
        const exitedBefore = exitedNow;
        waiter?.arm();
        // Files known to come before the current one are complete: read them through.
        while (current && files.length > 0 && !this.#done) {
          yield* this.#readToEnd(current);
          yield* this.#finishFile();
          await current.handle.close();
          last = current;
          current = files.shift();
        }
        // Asked before reading: once `<path>` names another file, the one read here gets no
        // more writes, so reading it to its end now gets all it will ever have.
        const moved = follow && !this.#done && !(current && (await this.#stillCurrent(current)));
        if (current) yield* this.#readToEnd(current);
        // Without follow, bytes after the last newline of the current file are a record still
        // being written: not part of the log yet.
        if (this.#done || signal?.aborted || !follow) break;
        if (moved) {
          const next = await this.#io(filesAfter(this.#path, current ?? last));
          if (next.length > 0) {
            if (current) {
              yield* this.#finishFile();
              await current.handle.close();
              last = current;
            }
            files = next;
            current = files.shift();
            continue;
          }
        }
        if (exitedBefore) {
          // Everything the exited container wrote has been read; a torn last record counts.
          yield* this.#finishFile();
          break;
        }
        await waiter!.wait();
      }
    } finally {
      waiter?.close();
      if (waiter) signal?.removeEventListener("abort", waiter.notify);
      if (current) await current.handle.close().catch(() => {});
      await closeAll(files);
    }
  }

  async #io<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (error) {
      throw readerError(
        "WASMLET_ERR_LOG_READ",
        `cannot read log file ${this.#path}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  /** Whether `<path>` still names this file (an absent `<path>` is a rotation under way). */
  async #stillCurrent(file: LogFile): Promise<boolean> {
    return (await this.#io(fileId(this.#path))) === file.id;
  }

  /** Reads the file from its position to its current end, yielding output block by block. */
  async *#readToEnd(file: LogFile): AsyncGenerator<Buffer, void, undefined> {
    const buffer = this.#buffer;
    while (!this.#done && !this.#options.signal?.aborted) {
      const { bytesRead } = await this.#io(
        file.handle.read(buffer, 0, buffer.length, file.position),
      );
      if (bytesRead === 0) return;
      file.position += bytesRead;
      let block = buffer.subarray(0, bytesRead);
      if (this.#pending.length > 0) {
        block = Buffer.concat([this.#pending, block]);
        this.#pending = EMPTY;
      }
      let start = 0;
      while (!this.#done) {
        const newline = block.indexOf(NEWLINE, start);
        if (newline < 0) {
          this.#pending = Buffer.from(block.subarray(start));
          break;
        }
        this.#record(block.subarray(start, newline), true);
        start = newline + 1;
      }
      yield* this.#flush();
    }
  }

  /** The file ends here: an unfinished line left in it is a (torn) record, as the kubelet reads it. */
  async *#finishFile(): AsyncGenerator<Buffer, void, undefined> {
    const pending = this.#pending;
    this.#pending = EMPTY;
    if (pending.length > 0 && !this.#done) this.#record(pending, false);
    yield* this.#flush();
  }

  /** Yields the output so far as one copy (the pieces may point into the reused read buffer). */
  *#flush(): Generator<Buffer, void, undefined> {
    if (this.#out.length === 0) return;
    const chunk = Buffer.concat(this.#out);
    this.#out = [];
    yield chunk;
  }

  #record(line: Buffer, terminated: boolean): void {
    const record = parseCriLine(line);
    if (!record) return;
    const { sinceNs, stream, timestamps } = this.#options;
    if (stream === undefined || record.stream === stream) {
      const ends = record.tag === "F" && terminated;
      if (sinceNs === undefined || record.timeNs >= sinceNs) {
        if (timestamps && this.#atLineStart) {
          this.#emit(Buffer.from(`${formatRfc3339Nano(record.timeNs)} `, "latin1"));
        }
        this.#emit(record.content);
        if (ends) this.#emit(NEWLINE_BUFFER);
      }
      this.#atLineStart = ends || record.content.length === 0;
    }
    if (this.#recordsLeft !== undefined && --this.#recordsLeft <= 0) this.#done = true;
  }

  #emit(bytes: Buffer): void {
    if (this.#done || bytes.length === 0) return;
    if (bytes.length >= this.#remaining) {
      this.#out.push(bytes.subarray(0, this.#remaining));
      this.#remaining = 0;
      this.#done = true;
      return;
    }
    this.#out.push(bytes);
    this.#remaining -= bytes.length;
  }
}
