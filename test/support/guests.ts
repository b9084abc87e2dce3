// Builds the test guests under test/guests/ from source (clang + wasi-libc for C, GOOS=wasip1
// for Go) and caches each by a hash of its source, so a warm test run builds nothing.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rename, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const guestsDir = new URL("../guests/", import.meta.url).pathname;

export type GuestName =
  | "hello"
  | "ticker"
  | "reader"
  | "memhog"
  | "cpuloop"
  | "hello-go"
  | "http-go"
  | "fetch-go"
  | "cat"
  | "sockets"
  | "flood"
  | "fsprobe"
  | "watcher"
  | "toolbox"
  | "c-server"
  | "hostile";

function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "wasmlet", "test-guests");
}

async function sourceHash(name: GuestName): Promise<{ hash: string; isGo: boolean }> {
  const hash = createHash("sha256");
  const goDir = join(guestsDir, name);
  const isGo = await stat(goDir).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (isGo) {
    // Go guests may use the shared socket package beside them (a `replace` in their go.mod).
    for (const dir of [goDir, join(guestsDir, "wasinet")]) {
      for (const file of (await readdir(dir)).sort()) {
        hash.update(file).update(await readFile(join(dir, file)));
      }
    }
  } else {
    hash.update(await readFile(join(guestsDir, `${name}.c`)));
  }
  return { hash: hash.digest("hex").slice(0, 16), isGo };
}

const inFlight = new Map<GuestName, Promise<string>>();

/** Returns the path of the guest's .wasm, building it when its source changed. */
export function buildGuest(name: GuestName): Promise<string> {
  let pending = inFlight.get(name);
  if (!pending) {
    pending = build(name);
    inFlight.set(name, pending);
  }
  return pending;
}

async function build(name: GuestName): Promise<string> {
  const { hash, isGo } = await sourceHash(name);
  const dir = cacheDir();
  const out = join(dir, `${name}-${hash}.wasm`);
  if (
    await stat(out).then(
      () => true,
      () => false,
    )
  )
    return out;
  await mkdir(dir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    if (isGo) {
      await run("go", ["build", "-o", tmp, "."], {
        cwd: join(guestsDir, name),
        env: { ...process.env, GOOS: "wasip1", GOARCH: "wasm", GOFLAGS: "-mod=mod" },
      });
    } else {
      await run("clang", ["--target=wasm32-wasi", "-O2", "-o", tmp, join(guestsDir, `${name}.c`)]);
    }
  } catch (error) {
    const tool = isGo
      ? "go (GOOS=wasip1)"
      : "clang with wasi-libc (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)";
    throw new Error(
      `building test guest ${name} with ${tool} failed: ${(error as { stderr?: string }).stderr ?? error}`,
    );
  }
  await rename(tmp, out);
  return out;
}
