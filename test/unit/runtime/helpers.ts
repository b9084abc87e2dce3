// Shared by the runtime tests: compiled test guests, temporary directories, and reading a
// container's CRI log back.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseCriLine } from "../../../src/logs/cri-format.ts";
import { compileModule } from "../../../src/runtime/module-check.ts";
import type { ContainerSpec } from "../../../src/runtime/types.ts";
import { buildGuest, type GuestName } from "../../support/guests.ts";

export { tolerant, until } from "../../support/until.ts";

const modules = new Map<GuestName, Promise<WebAssembly.Module>>();

export function guest(name: GuestName): Promise<WebAssembly.Module> {
  let module = modules.get(name);
  if (!module) {
    module = buildGuest(name).then((path) => compileModule(readFileSync(path)));
    modules.set(name, module);
  }
  return module;
}

export async function guestBytes(name: GuestName): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(readFileSync(await buildGuest(name)));
}

export function tempDir(prefix = "wasmlet-rt-"): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

let counter = 0;

/** A spec with defaults: log file in `dir`, no mounts, empty env. */
export function spec(
  dir: string,
  fields: Partial<ContainerSpec> & Pick<ContainerSpec, "module" | "args">,
): ContainerSpec {
  const id = fields.id ?? `c${++counter}`;
  return { id, env: {}, mounts: [], logPath: join(dir, `${id}.log`), ...fields };
}

export interface LogLine {
  stream: string;
  tag: string;
  text: string;
}

/** Parses a CRI log file; every line must parse. */
export function readLog(path: string): LogLine[] {
  const raw = readFileSync(path);
  const out: LogLine[] = [];
  let start = 0;
  for (;;) {
    const end = raw.indexOf(0x0a, start);
    if (end < 0) break;
    const record = parseCriLine(raw.subarray(start, end));
    if (!record)
      throw new Error(`not a CRI line: ${JSON.stringify(raw.subarray(start, end).toString())}`);
    out.push({ stream: record.stream, tag: record.tag, text: record.content.toString() });
    start = end + 1;
  }
  if (start !== raw.length) throw new Error("log file does not end with a newline");
  return out;
}

/** The lines of one stream, P records joined to the F that ends them. */
export function logText(path: string, stream = "stdout"): string[] {
  const lines: string[] = [];
  let pending = "";
  for (const line of readLog(path)) {
    if (line.stream !== stream) continue;
    pending += line.text;
    if (line.tag === "F") {
      lines.push(pending);
      pending = "";
    }
  }
  return lines;
}

/** Collects a container's or exec's output. */
export function collector(): {
  onOutput: (stream: "stdout" | "stderr", chunk: Uint8Array) => void;
  text(stream?: "stdout" | "stderr"): string;
} {
  const chunks: { stream: string; data: Buffer }[] = [];
  return {
    onOutput: (stream, chunk) => {
      chunks.push({ stream, data: Buffer.from(chunk) });
    },
    text: (stream = "stdout") =>
      Buffer.concat(chunks.filter((c) => c.stream === stream).map((c) => c.data)).toString(),
  };
}
