import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, test } from "node:test";
import { envVarFor, obtainControlPlaneBinaries } from "../../../src/devcluster/binaries.ts";
import { CONTROL_PLANE_BINARIES } from "../../../src/devcluster/versions.ts";

let dir: string;
const saved = { ...process.env };

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wasmlet-bin-"));
});
beforeEach(() => {
  for (const key of Object.keys(process.env))
    if (key.startsWith("WASMLET_")) delete process.env[key];
  process.env.XDG_CACHE_HOME = join(dir, "empty-cache");
});
after(async () => {
  process.env = saved;
  await rm(dir, { recursive: true, force: true });
});

async function fakeBinaries(at: string): Promise<void> {
  await mkdir(at, { recursive: true });
  for (const name of CONTROL_PLANE_BINARIES) {
    await writeFile(join(at, name), "#!/bin/sh\n");
    await chmod(join(at, name), 0o755);
  }
}

test("WASMLET_KUBE_BIN_DIR wins over everything else", async () => {
  await fakeBinaries(join(dir, "env"));
  process.env.WASMLET_KUBE_BIN_DIR = join(dir, "env");
  const { binaries, source } = await obtainControlPlaneBinaries({ allowDownload: false });
  assert.equal(source, "environment");
  assert.equal(binaries["kube-apiserver"], join(dir, "env", "kube-apiserver"));
});

test("a per-binary variable naming a missing file is a one-line error naming the variable", async () => {
  process.env[envVarFor("kube-apiserver")] = join(dir, "nope");
  await assert.rejects(
    obtainControlPlaneBinaries({ allowDownload: false }),
    (error: Error & { code: string; hint: string }) => {
      assert.equal(error.code, "WASMLET_ERR_TOOL_MISSING");
      assert.match(error.message, /kube-apiserver is not an executable file/);
      assert.match(error.hint, /WASMLET_KUBE_APISERVER/);
      return true;
    },
  );
});

test("the cache directory is used when it holds all four binaries", async () => {
  await fakeBinaries(join(dir, "cache", "wasmlet", "kubernetes", "v1.37.2"));
  process.env.XDG_CACHE_HOME = join(dir, "cache");
  const { source, dir: found } = await obtainControlPlaneBinaries({ allowDownload: false });
  assert.equal(source, "cache");
  assert.equal(found, join(dir, "cache", "wasmlet", "kubernetes", "v1.37.2"));
});

test("without Go and without downloads, the error says what to install", async () => {
  const path = process.env.PATH;
  process.env.PATH = join(dir, "no-tools");
  try {
    await assert.rejects(
      obtainControlPlaneBinaries({ allowDownload: false }),
      (error: Error & { code: string; hint: string }) => {
        assert.equal(error.code, "WASMLET_ERR_TOOL_MISSING");
        assert.match(error.message, /^go is not installed/);
        assert.match(error.hint, /install Go 1\.26/);
        assert.doesNotMatch(error.message, /\n/);
        return true;
      },
    );
  } finally {
    process.env.PATH = path;
  }
});
