import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiException } from "@kubernetes/client-node";
import {
  apiError,
  isConflict,
  isNetworkError,
  isNotFound,
  isTransient,
  statusCode,
} from "../../../src/kube/api-error.ts";
import { nodeError } from "../../../src/node/errors.ts";

const status = (code: number, message: string) =>
  new ApiException(
    code,
    `HTTP-Code: ${code}`,
    JSON.stringify({ kind: "Status", code, message }),
    {},
  );

describe("apiError", () => {
  it("maps HTTP codes to stable wasmlet codes with the API server's message", () => {
    const forbidden = apiError(
      status(403, 'nodes "n1" is forbidden: User "x" cannot patch'),
      "patching node n1",
    );
    assert.equal(forbidden.code, "WASMLET_ERR_KUBE_FORBIDDEN");
    assert.equal(
      forbidden.message,
      'patching node n1: 403 Forbidden: nodes "n1" is forbidden: User "x" cannot patch',
    );
    assert.match(forbidden.hint ?? "", /manifests\/rbac\.yaml/);
    assert.equal(apiError(status(401, "Unauthorized"), "x").code, "WASMLET_ERR_KUBE_UNAUTHORIZED");
    assert.equal(apiError(status(404, "gone"), "x").code, "WASMLET_ERR_KUBE_NOT_FOUND");
    assert.equal(apiError(status(409, "conflict"), "x").code, "WASMLET_ERR_KUBE_CONFLICT");
    assert.equal(apiError(status(422, "invalid"), "x").code, "WASMLET_ERR_KUBE_INVALID");
    assert.equal(apiError(status(503, "later"), "x").code, "WASMLET_ERR_KUBE_API");
  });

  it("recognises network failures through their causes", () => {
    const refused = new TypeError("fetch failed", {
      cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }),
    });
    assert.ok(isNetworkError(refused));
    const wrapped = apiError(refused, "reading node n1");
    assert.equal(wrapped.code, "WASMLET_ERR_KUBE_UNREACHABLE");
    assert.match(
      wrapped.message,
      /reading node n1: the API server did not answer: fetch failed: connect ECONNREFUSED/,
    );
    assert.ok(isNetworkError(new DOMException("timed out", "TimeoutError")));
    assert.ok(!isNetworkError(new TypeError("x is not a function")));
    assert.equal(
      apiError(new TypeError("x is not a function"), "doing").code,
      "WASMLET_ERR_KUBE_API",
    );
  });

  it("answers the questions callers ask", () => {
    assert.ok(isNotFound(status(404, "")));
    assert.ok(isConflict(apiError(status(409, ""), "x")));
    assert.equal(statusCode(apiError(status(429, ""), "x")), 429);
    assert.ok(isTransient(status(500, "")));
    assert.ok(isTransient(status(429, "")));
    assert.ok(isTransient(apiError(new TypeError("fetch failed"), "x")));
    assert.ok(isTransient(apiError(status(503, ""), "x")));
    assert.ok(!isTransient(status(403, "")));
    assert.ok(!isTransient(status(401, "")));
    assert.ok(!isTransient(nodeError("WASMLET_ERR_NODE_NAME_TAKEN", "taken")));
    assert.ok(!isTransient(new TypeError("x is not a function")));
  });
});
