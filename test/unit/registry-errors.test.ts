// Errors that reach a user come from the registry (src/errors.ts): a stable code beside the
// message, which stays the kubelet's (or Go's) words where those are what users search for.
import assert from "node:assert/strict";
import { it } from "node:test";
import { registeredErrors } from "../../src/errors.ts";
import { parseCidr, parsePodCidr } from "../../src/network/cidr.ts";
import { resolveContainerPort } from "../../src/pods/probe-target.ts";
import { HealthChecks } from "../../src/server/healthz.ts";

function thrown(call: () => unknown): { code?: string; message?: string } {
  try {
    call();
  } catch (error) {
    return error as { code?: string; message?: string };
  }
  assert.fail("nothing was thrown");
}

it("throws registered codes with unchanged messages", () => {
  const cases: Array<[() => unknown, string, string]> = [
    [
      () => parseCidr("10.0.0.0"),
      "WASMLET_ERR_CIDR",
      '"10.0.0.0" is not an IPv4 CIDR (e.g. 10.244.1.0/24)',
    ],
    [
      () => parseCidr("10.0.0.1/24"),
      "WASMLET_ERR_CIDR",
      '"10.0.0.1/24" has host bits set: the block starts at 10.0.0.0/24',
    ],
    [
      () => parsePodCidr("10.0.0.0/30"),
      "WASMLET_ERR_CIDR",
      '"10.0.0.0/30" is too small for pods: use a prefix of at most /29',
    ],
    [
      () => resolveContainerPort("http", { name: "app", ports: [{ containerPort: 80 }] }),
      "WASMLET_ERR_PROBE_PORT",
      'port "http" not found',
    ],
    [
      () => resolveContainerPort(70000, { name: "app" }),
      "WASMLET_ERR_PROBE_PORT",
      "invalid port number: 70000",
    ],
    [
      () => {
        const checks = new HealthChecks();
        checks.add("log", () => undefined);
        checks.add("log", () => undefined);
      },
      "WASMLET_ERR_HEALTH_CHECK",
      "health check log is registered twice",
    ],
  ];
  for (const [call, code, message] of cases) {
    const error = thrown(call);
    assert.deepEqual({ code: error.code, message: error.message }, { code, message });
    assert.ok(registeredErrors().has(code), `${code} is registered`);
  }
});
