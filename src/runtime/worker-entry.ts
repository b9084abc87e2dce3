// Where workers load their code from. Built (dist/), that is worker.js next to this file. Run
// from the TypeScript sources (development, tests, benchmarks), every worker would load Node's
// TypeScript stripper (a WebAssembly build of swc) into its own isolate: measured here, that adds
// about 8 MiB of RSS and 40 ms of boot to every worker. So the first spawn strips the worker's
// module graph once, in this thread, into a content-addressed cache directory of plain .js files,
// and workers load those.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { stripTypeScriptTypes } from "node:module";
import { dirname, extname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { privateTempDir } from "./private-dir.ts";

const here = fileURLToPath(import.meta.url);
/** Relative specifiers in static imports/exports and dynamic imports. */
const SPECIFIER = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])(\.\.?\/[^"']+)\2/g;

let cached: URL | undefined;

/** The URL to start workers from. */
export function workerEntry(): URL {
  if (extname(here) !== ".ts") return new URL("./worker.js", import.meta.url);
  if (cached && existsSync(fileURLToPath(cached))) return cached;
  cached = strippedWorker(join(dirname(here), "worker.ts"));
  return cached;
}

function strip(source: string): string {
  // The stripper announces itself as experimental once per process; that is noise here.
  const emitWarning = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (String(warning).includes("stripTypeScriptTypes")) return;
    return (emitWarning as (...args: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    return stripTypeScriptTypes(source, { mode: "strip" });
  } finally {
    process.emitWarning = emitWarning;
  }
}

function strippedWorker(entry: string): URL {
  const root = resolve(dirname(here), "..");
  const files = new Map<string, string>();
  const pending = [entry];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (files.has(file)) continue;
    const code = strip(readFileSync(file, "utf8")).replace(
      SPECIFIER,
      (_all, head: string, quote: string, spec: string) => {
        if (spec.endsWith(".ts")) {
          pending.push(resolve(dirname(file), spec));
          return `${head}${quote}${spec.slice(0, -3)}.js${quote}`;
        }
        return `${head}${quote}${spec}${quote}`;
      },
    );
    files.set(file, code);
  }
  const hash = createHash("sha256").update(process.version);
  for (const [file, code] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    hash.update(relative(root, file)).update("\0").update(code).update("\0");
  }
  const base = privateTempDir("wasmlet-worker-js");
  const target = join(base, hash.digest("hex").slice(0, 20));
  const out = join(target, `${relative(root, entry).slice(0, -3)}.js`);
  if (!existsSync(out)) {
    const staging = `${target}.${process.pid}.${Date.now()}`;
    for (const [file, code] of files) {
      const path = join(staging, `${relative(root, file).slice(0, -3)}.js`);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, code);
    }
    writeFileSync(join(staging, "package.json"), '{"type":"module"}\n');
    try {
      renameSync(staging, target);
    } catch {
      // Another process got there first with the same content, or a half-cleaned directory is
      // in the way.
      if (!existsSync(out)) {
        rmSync(target, { recursive: true, force: true });
        renameSync(staging, target);
      } else {
        rmSync(staging, { recursive: true, force: true });
      }
    }
  }
  return pathToFileURL(out);
}
