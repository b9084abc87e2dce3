import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { CredentialProviders } from "../../../src/images/credential-providers.ts";
import { imageMatches } from "../../../src/images/credentials.ts";
import { parseDuration } from "../../../src/images/duration.ts";

const dir = mkdtempSync(join(tmpdir(), "wasmlet-credprov-unit-"));

function config(text: string): string {
  const file = join(dir, `c${Math.random()}.yaml`);
  writeFileSync(file, text);
  return file;
}

test("matchImages patterns match like the kubelet's: host globs per label, port, path prefix", () => {
  assert.ok(
    imageMatches("*.dkr.ecr.*.amazonaws.com", "123.dkr.ecr.eu-west-1.amazonaws.com", "app"),
  );
  assert.ok(!imageMatches("*.dkr.ecr.*.amazonaws.com", "dkr.ecr.eu-west-1.amazonaws.com", "app"));
  assert.ok(
    imageMatches("registry.example.com:5000/team", "registry.example.com:5000", "team/app"),
  );
  assert.ok(!imageMatches("registry.example.com:5000/team", "registry.example.com", "team/app"));
  assert.ok(!imageMatches("registry.example.com/team", "registry.example.com", "teams/app"));
});

test("durations are Go's", () => {
  assert.equal(parseDuration("12h"), 12 * 3_600_000);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("0s"), 0);
  assert.equal(parseDuration("soon"), undefined);
});

test("a configuration is checked field by field", () => {
  const good = `apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr
    matchImages: ["*.dkr.ecr.*.amazonaws.com"]
    defaultCacheDuration: 12h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
`;
  assert.ok(CredentialProviders.fromFile(config(good), dir));
  const bad: [string, RegExp][] = [
    [
      good.replace("kind: CredentialProviderConfig", "kind: Other"),
      /expected kind CredentialProviderConfig/,
    ],
    [good.replace("name: ecr", "name: ../ecr"), /name must name an executable/],
    [
      good.replace('matchImages: ["*.dkr.ecr.*.amazonaws.com"]', "matchImages: []"),
      /matchImages must be a non-empty list/,
    ],
    [good.replace("defaultCacheDuration: 12h", "defaultCacheDuration: soon"), /is not a duration/],
    [
      good.replace("apiVersion: credentialprovider.kubelet.k8s.io/v1", "apiVersion: v0"),
      /apiVersion must be one of/,
    ],
  ];
  for (const [text, message] of bad)
    assert.throws(() => CredentialProviders.fromFile(config(text), dir), {
      code: "WASMLET_ERR_CREDENTIAL_PROVIDER_CONFIG",
      message,
    });
});
