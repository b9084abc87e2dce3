// The CRI container log line, as the kubelet and containerd write it:
//
//   <timestamp> <stream> <tag> <content>\n
//
// - timestamp: RFC 3339 in UTC with nanoseconds, always nine fraction digits
//   (`2025-01-02T03:04:05.123456789Z`), so lines sort as strings. Go's time.RFC3339Nano parser
//   (the kubelet's) accepts a fixed-width fraction.
// - stream: `stdout` or `stderr`.
// - tag: `F` for a line that ends here, `P` for a piece that continues in the next record of the
//   same stream (a line longer than the maximum line size, or an unfinished line flushed early).
//   A reader joins the contents of P records up to the next F record of the same stream.
// - content: raw bytes without the newline (never contains `\n`).

export type LogStream = "stdout" | "stderr";
export type LogTag = "F" | "P";

export interface CriRecord {
  /** Nanoseconds since the Unix epoch. */
  timeNs: bigint;
  /** The timestamp exactly as written. */
  time: string;
  stream: LogStream;
  tag: LogTag;
  content: Buffer;
}

/** Default maximum content bytes per record, containerd's `max_container_log_line_size`. */
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024;

const NS_PER_SECOND = 1_000_000_000n;

/** Formats nanoseconds since the epoch as an RFC 3339 UTC timestamp with nine fraction digits. */
export function formatTimestamp(epochNs: bigint): string {
  const seconds = epochNs / NS_PER_SECOND;
  const fraction = epochNs % NS_PER_SECOND;
  const base = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  return `${base}.${fraction.toString().padStart(9, "0")}Z`;
}

const TIMESTAMP = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/** Parses an RFC 3339 timestamp (any fraction width, any offset) to nanoseconds since the epoch. */
export function parseTimestamp(text: string): bigint | undefined {
  const match = TIMESTAMP.exec(text);
  if (!match) return undefined;
  const ms = Date.parse(`${match[1]}${match[3]}`);
  if (Number.isNaN(ms)) return undefined;
  const fraction = BigInt((match[2] ?? "").padEnd(9, "0") || "0");
  return BigInt(ms) * 1_000_000n + fraction;
}

/** Parses one record (without its trailing newline); undefined when the line is not CRI format. */
export function parseCriLine(line: Buffer): CriRecord | undefined {
  const firstSpace = line.indexOf(0x20);
  if (firstSpace < 0) return undefined;
  const time = line.toString("latin1", 0, firstSpace);
  const timeNs = parseTimestamp(time);
  if (timeNs === undefined) return undefined;
  const secondSpace = line.indexOf(0x20, firstSpace + 1);
  if (secondSpace < 0) return undefined;
  const stream = line.toString("latin1", firstSpace + 1, secondSpace);
  if (stream !== "stdout" && stream !== "stderr") return undefined;
  const tag = line.toString("latin1", secondSpace + 1, secondSpace + 2);
  if (tag !== "F" && tag !== "P") return undefined;
  // The kubelet also accepts a missing content separator at the very end of the line.
  const contentStart = Math.min(line.length, secondSpace + 3);
  if (secondSpace + 2 < line.length && line[secondSpace + 2] !== 0x20) return undefined;
  return { timeNs, time, stream, tag, content: line.subarray(contentStart) };
}
