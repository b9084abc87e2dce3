import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isWasmletError } from "../../../src/errors.ts";
import { defaultPullPolicy } from "../../../src/images/pull-policy.ts";
import {
  familiarReference,
  formatReference,
  imageIdFor,
  isLoopbackRegistry,
  parseReference,
  registryHost,
} from "../../../src/images/reference.ts";

const D = `sha256:${"a".repeat(64)}`;

describe("parseReference normalises like docker and containerd", () => {
  const cases: [string, string, string, string | undefined, string | undefined][] = [
    // input, registry, repository, tag, digest
    ["nginx", "docker.io", "library/nginx", "latest", undefined],
    ["nginx:1.25", "docker.io", "library/nginx", "1.25", undefined],
    ["library/nginx", "docker.io", "library/nginx", "latest", undefined],
    ["docker.io/nginx", "docker.io", "library/nginx", "latest", undefined],
    ["index.docker.io/nginx", "docker.io", "library/nginx", "latest", undefined],
    ["index.docker.io/library/nginx:x", "docker.io", "library/nginx", "x", undefined],
    ["user/app", "docker.io", "user/app", "latest", undefined],
    ["user/team/app:v1", "docker.io", "user/team/app", "v1", undefined],
    ["ghcr.io/org/app:1.0", "ghcr.io", "org/app", "1.0", undefined],
    ["localhost/app", "localhost", "app", "latest", undefined],
    ["localhost:5000/app:dev", "localhost:5000", "app", "dev", undefined],
    ["127.0.0.1:5000/a/b/c", "127.0.0.1:5000", "a/b/c", "latest", undefined],
    ["[::1]:5000/app:1", "[::1]:5000", "app", "1", undefined],
    ["registry:5000/app", "registry:5000", "app", "latest", undefined],
    ["Registry.Example.com/app", "Registry.Example.com", "app", "latest", undefined],
    [
      "my-registry.local/a__b/c.d-e:tag_1.x-y",
      "my-registry.local",
      "a__b/c.d-e",
      "tag_1.x-y",
      undefined,
    ],
    [`nginx@${D}`, "docker.io", "library/nginx", undefined, D],
    [`nginx:1@${D}`, "docker.io", "library/nginx", "1", D],
    [`host:5000/app:1@${D}`, "host:5000", "app", "1", D],
    // A bare host-looking single name is a Docker Hub repository, `localhost:5000` a name and tag.
    ["localhost:5000", "docker.io", "library/localhost", "5000", undefined],
    ["example.com", "docker.io", "library/example.com", "latest", undefined],
  ];
  for (const [input, registry, repository, tag, digest] of cases) {
    it(input, () => {
      assert.deepEqual(parseReference(input), { registry, repository, tag, digest });
    });
  }

  const invalid = [
    "",
    " nginx",
    "Nginx",
    "user/App",
    "nginx:",
    "nginx:-bad",
    `nginx:${"a".repeat(129)}`,
    "nginx@sha256:abc",
    `nginx@sha256:${"A".repeat(64)}`,
    "a".repeat(64),
    "host:port/app",
    "a//b",
    "app/",
    "-app",
    "a..b",
    "http://registry/app",
    `x/${"a".repeat(260)}`,
    ":tag",
    `@sha256:${"a".repeat(64)}`,
  ];
  for (const input of invalid) {
    it(`rejects ${JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input)}`, () => {
      assert.throws(
        () => parseReference(input),
        (e) =>
          isWasmletError(e, "WASMLET_ERR_IMAGE_REFERENCE_INVALID") &&
          e.message.includes("invalid image reference"),
      );
    });
  }
});

describe("reference helpers", () => {
  it("formats normalised and familiar forms", () => {
    assert.equal(formatReference(parseReference("nginx")), "docker.io/library/nginx:latest");
    assert.equal(familiarReference(parseReference("docker.io/library/nginx:1")), "nginx:1");
    assert.equal(familiarReference(parseReference("user/app")), "user/app:latest");
    assert.equal(familiarReference(parseReference("ghcr.io/a/b:1")), "ghcr.io/a/b:1");
    assert.equal(formatReference(parseReference(`h:1/a:t@${D}`)), `h:1/a:t@${D}`);
  });

  it("serves docker.io from registry-1.docker.io", () => {
    assert.equal(registryHost("docker.io"), "registry-1.docker.io");
    assert.equal(registryHost("ghcr.io"), "ghcr.io");
  });

  it("reports image IDs as repository@digest", () => {
    assert.equal(imageIdFor(parseReference("nginx:1"), D), `docker.io/library/nginx@${D}`);
  });

  it("knows loopback registries", () => {
    for (const r of [
      "localhost",
      "localhost:5000",
      "127.0.0.1:5000",
      "127.1.2.3",
      "[::1]:5000",
      "x.localhost",
    ]) {
      assert.equal(isLoopbackRegistry(r), true, r);
    }
    for (const r of ["docker.io", "10.0.0.1:5000", "localhost.example.com", "ghcr.io"]) {
      assert.equal(isLoopbackRegistry(r), false, r);
    }
  });
});

describe("the imagePullPolicy default", () => {
  const cases: [string, string][] = [
    ["nginx", "Always"],
    ["nginx:latest", "Always"],
    [`nginx:latest@${D}`, "Always"],
    ["nginx:1", "IfNotPresent"],
    [`nginx@${D}`, "IfNotPresent"],
    ["localhost:5000/app", "Always"],
  ];
  for (const [input, policy] of cases) {
    it(`${input} → ${policy}`, () =>
      assert.equal(defaultPullPolicy(parseReference(input)), policy));
  }
});
