// Pulls from a real docker-registry behind htpasswd (Basic) and behind a bearer-token server.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalRegistry } from "../../../src/devcluster/registry.ts";
import { isWasmletError } from "../../../src/errors.ts";
import { ImageService, RegistryClient } from "../../../src/images/index.ts";
import { buildGuest } from "../../support/guests.ts";
import { TokenServer } from "../../support/token-server.ts";
import {
  makeTar,
  pushCncfArtifact,
  pushContainerImage,
  pushIndex,
  pushWasmToOci,
} from "./support/publish.ts";

const alice = { username: "alice", password: "correct horse", source: "test" };
const b64 = (s: string) => Buffer.from(s).toString("base64");
let dir: string;
let hello: Buffer;
let basic: LocalRegistry;
let tokens: TokenServer;
let bearer: LocalRegistry;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wasmlet-auth-e2e-"));
  hello = await readFile(await buildGuest("hello"));
  tokens = await TokenServer.start({ dir, users: { alice: alice.password } });
  [basic, bearer] = await Promise.all([
    LocalRegistry.start({ basicAuth: { username: alice.username, password: alice.password } }),
    LocalRegistry.start({ tokenAuth: tokens.registryAuth }),
  ]);
  const client = new RegistryClient();
  await pushCncfArtifact(
    { client, registry: basic.address, repository: "private/app", credentials: [alice] },
    "1",
    hello,
  );
  await pushCncfArtifact(
    { client, registry: bearer.address, repository: "private/app", credentials: [alice] },
    "1",
    hello,
  );
});
after(async () => {
  await basic?.stop();
  await bearer?.stop();
  await tokens?.stop();
  await rm(dir, { recursive: true, force: true });
});

const secret = (registry: string, user: string, password: string) =>
  JSON.stringify({ auths: { [registry]: { auth: b64(`${user}:${password}`) } } });
const service = async (name: string, extra: { dockerConfigPath?: string } = {}) => {
  const s = new ImageService({ dataDir: join(dir, name), ...extra });
  await s.start();
  return s;
};

for (const kind of ["htpasswd", "token"] as const) {
  describe(`${kind} registry`, () => {
    const registry = () => (kind === "htpasswd" ? basic : bearer);

    it("refuses anonymous pulls with an auth error naming the registry", async () => {
      const s = await service(`${kind}-anon`);
      await assert.rejects(
        s.ensure(`${registry().address}/private/app:1`),
        (e) =>
          isWasmletError(e, "WASMLET_ERR_IMAGE_AUTH_FAILED") &&
          e.message.includes(`registry ${registry().address} requires authentication`),
      );
    });

    it("gives an auth error naming the registry for a wrong password", async () => {
      const s = await service(`${kind}-wrong`);
      await assert.rejects(
        s.ensure(`${registry().address}/private/app:1`, {
          pullSecrets: [secret(registry().address, "alice", "wrong")],
        }),
        (e) =>
          isWasmletError(e, "WASMLET_ERR_IMAGE_AUTH_FAILED") &&
          e.message.includes(`authentication to registry ${registry().address} failed`) &&
          e.message.includes('as "alice" (from pull secret 1)'),
      );
    });

    it("pulls with a dockerconfigjson pull secret after a wrong one", async () => {
      const s = await service(`${kind}-secret`);
      const image = await s.ensure(`${registry().address}/private/app:1`, {
        pullSecrets: [
          secret(registry().address, "alice", "wrong"),
          secret(registry().address, "alice", alice.password),
        ],
      });
      assert.deepEqual(await readFile(image.wasmPath), hello);
    });

    it("pulls every format with credentials: wasm-to-oci, an image with tar layers, an index", async () => {
      const t = {
        client: new RegistryClient(),
        registry: registry().address,
        repository: "private/formats",
        credentials: [alice],
      };
      await pushWasmToOci(t, "w2o", hello);
      const image = await pushContainerImage(t, "image", {
        layers: [await makeTar({ "app/hello.wasm": hello })],
        config: { Entrypoint: ["/app/hello.wasm"] },
      });
      await pushIndex(t, "index", [{ descriptor: image, os: "wasip1", architecture: "wasm" }]);
      const s = await service(`${kind}-formats`);
      const pullSecrets = [secret(registry().address, "alice", alice.password)];
      const pulled = [];
      for (const tag of ["w2o", "image", "index"])
        pulled.push(
          await s.ensure(`${registry().address}/private/formats:${tag}`, { pullSecrets }),
        );
      assert.deepEqual(
        pulled.map((p) => p.format),
        ["wasm-to-oci", "container-image", "container-image"],
      );
      for (const p of pulled) assert.deepEqual(await readFile(p.wasmPath), hello);
    });

    it("pulls with a legacy dockercfg secret and with the node's docker config", async () => {
      const legacy = JSON.stringify({
        [`http://${registry().address}`]: {
          username: "alice",
          password: alice.password,
          email: "a@b",
        },
      });
      const s1 = await service(`${kind}-dockercfg`);
      assert.equal(
        (await s1.ensure(`${registry().address}/private/app:1`, { pullSecrets: [legacy] })).pulled,
        true,
      );
      const configPath = join(dir, `${kind}-config.json`);
      await writeFile(configPath, secret(registry().address, "alice", alice.password));
      const s2 = await service(`${kind}-node`, { dockerConfigPath: configPath });
      assert.equal((await s2.ensure(`${registry().address}/private/app:1`)).pulled, true);
    });
  });
}

describe("bearer tokens", () => {
  it("are fetched once per scope and reused across pulls", async () => {
    const s = await service("token-cache");
    const pullSecrets = [secret(bearer.address, "alice", alice.password)];
    const before = tokens.requests.length;
    await s.ensure(`${bearer.address}/private/app:1`, { pullSecrets });
    await s.ensure(`${bearer.address}/private/app:1`, { pullSecrets, pullPolicy: "Always" });
    const fetched = tokens.requests.slice(before);
    assert.equal(fetched.length, 1);
    assert.deepEqual(fetched[0]?.scopes, ["repository:private/app:pull"]);
    assert.equal(fetched[0]?.account, "alice");
  });

  it("are fetched anonymously from a token server that lets anyone pull, as for public images", async () => {
    await mkdir(join(dir, "public"));
    const publicTokens = await TokenServer.start({
      dir: join(dir, "public"),
      users: { alice: alice.password },
      anonymousPull: true,
    });
    const open = await LocalRegistry.start({ tokenAuth: publicTokens.registryAuth });
    try {
      const t = { client: new RegistryClient(), registry: open.address, repository: "public/app" };
      await pushCncfArtifact({ ...t, credentials: [alice] }, "1", hello);
      const before = publicTokens.requests.length;
      const image = await (await service("token-public")).ensure(`${open.address}/public/app:1`);
      assert.deepEqual(await readFile(image.wasmPath), hello);
      const fetched = publicTokens.requests.slice(before);
      assert.deepEqual(
        fetched.map((r) => [r.account, r.scopes, r.status]),
        [[undefined, ["repository:public/app:pull"], 200]],
      );
      await assert.rejects(
        pushCncfArtifact(t, "2", hello),
        (e) => isWasmletError(e, "WASMLET_ERR_IMAGE_AUTH_FAILED"),
        "anonymous callers may pull, not push",
      );
    } finally {
      await open.stop();
      await publicTokens.stop();
    }
  });
});
