import assert from "node:assert/strict";
import { it } from "node:test";
import { RuntimeClassCache } from "../../../src/app/runtime-classes.ts";
import type { KubeClient } from "../../../src/kube/client.ts";

it("keeps RuntimeClass handlers, and their absence, for the TTL; other failures are not kept", async () => {
  let now = 1_000;
  const reads: string[] = [];
  let failure: Error | undefined;
  const kube = {
    nodeApi: {
      readRuntimeClass: async ({ name }: { name: string }) => {
        reads.push(name);
        if (failure) throw failure;
        if (name === "wasm") return { handler: "wasmlet" };
        throw Object.assign(new Error("not found"), { statusCode: 404 });
      },
    },
  } as unknown as KubeClient;
  const cache = new RuntimeClassCache(kube, { ttlMs: 30_000, now: () => now });

  assert.equal(await cache.handler("wasm"), "wasmlet");
  assert.equal(await cache.handler("gone"), undefined);
  now += 29_999;
  assert.equal(await cache.handler("wasm"), "wasmlet");
  assert.equal(await cache.handler("gone"), undefined);
  assert.deepEqual(reads.splice(0), ["wasm", "gone"], "read once within the TTL");

  now += 1;
  failure = Object.assign(new Error("etcd is sad"), { statusCode: 500 });
  await assert.rejects(cache.handler("wasm"), /etcd is sad/);
  failure = undefined;
  assert.equal(await cache.handler("wasm"), "wasmlet");
  assert.deepEqual(
    reads.splice(0),
    ["wasm", "wasm"],
    "read again after the TTL and after a failure",
  );
});
