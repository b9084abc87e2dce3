import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { V1SubjectAccessReview } from "@kubernetes/client-node";
import type { UserInfo } from "../../../src/server/authn.ts";
import { NodeAuthorizer, subresourcesForPath, verbForMethod } from "../../../src/server/authz.ts";

describe("kubelet API authorization", () => {
  it("maps paths to nodes subresources the way the kubelet does", () => {
    assert.deepEqual(subresourcesForPath("/stats/summary"), ["stats"]);
    assert.deepEqual(subresourcesForPath("/metrics/resource"), ["metrics"]);
    assert.deepEqual(subresourcesForPath("/metrics"), ["metrics"]);
    assert.deepEqual(subresourcesForPath("/logs/messages"), ["log"]);
    assert.deepEqual(subresourcesForPath("/healthz?verbose"), ["healthz", "proxy"]);
    assert.deepEqual(subresourcesForPath("/pods"), ["pods", "proxy"]);
    assert.deepEqual(subresourcesForPath("/containerLogs/ns/pod/c"), ["proxy"]);
    assert.deepEqual(subresourcesForPath("/exec/ns/pod/c"), ["proxy"]);
    assert.deepEqual(
      subresourcesForPath("/statsfoo"),
      ["proxy"],
      "a prefix must end at a path boundary",
    );
    assert.equal(verbForMethod("GET"), "get");
    assert.equal(verbForMethod("HEAD"), "get");
    assert.equal(verbForMethod("POST"), "create");
    assert.equal(verbForMethod("PUT"), "update");
    assert.equal(verbForMethod("PATCH"), "patch");
    assert.equal(verbForMethod("DELETE"), "delete");
  });

  it("asks for each subresource in turn, on this node, and caches the answers", async () => {
    const asked: V1SubjectAccessReview[] = [];
    const authorizer = new NodeAuthorizer({
      nodeName: "n1",
      reviewer: {
        review: async (review) => {
          asked.push(review);
          return review.spec.resourceAttributes?.subresource === "proxy";
        },
      },
    });
    const user: UserInfo = { username: "alice", groups: ["devs"], uid: "u1", via: "token" };
    assert.equal(
      await authorizer.authorize(user, { verb: "get", subresources: ["healthz", "proxy"] }),
      "proxy",
    );
    assert.deepEqual(
      asked.map((r) => r.spec.resourceAttributes),
      [
        {
          verb: "get",
          group: "",
          version: "v1",
          resource: "nodes",
          subresource: "healthz",
          name: "n1",
        },
        {
          verb: "get",
          group: "",
          version: "v1",
          resource: "nodes",
          subresource: "proxy",
          name: "n1",
        },
      ],
    );
    assert.equal(asked[0]?.spec.user, "alice");
    assert.deepEqual(asked[0]?.spec.groups, ["devs"]);
    assert.equal(
      await authorizer.authorize(user, { verb: "get", subresources: ["healthz", "proxy"] }),
      "proxy",
    );
    assert.equal(asked.length, 2, "answered from the cache");
    assert.equal(
      await authorizer.authorize(user, { verb: "create", subresources: ["stats"] }),
      undefined,
    );
    assert.equal(asked.length, 3);
    const bob: UserInfo = { username: "bob", groups: [], via: "x509" };
    await authorizer.authorize(bob, { verb: "get", subresources: ["proxy"] });
    assert.equal(asked.length, 4, "another user is asked about separately");
  });
});
