import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { create } from "tar";
import { isWasmletError } from "../../../src/errors.ts";
import {
  assertRunnableWasm,
  classifyManifest,
  selectPlatform,
  splitFunction,
} from "../../../src/images/formats.ts";
import { findFile, findWasmFiles, type LayerFile } from "../../../src/images/layers.ts";
import {
  type Descriptor,
  type ImageManifest,
  MediaType,
  parseImageConfig,
  parseManifest,
} from "../../../src/images/manifest.ts";
import { buildModule } from "./support/wasm.ts";

let dir: string;
let n = 0;

async function layer(
  files: Record<string, string | { symlink: string }>,
  options: { gzip?: boolean; zstd?: boolean } = {},
): Promise<LayerFile> {
  const src = join(dir, `src${++n}`);
  await mkdir(src, { recursive: true });
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(src, path)), { recursive: true });
    if (typeof content === "string") await writeFile(join(src, path), content);
    else await symlink(content.symlink, join(src, path));
  }
  const file = join(dir, `layer${n}.tar`);
  await create(
    { cwd: src, file, portable: true, ...options },
    Object.keys(files).map((p) => (p.startsWith("./") ? p : `./${p}`)),
  );
  return { path: file, digest: `sha256:${String(n).padStart(64, "0")}` };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wasmlet-layers-"));
});
after(() => rm(dir, { recursive: true, force: true }));

describe("finding a file in tar layers", () => {
  it("takes the topmost layer's copy, through gzip, zstd and plain tar", async () => {
    const layers = [
      await layer({ "app/main.wasm": "bottom", "etc/os": "x" }, { gzip: true }),
      await layer({ "app/main.wasm": "middle" }, { zstd: true }),
      await layer({ "other/file": "y", "app/main.wasm": "top" }),
    ];
    const found = await findFile(layers, "/app/main.wasm", 1000);
    assert.equal(found.found && found.bytes.toString(), "top");
    const lower = await findFile(layers, "etc/os", 1000);
    assert.equal(lower.found && lower.bytes.toString(), "x");
    assert.deepEqual(await findFile(layers, "/nope", 1000), {
      found: false,
      reason: "missing",
      path: "/nope",
    });
  });

  it("honours whiteouts and opaque directories", async () => {
    const layers = [
      await layer({ "a/x.wasm": "1", "b/y.wasm": "2", "c/z.wasm": "3" }, { gzip: true }),
      await layer({ "a/.wh.x.wasm": "", "b/.wh..wh..opq": "", "b/new": "n", ".wh.c": "" }),
    ];
    for (const path of ["/a/x.wasm", "/b/y.wasm", "/c/z.wasm"]) {
      const found = await findFile(layers, path, 1000);
      assert.equal(found.found, false, path);
      assert.equal(!found.found && found.reason, "whiteout");
    }
    const kept = await findFile(layers, "/b/new", 1000);
    assert.equal(kept.found && kept.bytes.toString(), "n");
  });

  it("follows symbolic links (relative and absolute) across layers", async () => {
    const layers = [
      await layer({ "opt/real.wasm": "module" }),
      await layer({
        "usr/bin/app": { symlink: "../../opt/real.wasm" },
        abs: { symlink: "/usr/bin/app" },
      }),
    ];
    const found = await findFile(layers, "/abs", 1000);
    assert.equal(found.found && found.bytes.toString(), "module");
    assert.equal(found.found && found.path, "/opt/real.wasm");
    const loop = [await layer({ a: { symlink: "b" }, b: { symlink: "a" } })];
    await assert.rejects(findFile(loop, "/a", 1000), (e) =>
      isWasmletError(e, "WASMLET_ERR_IMAGE_ENTRYPOINT_MISSING"),
    );
  });

  it("refuses a file over the size limit and a directory", async () => {
    const layers = [await layer({ "big.wasm": "x".repeat(2000), "d/f": "1" })];
    await assert.rejects(findFile(layers, "/big.wasm", 1000), (e) =>
      isWasmletError(e, "WASMLET_ERR_IMAGE_TOO_LARGE"),
    );
    assert.equal((await findFile(layers, "/d", 1000)).found, false);
  });

  it("lists .wasm files of the topmost layer that has any", async () => {
    const layers = [
      await layer({ "a.wasm": "1" }),
      await layer({ "x/b.wasm": "2", "x/c.wasm": "3", "x/d.txt": "4" }),
    ];
    assert.deepEqual(await findWasmFiles(layers), ["/x/b.wasm", "/x/c.wasm"]);
  });

  it("reports a corrupt layer", async () => {
    const file = join(dir, "garbage.tar");
    await writeFile(file, Buffer.alloc(1024, 7));
    await assert.rejects(findFile([{ path: file, digest: "sha256:x" }], "/a", 10), (e) =>
      isWasmletError(e),
    );
    assert.ok((await readFile(file)).length > 0);
  });
});

const d = (mediaType: string, extra: Partial<Descriptor> = {}): Descriptor => ({
  mediaType,
  digest: `sha256:${"b".repeat(64)}`,
  size: 1,
  ...extra,
});
const manifest = (config: string, layers: string[]): ImageManifest => ({
  kind: "manifest",
  mediaType: MediaType.ociManifest,
  config: d(config),
  layers: layers.map((l) => d(l)),
});

describe("formats", () => {
  it("classifies the CNCF artifact, wasm-to-oci and container images", () => {
    assert.equal(
      classifyManifest(manifest(MediaType.wasmConfigV0, [MediaType.wasmLayer]), "i").format,
      "wasm-artifact",
    );
    assert.equal(
      classifyManifest(manifest(MediaType.ociEmpty, [MediaType.wasmLayer]), "i").format,
      "wasm-artifact",
    );
    assert.equal(
      classifyManifest(manifest(MediaType.wasmToOciConfig, [MediaType.wasmToOciLayer]), "i").format,
      "wasm-to-oci",
    );
    const image = classifyManifest(
      manifest(MediaType.dockerConfig, [MediaType.dockerLayerTarGzip, MediaType.ociLayerTar]),
      "i",
    );
    assert.equal(image.format, "container-image");
    assert.equal(image.tarLayers?.length, 2);
  });

  it("says what unsupported manifests are", () => {
    assert.throws(
      () =>
        classifyManifest(
          manifest(MediaType.wasmConfigV0, [MediaType.wasmComponentLayer]),
          "image x",
        ),
      (e) => isWasmletError(e, "WASMLET_ERR_IMAGE_COMPONENT") && e.message.includes("component"),
    );
    assert.throws(
      () =>
        classifyManifest(
          manifest("application/vnd.fermyon.spin.application.v1+config", [
            "application/vnd.fermyon.spin.application.v1+config",
          ]),
          "image x",
        ),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_MANIFEST_INVALID") &&
        e.message.includes("Spin application"),
    );
    assert.throws(
      () =>
        classifyManifest(
          manifest(MediaType.wasmConfigV0, [MediaType.wasmLayer, MediaType.wasmLayer]),
          "image x",
        ),
      (e) => isWasmletError(e, "WASMLET_ERR_IMAGE_MANIFEST_INVALID"),
    );
  });

  it("chooses wasip1/wasm, then wasi/wasm, and names the platforms of an ordinary image", () => {
    const entries = (platforms: [string, string][]) => ({
      kind: "index" as const,
      mediaType: MediaType.ociIndex,
      manifests: platforms.map(([os, architecture], i) =>
        d(MediaType.ociManifest, {
          digest: `sha256:${String(i).repeat(64)}`,
          platform: { os, architecture },
        }),
      ),
    });
    assert.equal(
      selectPlatform(
        entries([
          ["linux", "amd64"],
          ["wasi", "wasm"],
          ["wasip1", "wasm"],
        ]),
        "i",
      ).platform?.os,
      "wasip1",
    );
    assert.equal(
      selectPlatform(
        entries([
          ["linux", "amd64"],
          ["wasi", "wasm"],
        ]),
        "i",
      ).platform?.os,
      "wasi",
    );
    assert.throws(
      () =>
        selectPlatform(
          entries([
            ["linux", "amd64"],
            ["linux", "arm64"],
            ["unknown", "unknown"],
          ]),
          "image nginx",
        ),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_NOT_WASM") &&
        e.message.includes("linux/amd64, linux/arm64") &&
        !e.message.includes("unknown") &&
        e.message.includes("this is an ordinary container image; wasmlet runs WebAssembly"),
    );
    assert.throws(
      () => selectPlatform(entries([["wasip2", "wasm"]]), "i"),
      (e) => isWasmletError(e, "WASMLET_ERR_IMAGE_COMPONENT"),
    );
  });

  it("splits runwasi's path#function", () => {
    assert.deepEqual(splitFunction("/app.wasm#run"), { path: "/app.wasm", func: "run" });
    assert.deepEqual(splitFunction("/app.wasm"), { path: "/app.wasm", func: undefined });
    assert.deepEqual(splitFunction("/app.wasm#"), { path: "/app.wasm", func: undefined });
  });

  it("accepts valid modules and refuses components, non-wasm and invalid wasm precisely", async () => {
    await assertRunnableWasm(buildModule(), "m", false);
    const component = new Uint8Array([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0]);
    await assert.rejects(assertRunnableWasm(component, "m", false), (e) =>
      isWasmletError(e, "WASMLET_ERR_IMAGE_COMPONENT"),
    );
    const elf = new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0]);
    await assert.rejects(
      assertRunnableWasm(elf, "entrypoint /bin/sh", true),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_NOT_WASM") &&
        e.message.includes("ordinary container image"),
    );
    await assert.rejects(assertRunnableWasm(elf, "layer", false), (e) =>
      isWasmletError(e, "WASMLET_ERR_IMAGE_INVALID_WASM"),
    );
    const broken = buildModule().slice(0, 30);
    await assert.rejects(
      assertRunnableWasm(broken, "layer", false),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_INVALID_WASM") &&
        e.message.includes("not a valid WebAssembly module"),
    );
  });
});

describe("manifest parsing", () => {
  const bytes = (v: unknown) => Buffer.from(JSON.stringify(v));
  it("infers the media type from the content type or shape; refuses schema 1", () => {
    const m = parseManifest(
      bytes({ schemaVersion: 2, config: d(MediaType.ociConfig), layers: [] }),
      undefined,
      "x",
    );
    assert.equal(m.kind, "manifest");
    const i = parseManifest(
      bytes({ schemaVersion: 2, manifests: [] }),
      `${MediaType.dockerManifestList}; charset=utf-8`,
      "x",
    );
    assert.equal(i.kind === "index" && i.mediaType, MediaType.dockerManifestList);
    assert.throws(
      () => parseManifest(bytes({ schemaVersion: 1, fsLayers: [] }), undefined, "x"),
      /schema 1/,
    );
    assert.throws(
      () => parseManifest(Buffer.from("<html>"), undefined, "x"),
      (e) => isWasmletError(e, "WASMLET_ERR_IMAGE_MANIFEST_INVALID"),
    );
    assert.throws(
      () =>
        parseManifest(
          bytes({
            schemaVersion: 2,
            config: d(MediaType.ociConfig),
            layers: [{ mediaType: "x", digest: "sha256:zz", size: 1 }],
          }),
          undefined,
          "x",
        ),
      /bad digest/,
    );
    assert.throws(
      () =>
        parseManifest(
          bytes({ schemaVersion: 2, config: d(MediaType.ociConfig, { size: -1 }), layers: [] }),
          undefined,
          "x",
        ),
      /bad size/,
    );
  });

  it("reads entrypoint, cmd, env and working dir from an image config", () => {
    const c = parseImageConfig(
      bytes({
        os: "linux",
        architecture: "amd64",
        config: { Entrypoint: ["/a.wasm"], Cmd: ["x"], Env: ["A=1"], WorkingDir: "/w" },
      }),
      "x",
    );
    assert.deepEqual(
      [c.entrypoint, c.cmd, c.env, c.workingDir, c.os],
      [["/a.wasm"], ["x"], ["A=1"], "/w", "linux"],
    );
    const empty = parseImageConfig(bytes({}), "x");
    assert.deepEqual([empty.entrypoint, empty.cmd, empty.workingDir], [[], [], undefined]);
  });
});
