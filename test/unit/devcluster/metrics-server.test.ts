import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, test } from "node:test";
import {
  METRICS_SERVER_VERSION,
  metricsServerCacheDir,
  obtainMetricsServer,
} from "../../../src/devcluster/metrics-server.ts";
import { isWasmletError } from "../../../src/errors.ts";

let dir: string;
const saved = { ...process.env };

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wasmlet-ms-"));
});
beforeEach(() => {
  delete process.env.WASMLET_METRICS_SERVER;
  process.env.XDG_CACHE_HOME = join(dir, "cache");
});
after(async () => {
  process.env = saved;
  await rm(dir, { recursive: true, force: true });
});

async function fakeBinary(path: string, mode = 0o755): Promise<void> {
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, "#!/bin/sh\n");
  await chmod(path, mode);
}

test("the cache is $XDG_CACHE_HOME/wasmlet/metrics-server/<version>", () => {
  assert.equal(
    metricsServerCacheDir(),
    join(dir, "cache", "wasmlet", "metrics-server", METRICS_SERVER_VERSION),
  );
});

test("WASMLET_METRICS_SERVER names the binary to use", async () => {
  const path = join(dir, "env", "metrics-server");
  await fakeBinary(path);
  process.env.WASMLET_METRICS_SERVER = path;
  assert.deepEqual(await obtainMetricsServer(), { binary: path, source: "environment" });
});

test("a WASMLET_METRICS_SERVER that is not executable is refused with a hint", async () => {
  const path = join(dir, "env", "not-executable");
  await fakeBinary(path, 0o644);
  process.env.WASMLET_METRICS_SERVER = path;
  await assert.rejects(obtainMetricsServer(), (error) => {
    assert.ok(isWasmletError(error, "WASMLET_ERR_TOOL_MISSING"));
    assert.match(error.message, /not an executable file/);
    return true;
  });
});

test("a cached build is used as it is", async () => {
  const path = join(metricsServerCacheDir(), "metrics-server");
  await fakeBinary(path);
  assert.deepEqual(await obtainMetricsServer(), { binary: path, source: "cache" });
});
