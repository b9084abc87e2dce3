// `wasmlet push`, `pull` and `inspect` as a user runs them, checked with skopeo.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { LocalRegistry } from "../../../src/devcluster/registry.ts";
import { buildGuest } from "../../support/guests.ts";
import { buildModule } from "../../unit/images/support/wasm.ts";

const exec = promisify(execFile);
const main = new URL("../../../src/cli/main.ts", import.meta.url).pathname;
let registry: LocalRegistry;
let secured: LocalRegistry;
let dir: string;
let helloPath: string;

async function wasmlet(
  args: string[],
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = exec(process.execPath, [main, ...args], {
    env: {
      ...process.env,
      WASMLET_DATA_DIR: join(dir, "data"),
      DOCKER_CONFIG: join(dir, "docker"),
    },
  });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  try {
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wasmlet-cli-e2e-"));
  [registry, secured] = await Promise.all([
    LocalRegistry.start(),
    LocalRegistry.start({ basicAuth: { username: "bob", password: "pw" } }),
  ]);
  helloPath = await buildGuest("hello");
});
after(async () => {
  await registry?.stop();
  await secured?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("wasmlet push / pull / inspect", () => {
  it("push publishes a CNCF wasm artifact that skopeo sees", async () => {
    const ref = `${registry.address}/cli/hello:1`;
    const pushed = await wasmlet([
      "push",
      "--plain-http",
      "--source",
      "https://example.com/hello",
      helloPath,
      ref,
    ]);
    assert.equal(pushed.code, 0, pushed.stderr);
    const digest = /Digest: (sha256:[0-9a-f]{64})/.exec(pushed.stdout)?.[1];
    assert.ok(digest, pushed.stdout);
    assert.doesNotMatch(pushed.stdout, /\r|#####/, "no progress bar when stdout is not a terminal");
    const { stdout } = await exec("skopeo", [
      "inspect",
      "--raw",
      "--tls-verify=false",
      `docker://${ref}`,
    ]);
    const manifest = JSON.parse(stdout);
    assert.equal(manifest.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.equal(manifest.config.mediaType, "application/vnd.wasm.config.v0+json");
    assert.equal(manifest.layers.length, 1);
    assert.equal(manifest.layers[0].mediaType, "application/wasm");
    assert.equal(
      manifest.layers[0].annotations["org.opencontainers.image.title"],
      helloPath.split("/").pop(),
    );
    assert.equal(
      manifest.annotations["org.opencontainers.image.source"],
      "https://example.com/hello",
    );
    assert.ok(!Number.isNaN(Date.parse(manifest.annotations["org.opencontainers.image.created"])));
    const config = JSON.parse(
      (
        await exec("skopeo", [
          "inspect",
          "--raw",
          "--config",
          "--tls-verify=false",
          `docker://${ref}`,
        ])
      ).stdout,
    );
    assert.deepEqual([config.os, config.architecture], ["wasip1", "wasm"]);

    const pulled = await wasmlet(["pull", ref]);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.match(pulled.stdout, new RegExp(`Digest: ${digest}`));
    assert.match(pulled.stdout, /pulled \(wasm-artifact/);

    const inspected = await wasmlet(["inspect", "--json", ref]);
    assert.equal(inspected.code, 0, inspected.stderr);
    const report = JSON.parse(inspected.stdout);
    assert.equal(report.format, "wasm-artifact");
    assert.equal(report.digest, digest);
    assert.ok(
      report.imports.some(
        (i: { module: string; name: string }) =>
          i.module === "wasi_snapshot_preview1" && i.name === "fd_write",
      ),
    );
    const text = await wasmlet(["inspect", ref]);
    assert.match(text.stdout, /Format: +wasm-artifact/);
    assert.match(text.stdout, /Entrypoint: +\(none\)/);
    assert.match(text.stdout, /wasi_snapshot_preview1\.fd_write \(function\)\n/);
    assert.ok(report.imports.every((i: { provided: boolean }) => i.provided));

    const foreign = join(dir, "foreign.wasm");
    await writeFile(
      foreign,
      buildModule({
        imports: [
          ["env", "native_gpu"],
          ["wasi_snapshot_preview1", "fd_write"],
        ],
      }),
    );
    const foreignRef = `${registry.address}/cli/foreign:v1`;
    assert.equal((await wasmlet(["push", foreign, foreignRef])).code, 0);
    const flagged = await wasmlet(["inspect", foreignRef]);
    assert.equal(flagged.code, 0, flagged.stderr);
    assert.match(flagged.stdout, /env\.native_gpu \(function\) — not provided by wasmlet/);
    assert.match(flagged.stdout, /wasi_snapshot_preview1\.fd_write \(function\)\n/);
  });

  it("push and pull with credentials; a wrong password is an auth error naming the registry", async () => {
    const ref = `${secured.address}/cli/private:1`;
    const bad = await wasmlet(["push", "-u", "bob", "-p", "nope", helloPath, ref]);
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      new RegExp(`wasmlet push: authentication to registry ${secured.address} failed`),
    );
    const ok = await wasmlet(["push", "-u", "bob", "--password-stdin", helloPath, ref], "pw\n");
    assert.equal(ok.code, 0, ok.stderr);
    const anonymous = await wasmlet(["pull", ref]);
    assert.equal(anonymous.code, 1);
    assert.match(anonymous.stderr, /requires authentication/);
    assert.equal((await wasmlet(["pull", "-u", "bob", "-p", "pw", ref])).code, 0);
  });

  it("each command has --help and rejects bad usage", async () => {
    for (const command of ["push", "pull", "inspect"]) {
      const help = await wasmlet([command, "--help"]);
      assert.equal(help.code, 0);
      assert.match(help.stdout, new RegExp(`Usage: wasmlet ${command}`));
      assert.match(help.stdout, /--plain-http/);
      const bad = await wasmlet([command]);
      assert.equal(bad.code, 2);
    }
    const top = await wasmlet(["--help"]);
    assert.match(top.stdout, /push .*CNCF wasm artifact/);
  });
});
