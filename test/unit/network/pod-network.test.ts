import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { parseCidr, parsePodCidr } from "../../../src/network/cidr.ts";
import { ensureLocalRoute } from "../../../src/network/local-route.ts";
import { PodNetwork } from "../../../src/network/pod-network.ts";

function pod(
  name: string,
  ports: { containerPort: number; protocol?: string; hostPort?: number; name?: string }[],
  podIP?: string,
): V1Pod {
  return {
    metadata: { name, namespace: "default", uid: `uid-${name}` },
    spec: { containers: [{ name: "app", image: "x", ports }] },
    ...(podIP ? { status: { podIP } } : {}),
  };
}

test("node mode: every pod gets the node's IP, and a port serves one pod at a time", () => {
  const network = new PodNetwork({ mode: "node", nodeIP: "192.0.2.10" });
  const first = network.admit(pod("a", [{ containerPort: 8080 }]));
  assert.deepEqual(first, { admitted: true, podIPs: ["192.0.2.10"], warnings: [] });
  const second = network.admit(pod("b", [{ containerPort: 8080 }]));
  assert.equal(second.admitted, false);
  assert.equal(second.admitted === false && second.reason, "NodePorts");
  assert.match(
    second.admitted === false ? second.message : "",
    /port 8080\/TCP on 192\.0\.2\.10 is already used by pod default\/a/,
  );
  assert.equal(network.admit(pod("c", [{ containerPort: 9090 }])).admitted, true);
  network.release("uid-a");
  assert.equal(network.admit(pod("b", [{ containerPort: 8080 }])).admitted, true);
  // Admitting the same pod again (wasmlet restarts its lifecycle) is no conflict with itself.
  assert.equal(network.admit(pod("b", [{ containerPort: 8080 }])).admitted, true);
});

test("pod-cidr mode: addresses from the block, so two pods both serve 8080", () => {
  const network = new PodNetwork({
    mode: "pod-cidr",
    nodeIP: "127.0.0.1",
    cidr: parseCidr("127.77.0.0/29"),
  });
  const a = network.admit(pod("a", [{ containerPort: 8080, name: "http" }]));
  const b = network.admit(pod("b", [{ containerPort: 8080 }]));
  assert.deepEqual(a.admitted && a.podIPs, ["127.77.0.2"]);
  assert.deepEqual(b.admitted && b.podIPs, ["127.77.0.3"]);
  assert.deepEqual(
    network.listenPorts("uid-a", { name: "app", ports: [{ containerPort: 8080, name: "http" }] }),
    [{ name: "http", host: "127.77.0.2", port: 8080 }],
  );
  // /29: 8 addresses, minus network, broadcast and the first host = 5.
  for (const name of ["c", "d", "e"]) assert.equal(network.admit(pod(name, [])).admitted, true);
  const full = network.admit(pod("f", []));
  assert.equal(full.admitted === false && full.reason, "OutOfPodAddresses");
  network.release("uid-c");
  const again = network.admit(pod("f", []));
  assert.deepEqual(again.admitted && again.podIPs, ["127.77.0.4"]);
});

test("pod-cidr mode keeps the address a pod already has (wasmlet restarted)", () => {
  const network = new PodNetwork({
    mode: "pod-cidr",
    nodeIP: "127.0.0.1",
    cidr: parseCidr("127.77.0.0/24"),
  });
  const kept = network.admit(pod("a", [], "127.77.0.42"));
  assert.deepEqual(kept.admitted && kept.podIPs, ["127.77.0.42"]);
  const elsewhere = network.admit(pod("b", [], "10.1.0.5"));
  assert.deepEqual(elsewhere.admitted && elsewhere.podIPs, ["127.77.0.2"]);
});

test("UDP ports are admitted with a warning; hostPort mapping and duplicate ports are refused", () => {
  const network = new PodNetwork({ mode: "node", nodeIP: "192.0.2.10" });
  const udp = network.admit(pod("a", [{ containerPort: 53, protocol: "UDP" }]));
  assert.equal(udp.admitted && udp.warnings[0]?.reason, "PortNotServed");
  const mapped = network.admit(pod("b", [{ containerPort: 8080, hostPort: 80 }]));
  assert.equal(mapped.admitted === false && mapped.reason, "HostPortNotSupported");
  const same = network.admit(pod("c", [{ containerPort: 8080, hostPort: 8080 }]));
  assert.equal(same.admitted, true);
  const twice = network.admit(pod("d", [{ containerPort: 7000 }, { containerPort: 7000 }]));
  assert.equal(twice.admitted === false && twice.reason, "PortConflict");
});

test("CIDRs are checked: prefix, host bits, family", () => {
  assert.throws(
    () => parseCidr("10.0.0.1/24"),
    /host bits set: the block starts at 10\.0\.0\.0\/24/,
  );
  assert.throws(() => parsePodCidr("10.0.0.0/30"), /too small for pods/);
  assert.throws(() => parseCidr("fd00::/64"), /not an IPv4 CIDR/);
  assert.equal(parseCidr("10.244.1.0/24").size, 256);
});

test("a CIDR that is not local gets its route added, or the exact command when that is refused", async () => {
  const cidr = parseCidr("198.51.100.0/24");
  const ran: string[] = [];
  let local = false;
  const added = await ensureLocalRoute(
    cidr,
    async (command, args) => {
      ran.push([command, ...args].join(" "));
      local = true;
    },
    async () => local,
  );
  assert.deepEqual(added, { local: true, added: true });
  assert.deepEqual(ran, ["ip route add local 198.51.100.0/24 dev lo"]);
  const refused = await ensureLocalRoute(
    cidr,
    async () => {
      throw Object.assign(new Error("exit 2"), {
        stderr: "RTNETLINK answers: Operation not permitted\n",
      });
    },
    async () => false,
  );
  assert.deepEqual(refused, {
    local: false,
    command: "ip route add local 198.51.100.0/24 dev lo",
    reason: "RTNETLINK answers: Operation not permitted",
  });
  // Loopback blocks are local already: nothing is run.
  assert.deepEqual(
    await ensureLocalRoute(parseCidr("127.77.0.0/24"), async () => assert.fail("ran")),
    {
      local: true,
      added: false,
    },
  );
});
