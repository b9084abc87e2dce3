import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { BuildLog, obtainGoTool } from "../../../src/devcluster/go-tool.ts";
import { isWasmletError } from "../../../src/errors.ts";

const root = await mkdtemp(join(tmpdir(), "wasmlet-go-tool-"));
after(() => rm(root, { recursive: true, force: true }));

test("a build log keeps every command's output; a failure names the step, the log and its last lines", async () => {
  const path = join(root, "build.log");
  const log = new BuildLog(path);
  assert.equal(await log.run("sh", ["-c", "echo out; echo err >&2"], root), "out\n");
  const failing = log.run("sh", ["-c", "echo 'compile error: x.go:1'; exit 3"], root);
  const error = await failing.catch((e: unknown) => e);
  await assert.rejects(log.fail("building x", error), (e: Error) => {
    assert.ok(isWasmletError(e, "WASMLET_ERR_BUILD_FAILED"));
    assert.match(e.message, /^building x failed: sh -c exited with code 3; see .*build\.log:\n/);
    assert.match(e.message, /compile error: x\.go:1$/);
    return true;
  });
  const text = await readFile(path, "utf8");
  assert.match(text, /^\$ sh -c echo out; echo err >&2\nout\nerr\n/);
});

test("a tool comes from its environment variable, else the cache, else a build into the cache", async (t) => {
  const cacheDir = join(root, "cache", "v1");
  let builds = 0;
  const tool = {
    name: "tool",
    envVar: "WASMLET_TEST_TOOL",
    cacheDir,
    build: async (dir: string) => {
      builds++;
      const binary = join(dir, "tool");
      await writeFile(binary, "#!/bin/sh\n", { mode: 0o755 });
      return binary;
    },
  };
  t.after(() => delete process.env.WASMLET_TEST_TOOL);
  assert.deepEqual(await obtainGoTool(tool), { binary: join(cacheDir, "tool"), source: "built" });
  assert.deepEqual(await obtainGoTool(tool), { binary: join(cacheDir, "tool"), source: "cache" });
  assert.equal(builds, 1);
  process.env.WASMLET_TEST_TOOL = join(root, "missing");
  await assert.rejects(obtainGoTool(tool), (e: Error & { hint?: string }) => {
    assert.ok(isWasmletError(e, "WASMLET_ERR_TOOL_MISSING"));
    assert.match(e.message, /tool is not an executable file at .*missing/);
    assert.equal(e.hint, "fix WASMLET_TEST_TOOL or unset it to build tool");
    return true;
  });
  process.env.WASMLET_TEST_TOOL = join(cacheDir, "tool");
  assert.equal((await obtainGoTool(tool)).source, "environment");
});
