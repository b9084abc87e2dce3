import assert from "node:assert/strict";
import { mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { isWasmletError } from "../../../src/errors.ts";
import {
  CredentialSet,
  credentialsFromPullSecrets,
  DockerConfigFile,
} from "../../../src/images/credentials.ts";
import { parseChallenges } from "../../../src/images/www-authenticate.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");
const users = (set: CredentialSet, registry: string, repo: string) =>
  set.lookup(registry, repo).map((c) => c.username);

describe("docker config credentials", () => {
  it("reads kubernetes.io/dockerconfigjson (auths, auth = base64 user:pass with ':' in the password)", () => {
    const set = CredentialSet.parse(
      JSON.stringify({
        auths: {
          "registry.example.com": { auth: b64("bob:pa:ss") },
          "other.io": { username: "u", password: "p" },
        },
      }),
      "secret",
    );
    const [c] = set.lookup("registry.example.com", "team/app");
    assert.equal(c?.username, "bob");
    assert.equal(c?.password, "pa:ss");
    assert.equal(c?.source, "secret");
    assert.deepEqual(users(set, "other.io", "x"), ["u"]);
    assert.deepEqual(users(set, "third.io", "x"), []);
  });

  it("reads legacy kubernetes.io/dockercfg (the auths map alone) and skips config.json extras", () => {
    const legacy = CredentialSet.parse(
      { "https://quay.io": { auth: b64("q:1"), email: "x@y" } },
      "legacy",
    );
    assert.deepEqual(users(legacy, "quay.io", "a/b"), ["q"]);
    const config = CredentialSet.parse(
      { auths: { "ghcr.io": { auth: b64("g:2") } }, credsStore: "desktop", HttpHeaders: {} },
      "cfg",
    );
    assert.equal(config.size, 1);
  });

  it("maps every Docker Hub spelling to docker.io", () => {
    for (const key of [
      "https://index.docker.io/v1/",
      "index.docker.io",
      "docker.io",
      "registry-1.docker.io",
      "https://registry.hub.docker.com",
    ]) {
      const set = CredentialSet.parse(
        { auths: { [key]: { username: "hub", password: "x" } } },
        "s",
      );
      assert.deepEqual(users(set, "docker.io", "library/nginx"), ["hub"], key);
    }
  });

  it("matches like the kubelet keyring: globs per label, port, path prefix, most specific first", () => {
    const set = CredentialSet.parse(
      {
        auths: {
          "*.gcr.io": { username: "glob", password: "x" },
          "us.gcr.io/project": { username: "project", password: "x" },
          "us.gcr.io/project/deep": { username: "deep", password: "x" },
          "localhost:5000": { username: "port", password: "x" },
          localhost: { username: "noport", password: "x" },
        },
      },
      "s",
    );
    assert.deepEqual(users(set, "us.gcr.io", "project/deep/app"), ["deep", "project", "glob"]);
    assert.deepEqual(users(set, "us.gcr.io", "projectx/app"), ["glob"]);
    assert.deepEqual(users(set, "gcr.io", "project/app"), [], "a glob needs as many labels");
    assert.deepEqual(users(set, "a.b.gcr.io", "x"), []);
    assert.deepEqual(users(set, "localhost:5000", "x"), ["port"]);
    assert.deepEqual(users(set, "localhost", "x"), ["noport"]);
    assert.deepEqual(users(set, "localhost:5001", "x"), []);
  });

  it("puts pull secrets before later sets and keeps each secret's order", () => {
    const secrets = credentialsFromPullSecrets([
      JSON.stringify({ auths: { "r.io": { username: "first", password: "1" } } }),
      JSON.stringify({ "r.io": { username: "second", password: "2" } }),
    ]);
    const node = CredentialSet.parse(
      { auths: { "r.io": { username: "node", password: "3" } } },
      "node",
    );
    assert.deepEqual(users(CredentialSet.concat(secrets, node), "r.io", "a"), [
      "first",
      "second",
      "node",
    ]);
    assert.equal(secrets.lookup("r.io", "a")[1]?.source, "pull secret 2");
  });

  it("keeps identity and registry tokens, drops entries without usable credentials", () => {
    const set = CredentialSet.parse(
      {
        auths: {
          "a.io": { identitytoken: "refresh" },
          "b.io": { registrytoken: "bearer" },
          "c.io": { email: "only" },
          "d.io": { auth: b64("nocolon") },
        },
      },
      "s",
    );
    assert.equal(set.lookup("a.io", "x")[0]?.identityToken, "refresh");
    assert.equal(set.lookup("b.io", "x")[0]?.registryToken, "bearer");
    assert.equal(set.size, 2);
  });

  it("rejects what is not a docker config", () => {
    for (const bad of ["{", "[]", '"x"', JSON.stringify({ auths: [] })]) {
      assert.throws(
        () => CredentialSet.parse(bad, "pull secret 3"),
        (e) =>
          isWasmletError(e, "WASMLET_ERR_IMAGE_CREDENTIALS_INVALID") &&
          e.message.startsWith("pull secret 3"),
      );
    }
  });

  it("re-reads the node's config file when it changes; a missing file is no credentials", async () => {
    const dir = await mkdtemp(join(tmpdir(), "wasmlet-creds-"));
    try {
      const path = join(dir, "config.json");
      const file = new DockerConfigFile(path);
      assert.equal((await file.load()).size, 0);
      await writeFile(
        path,
        JSON.stringify({ auths: { "r.io": { username: "one", password: "x" } } }),
      );
      assert.deepEqual(users(await file.load(), "r.io", "a"), ["one"]);
      await writeFile(
        path,
        JSON.stringify({ auths: { "r.io": { username: "two!", password: "x" } } }),
      );
      await utimes(path, new Date(), new Date(Date.now() + 5000));
      assert.deepEqual(users(await file.load(), "r.io", "a"), ["two!"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("WWW-Authenticate parsing", () => {
  it("reads Docker Hub's bearer challenge", () => {
    assert.deepEqual(
      parseChallenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"',
      ),
      [
        {
          scheme: "bearer",
          params: {
            realm: "https://auth.docker.io/token",
            service: "registry.docker.io",
            scope: "repository:library/nginx:pull",
          },
        },
      ],
    );
  });

  it("reads several challenges, token values, escapes and odd spacing", () => {
    assert.deepEqual(
      parseChallenges(
        'Basic realm="Registry \\"Realm\\"", Bearer realm=https://t/x , error=insufficient_scope',
      ),
      [
        { scheme: "basic", params: { realm: 'Registry "Realm"' } },
        { scheme: "bearer", params: { realm: "https://t/x", error: "insufficient_scope" } },
      ],
    );
    assert.deepEqual(parseChallenges("Negotiate"), [{ scheme: "negotiate", params: {} }]);
    assert.deepEqual(parseChallenges(null), []);
  });
});
