// Every image layout people publish, pushed over HTTP to a real docker-registry and pulled back.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalRegistry } from "../../../src/devcluster/registry.ts";
import { isWasmletError } from "../../../src/errors.ts";
import { ImageService, MediaType, RegistryClient } from "../../../src/images/index.ts";
import { buildGuest } from "../../support/guests.ts";
import { buildModule } from "../../unit/images/support/wasm.ts";
import { CountingProxy } from "./support/proxy.ts";
import {
  makeTar,
  pushCncfArtifact,
  pushContainerImage,
  pushIndex,
  pushWasmToOci,
  type Target,
} from "./support/publish.ts";

let registry: LocalRegistry;
let proxy: CountingProxy;
let dataDir: string;
let hello: Buffer;
let service: ImageService;
const client = new RegistryClient();
const target = (repository: string): Target => ({ client, registry: registry.address, repository });
const ref = (path: string) => `${registry.address}/${path}`;
const viaProxy = (path: string) => `${proxy.address}/${path}`;

before(async () => {
  registry = await LocalRegistry.start();
  proxy = await CountingProxy.start({ target: registry.address });
  dataDir = await mkdtemp(join(tmpdir(), "wasmlet-images-e2e-"));
  hello = await readFile(await buildGuest("hello"));
  service = new ImageService({ dataDir, supportedImports: ["wasi_snapshot_preview1.*"] });
  await service.start();
});
after(async () => {
  await service?.close();
  await proxy?.stop();
  await registry?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

async function assertRunsHello(image: { wasmPath: string }) {
  assert.deepEqual(await readFile(image.wasmPath), hello);
}

describe("formats", () => {
  it("pulls a CNCF wasm artifact and compiles it once", async () => {
    const pushed = await pushCncfArtifact(target("fmt/cncf"), "1", hello);
    const image = await service.ensure(ref("fmt/cncf:1"));
    assert.equal(image.format, "wasm-artifact");
    assert.equal(image.digest, pushed.digest);
    assert.equal(image.imageID, `${registry.address}/fmt/cncf@${pushed.digest}`);
    assert.deepEqual(image.platform, { os: "wasip1", architecture: "wasm" });
    assert.equal(image.pulled, true);
    await assertRunsHello(image);
    const before = service.modules.compilations;
    const [a, b] = await Promise.all([service.compile(image), service.compile(image)]);
    assert.equal(a, b);
    assert.equal(service.modules.compilations, before + 1);
    assert.ok(WebAssembly.Module.exports(a).some((e) => e.name === "_start"));
  });

  it("pulls the wasm-to-oci layout", async () => {
    await pushWasmToOci(target("fmt/w2o"), "v1", hello);
    const image = await service.ensure(ref("fmt/w2o:v1"));
    assert.equal(image.format, "wasm-to-oci");
    await assertRunsHello(image);
  });

  it("pulls ordinary images (OCI and Docker types, gzip and plain tar) with entrypoint, cmd, env, workdir", async () => {
    const layer = await makeTar({ "app/hello.wasm": hello, "etc/motd": "hi" });
    await pushContainerImage(target("fmt/oci"), "1", {
      layers: [layer],
      config: {
        Entrypoint: ["/app/hello.wasm", "--flag"],
        Cmd: ["arg"],
        Env: ["A=1", "PATH=/"],
        WorkingDir: "/app",
      },
    });
    const image = await service.ensure(ref("fmt/oci:1"));
    assert.equal(image.format, "container-image");
    assert.deepEqual(
      [image.entrypoint, image.cmd, image.env, image.workingDir],
      [["/app/hello.wasm", "--flag"], ["arg"], ["A=1", "PATH=/"], "/app"],
    );
    assert.equal(image.imagePath, "/app/hello.wasm");
    // Labelled linux/amd64 like early wasm images, and still runs: its entrypoint is wasm.
    assert.deepEqual(image.platform, { os: "linux", architecture: "amd64" });
    await assertRunsHello(image);

    const plain = await makeTar({ "hello.wasm": hello }, false);
    await pushContainerImage(target("fmt/docker"), "1", {
      docker: true,
      layers: [plain],
      config: { Cmd: ["/hello.wasm#_start", "x"] },
    });
    const docker = await service.ensure(ref("fmt/docker:1"));
    assert.deepEqual(
      [docker.cmd, docker.wasmFunction, docker.imagePath],
      [["/hello.wasm", "x"], "_start", "/hello.wasm"],
    );
    await assertRunsHello(docker);

    await pushContainerImage(target("fmt/oci-tar"), "1", {
      layers: [plain],
      layerMediaType: MediaType.ociLayerTar,
      config: { Entrypoint: ["/hello.wasm"] },
    });
    const tar = await service.ensure(ref("fmt/oci-tar:1"));
    assert.equal(tar.imagePath, "/hello.wasm");
    await assertRunsHello(tar);
  });

  it("follows layers: later layers win, whiteouts delete, symlinks resolve; no entrypoint finds the one .wasm", async () => {
    const other = buildModule({ salt: 9, targetBytes: 3000 });
    const base = await makeTar({ "bin/app.wasm": other, "old.wasm": other });
    const top = await makeTar({
      "bin/app.wasm": hello,
      ".wh.old.wasm": "",
      "usr/local/bin/run": { symlink: "/bin/app.wasm" },
    });
    await pushContainerImage(target("fmt/layers"), "1", {
      layers: [base, top],
      config: { Entrypoint: ["/usr/local/bin/run"] },
    });
    const image = await service.ensure(ref("fmt/layers:1"));
    await assertRunsHello(image);
    await assert.rejects(
      service.ensure(ref("fmt/layers:1"), { executable: "/old.wasm" }),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_ENTRYPOINT_MISSING") &&
        e.message.includes("deleted by a later layer"),
    );
    // A pod command naming another module of the image gets that one (from the stored layers).
    const alt = await makeTar({ "a.wasm": hello, "b.wasm": other });
    await pushContainerImage(target("fmt/two"), "1", {
      layers: [alt],
      config: { Entrypoint: ["/a.wasm"] },
    });
    const b = await service.ensure(ref("fmt/two:1"), { executable: "/b.wasm#main" });
    assert.deepEqual(await readFile(b.wasmPath), Buffer.from(other));
    assert.equal(b.wasmFunction, "main");

    await pushContainerImage(target("fmt/noentry"), "1", {
      layers: [await makeTar({ "srv/only.wasm": hello, README: "x" })],
      config: {},
    });
    const found = await service.ensure(ref("fmt/noentry:1"));
    assert.equal(found.imagePath, "/srv/only.wasm");
    assert.deepEqual(found.cmd, ["/srv/only.wasm"]);
  });

  it("chooses wasip1/wasm from an OCI index and wasi/wasm from a Docker manifest list", async () => {
    const linux = await pushContainerImage(target("fmt/index"), "linux", {
      layers: [await makeTar({ "bin/sh": "\x7fELF" })],
      config: { Entrypoint: ["/bin/sh"] },
    });
    const wasm = await pushCncfArtifact(target("fmt/index"), "wasm", hello);
    const index = await pushIndex(target("fmt/index"), "multi", [
      { descriptor: linux, os: "linux", architecture: "amd64" },
      { descriptor: wasm, os: "wasip1", architecture: "wasm" },
    ]);
    const image = await service.ensure(ref("fmt/index:multi"));
    assert.equal(image.digest, index.digest);
    assert.equal(image.manifestDigest, wasm.digest);
    assert.equal(image.imageID, `${registry.address}/fmt/index@${index.digest}`);
    assert.deepEqual(image.platform, { os: "wasip1", architecture: "wasm" });
    await pushIndex(
      target("fmt/index"),
      "list",
      [
        { descriptor: linux, os: "linux", architecture: "amd64" },
        {
          descriptor: { ...wasm, mediaType: MediaType.ociManifest },
          os: "wasi",
          architecture: "wasm",
        },
      ],
      true,
    );
    assert.equal((await service.ensure(ref("fmt/index:list"))).manifestDigest, wasm.digest);
  });

  it("pulls by digest and reuses an image pulled by tag", async () => {
    const pushed = await pushCncfArtifact(target("fmt/digest"), "1", hello);
    await service.ensure(ref("fmt/digest:1"));
    const byDigest = await service.ensure(ref(`fmt/digest@${pushed.digest}`));
    assert.equal(byDigest.pulled, false);
    assert.equal(byDigest.digest, pushed.digest);
  });
});

describe("what wasmlet refuses, precisely", () => {
  it("an index with no wasm platform: an ordinary container image", async () => {
    const linux = await pushContainerImage(target("bad/nginx"), "amd64", {
      layers: [await makeTar({ "bin/sh": "\x7fELF" })],
      config: { Entrypoint: ["/bin/sh"] },
    });
    await pushIndex(target("bad/nginx"), "latest", [
      { descriptor: linux, os: "linux", architecture: "amd64" },
      { descriptor: linux, os: "linux", architecture: "arm64" },
    ]);
    await assert.rejects(
      service.ensure(ref("bad/nginx:latest")),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_NOT_WASM") &&
        e.message.includes("linux/amd64, linux/arm64") &&
        e.message.includes("this is an ordinary container image; wasmlet runs WebAssembly"),
    );
    await assert.rejects(
      service.ensure(ref("bad/nginx:amd64")),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_NOT_WASM") &&
        e.message.includes("entrypoint /bin/sh is not WebAssembly"),
    );
  });

  it("a component, in either layer type", async () => {
    const component = Buffer.from([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0]);
    await pushCncfArtifact(
      target("bad/component"),
      "typed",
      component,
      MediaType.wasmComponentLayer,
    );
    await pushCncfArtifact(target("bad/component"), "bytes", component);
    for (const tag of ["typed", "bytes"]) {
      await assert.rejects(
        service.ensure(ref(`bad/component:${tag}`)),
        (e) => isWasmletError(e, "WASMLET_ERR_IMAGE_COMPONENT"),
        tag,
      );
    }
  });

  it("a layer that is not valid wasm, and a missing entrypoint", async () => {
    await pushCncfArtifact(target("bad/invalid"), "1", hello.subarray(0, 200));
    await assert.rejects(service.ensure(ref("bad/invalid:1")), (e) =>
      isWasmletError(e, "WASMLET_ERR_IMAGE_INVALID_WASM"),
    );
    await pushContainerImage(target("bad/entry"), "1", {
      layers: [await makeTar({ "x.wasm": hello })],
      config: { Entrypoint: ["/app.wasm"] },
    });
    await assert.rejects(
      service.ensure(ref("bad/entry:1")),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_ENTRYPOINT_MISSING") &&
        e.message.includes("/app.wasm is not in any layer"),
    );
  });

  it("a module importing what the runtime lacks, naming the imports", async () => {
    await pushCncfArtifact(
      target("bad/imports"),
      "1",
      buildModule({
        imports: [
          ["env", "native_gpu"],
          ["wasi_snapshot_preview1", "fd_write"],
        ],
      }),
    );
    const image = await service.ensure(ref("bad/imports:1"));
    await assert.rejects(
      service.compile(image),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_UNSUPPORTED_IMPORTS") &&
        e.message.includes("env.native_gpu") &&
        !e.message.includes("fd_write"),
    );
  });

  it("unknown tags and repositories", async () => {
    await assert.rejects(
      service.ensure(ref("nothing/here:1")),
      (e) =>
        isWasmletError(e, "WASMLET_ERR_IMAGE_NOT_FOUND") && e.message.includes(registry.address),
    );
  });
});

describe("pull policy", () => {
  it("IfNotPresent uses the present image, Never refuses a missing one, Always re-resolves the tag", async () => {
    await pushCncfArtifact(target("policy/app"), "1", hello);
    await assert.rejects(service.ensure(viaProxy("policy/app:1"), { pullPolicy: "Never" }), (e) =>
      isWasmletError(e, "WASMLET_ERR_IMAGE_NEVER_PULL"),
    );
    const first = await service.ensure(viaProxy("policy/app:1"), { pullPolicy: "IfNotPresent" });
    assert.equal(first.pulled, true);
    const requests = proxy.log.length;
    assert.equal(
      (await service.ensure(viaProxy("policy/app:1"))).pulled,
      false,
      "default for :1 is IfNotPresent",
    );
    assert.equal(
      (await service.ensure(viaProxy("policy/app:1"), { pullPolicy: "Never" })).pulled,
      false,
    );
    assert.equal(proxy.log.length, requests, "no registry traffic");
    const same = await service.ensure(viaProxy("policy/app:1"), { pullPolicy: "Always" });
    assert.equal(same.pulled, false);
    assert.equal(proxy.log.length, requests + 1);
    assert.equal(proxy.log.at(-1)?.method, "HEAD");
    // The tag moves: Always pulls the new image.
    const moved = await pushCncfArtifact(target("policy/app"), "1", buildModule({ salt: 3 }));
    const updated = await service.ensure(viaProxy("policy/app:1"), { pullPolicy: "Always" });
    assert.equal(updated.pulled, true);
    assert.equal(updated.digest, moved.digest);
  });
});
