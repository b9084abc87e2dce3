import assert from "node:assert/strict";
import { test } from "node:test";
import { outboundRefusal } from "../../../src/runtime/outbound-policy.ts";

const policy = {
  podLoopback: ["127.100.0.0/16", "127.0.0.9"],
  hostAddresses: ["192.0.2.10", "fd00::10"],
  wasmletPorts: [10250, 10248],
};

test("guests reach pods and the network, never this host's own services", () => {
  const allowed: [string, number][] = [
    ["127.100.3.4", 8080], // a pod in the loopback pod CIDR
    ["127.0.0.9", 8080], // the node's loopback address in node mode: pods' ports
    ["192.0.2.10", 8080], // a pod's port on the node's address
    ["198.51.100.7", 443], // elsewhere
    ["::ffff:198.51.100.7", 443],
  ];
  for (const [ip, port] of allowed) assert.equal(outboundRefusal(policy, ip, port), undefined, ip);
  const refused: [string, number, RegExp][] = [
    ["127.0.0.1", 6443, /loopback address of this host/], // the API server of a dev cluster
    ["::1", 22, /loopback/],
    ["::ffff:127.0.0.1", 2379, /loopback/],
    ["0.0.0.0", 80, /means this host/],
    ["::", 80, /means this host/],
    ["192.0.2.10", 10250, /wasmlet's own port/],
    ["127.0.0.9", 10250, /wasmlet's own port/],
    ["fd00::10", 10248, /wasmlet's own port/],
  ];
  for (const [ip, port, why] of refused)
    assert.match(outboundRefusal(policy, ip, port) ?? "", why, ip);
});
