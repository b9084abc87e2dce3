// A container without imagePullPolicy gets the API server's default, the same rule images/ uses.
import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultPullPolicy } from "../../../src/images/pull-policy.ts";
import { parseReference } from "../../../src/images/reference.ts";
import { pullPolicy } from "../../../src/pods/states/pulling.ts";

const DIGEST = `sha256:${"a".repeat(64)}`;

test("the tag latest, explicit or implied, defaults to Always; other tags and bare digests to IfNotPresent", () => {
  const cases: Array<[string, string]> = [
    ["app", "Always"],
    ["app:latest", "Always"],
    ["localhost:5000/app", "Always"],
    ["localhost:5000/app:latest", "Always"],
    [`app:latest@${DIGEST}`, "Always"],
    ["app:v1", "IfNotPresent"],
    ["localhost:5000/team/app:v1", "IfNotPresent"],
    [`app@${DIGEST}`, "IfNotPresent"],
    [`localhost:5000/app@${DIGEST}`, "IfNotPresent"],
    [`app:v1@${DIGEST}`, "IfNotPresent"],
  ];
  for (const [image, expected] of cases) {
    assert.equal(pullPolicy({ name: "c", image }), expected, image);
    assert.equal(defaultPullPolicy(parseReference(image)), expected, `images/ on ${image}`);
  }
  assert.equal(pullPolicy({ name: "c", image: "app", imagePullPolicy: "Never" }), "Never");
});
