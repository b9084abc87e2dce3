import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { pino } from "pino";
import { KubeClient } from "../../../src/kube/client.ts";
import {
  assertNameFree,
  type HolderInfo,
  LeaseHeartbeat,
  newHolder,
} from "../../../src/node/lease.ts";
import { FakeApiServer, json } from "../kube/fake-api-server.ts";

const logger = pino({ level: "silent" });
const PATH = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
const config = { nodeName: "n1", nodeLeaseDurationSeconds: 40, nodeLeaseRenewIntervalMs: 1000 };

type Lease = {
  metadata: {
    name: string;
    resourceVersion: string;
    annotations?: Record<string, string>;
    ownerReferences?: unknown[];
  };
  spec: {
    holderIdentity?: string;
    renewTime?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    leaseTransitions?: number;
  };
};

describe("node lease", () => {
  const api = new FakeApiServer();
  let lease: Lease | undefined;
  let version = 1;
  /** Makes every read see a newer renewTime, as if another live holder renewed it. */
  let renewedElsewhere = false;
  let kube: KubeClient;

  before(async () => {
    await api.start();
    kube = new KubeClient(api.kubeConfig());
    api.handler = (request, response) => {
      if (request.path === `${PATH}/n1` && request.method === "GET") {
        if (!lease) return json(response, 404, { kind: "Status", code: 404, message: "not found" });
        if (renewedElsewhere) lease.spec.renewTime = new Date().toISOString();
        return json(response, 200, {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          ...lease,
        });
      }
      if (request.path === PATH && request.method === "POST") {
        if (lease) return json(response, 409, { kind: "Status", code: 409, message: "exists" });
        lease = JSON.parse(request.body) as Lease;
        lease.metadata.resourceVersion = String(++version);
        return json(response, 201, lease);
      }
      if (request.path === `${PATH}/n1` && request.method === "PUT") {
        const body = JSON.parse(request.body) as Lease;
        if (!lease || body.metadata.resourceVersion !== lease.metadata.resourceVersion) {
          return json(response, 409, {
            kind: "Status",
            code: 409,
            message: "the object has been modified",
          });
        }
        lease = body;
        lease.metadata.resourceVersion = String(++version);
        return json(response, 200, lease);
      }
      return json(response, 404, {});
    };
  });
  after(() => api.stop());
  beforeEach(() => {
    lease = undefined;
    renewedElsewhere = false;
  });

  const holding = (
    holder: Partial<HolderInfo> | undefined,
    ageMs: number,
    identity = "n1",
  ): Lease => ({
    metadata: {
      name: "n1",
      resourceVersion: String(++version),
      annotations: holder
        ? {
            "wasmlet.io/holder": JSON.stringify({
              instance: "other",
              bootID: "boot-1",
              pid: 1,
              ...holder,
            }),
          }
        : {},
    },
    spec: {
      holderIdentity: identity,
      leaseDurationSeconds: 40,
      renewTime: new Date(Date.now() - ageMs).toISOString(),
    },
  });
  const me: HolderInfo = { instance: "mine", bootID: "boot-1", pid: process.pid };
  const check = (observeMs = 300) =>
    assertNameFree({ kube, config, holder: me, logger, observeMs, pollMs: 50 });
  const isTaken = (pattern: RegExp) => (error: Error & { code?: string }) => {
    assert.equal(error.code, "WASMLET_ERR_NODE_NAME_TAKEN");
    assert.match(error.message, pattern);
    return true;
  };

  it("lets a node take a free or expired name", async () => {
    await check();
    lease = holding({ pid: process.ppid }, 60_000);
    await check();
  });

  it("refuses a name whose fresh Lease has another holder identity", async () => {
    lease = holding(undefined, 1000, "someone-else");
    await assert.rejects(check(), isTaken(/held by someone-else/));
  });

  it("on the same host, refuses a live holder process and takes over from a dead one", async () => {
    lease = holding({ pid: process.ppid }, 1000);
    await assert.rejects(check(), isTaken(new RegExp(`process ${process.ppid} on this host`)));
    lease = holding({ pid: 2 ** 22 + 7 }, 1000);
    await check();
    lease = holding({ pid: process.pid }, 1000);
    await check();
  });

  it("from elsewhere, waits for a renewal: renewing means taken, silence means gone", async () => {
    lease = holding({ bootID: "other-boot" }, 1000);
    const started = Date.now();
    await check(300);
    assert.ok(Date.now() - started >= 250, "watched the lease before taking it");
    lease = holding({ bootID: "other-boot" }, 1000);
    renewedElsewhere = true;
    await assert.rejects(check(2000), isTaken(/being renewed by another holder/));
  });

  it("creates the Lease owned by the Node, renews it, and stops when another instance takes it", async () => {
    const heartbeat = new LeaseHeartbeat({ kube, config, holder: me, logger });
    await heartbeat.renew();
    heartbeat.setNodeUid("uid-1");
    await heartbeat.renew();
    assert.equal(lease?.spec.holderIdentity, "n1");
    assert.equal(lease?.spec.leaseDurationSeconds, 40);
    assert.match(lease?.spec.renewTime ?? "", /\.\d{6}Z$/);
    assert.deepEqual(lease?.metadata.ownerReferences, [
      { apiVersion: "v1", kind: "Node", name: "n1", uid: "uid-1" },
    ]);
    assert.deepEqual(JSON.parse(lease?.metadata.annotations?.["wasmlet.io/holder"] ?? "{}"), me);
    assert.equal(heartbeat.problem(), undefined);

    // Another wasmlet overwrote it: the next renewal conflicts, re-reads, and gives up the name.
    lease = holding({ instance: "intruder", bootID: "boot-2", pid: 42 }, 0);
    await assert.rejects(
      heartbeat.renew(),
      isTaken(/another wasmlet \(pid 42, instance intruder\) took over/),
    );
  });

  it("recreates a deleted Lease", async () => {
    const heartbeat = new LeaseHeartbeat({ kube, config, holder: newHolder("boot-1"), logger });
    await heartbeat.renew();
    lease = undefined;
    await heartbeat.renew();
    assert.equal((lease as Lease | undefined)?.spec.holderIdentity, "n1");
  });
});
