import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import { after, before, describe, it } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { pino } from "pino";
import { KubeClient } from "../../../src/kube/client.ts";
import { ResilientWatch } from "../../../src/kube/watch.ts";
import { until } from "../../support/until.ts";
import { FakeApiServer, json } from "./fake-api-server.ts";

const logger = pino({ level: "silent" });

function pod(name: string, rv: number, phase = "Pending"): V1Pod & Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: "ns",
      resourceVersion: String(rv),
      creationTimestamp: "2026-01-01T00:00:00Z" as unknown as Date,
    },
    spec: { nodeName: "n1", containers: [] },
    status: { phase },
  };
}

describe("ResilientWatch", () => {
  const api = new FakeApiServer();
  before(() => api.start());
  after(() => api.stop());

  it("lists, watches, resumes after a dropped connection, relists on 410 and recovers from errors", async (t) => {
    let pods = [pod("a", 10), pod("b", 11)];
    let listRv = 11;
    let lists = 0;
    const watches: Array<{ rv: string | null; response: ServerResponse }> = [];
    let failNextWatch = 0;
    api.handler = (request, response) => {
      if (request.path !== "/api/v1/pods") return json(response, 404, {});
      assert.equal(request.query.get("fieldSelector"), "spec.nodeName=n1");
      if (request.query.get("watch") !== "true") {
        lists++;
        return json(response, 200, {
          kind: "PodList",
          apiVersion: "v1",
          metadata: { resourceVersion: String(listRv) },
          items: pods,
        });
      }
      if (failNextWatch > 0) {
        failNextWatch--;
        return json(response, 500, { kind: "Status", code: 500, message: "etcd is sad" });
      }
      response.writeHead(200, { "content-type": "application/json" });
      response.flushHeaders();
      watches.push({ rv: request.query.get("resourceVersion"), response });
    };
    const send = (type: string, object: unknown) =>
      watches.at(-1)?.response.write(`${JSON.stringify({ type, object })}\n`);

    const seen: string[] = [];
    let syncs = 0;
    let lastModified: V1Pod | undefined;
    const kube = new KubeClient(api.kubeConfig());
    const watch = new ResilientWatch<V1Pod>({
      kubeConfig: kube.kubeConfig,
      path: "/api/v1/pods",
      typeName: "V1Pod",
      fieldSelector: "spec.nodeName=n1",
      list: () => kube.core.listPodForAllNamespaces({ fieldSelector: "spec.nodeName=n1" }),
      logger,
      backoff: { initialMs: 20, maxMs: 50 },
      handler: {
        added: (p) => seen.push(`added ${p.metadata?.name}`),
        modified: (p) => {
          lastModified = p;
          seen.push(`modified ${p.metadata?.name} ${p.status?.phase}`);
        },
        deleted: (p) => seen.push(`deleted ${p.metadata?.name}`),
        synced: () => syncs++,
      },
    });
    t.after(() => watch.close());
    watch.start();
    await watch.synced;
    assert.deepEqual(seen.splice(0), ["added a", "added b"]);
    await until(() => watches.length === 1, "the first watch");
    assert.equal(watches[0]?.rv, "11", "the watch starts at the list's resourceVersion");

    send("MODIFIED", pod("a", 12, "Running"));
    send("BOOKMARK", { kind: "Pod", apiVersion: "v1", metadata: { resourceVersion: "13" } });
    await until(() => seen.length === 1, "the modification");
    assert.deepEqual(seen.splice(0), ["modified a Running"]);
    assert.ok(
      lastModified?.metadata?.creationTimestamp instanceof Date,
      "watched objects decode like listed ones",
    );
    assert.equal(watch.get("ns", "a")?.status?.phase, "Running");

    // The connection drops: resume from the last version seen (the bookmark's), no relist.
    watches[0]?.response.end();
    await until(() => watches.length === 2, "the second watch");
    assert.equal(watches[1]?.rv, "13");
    assert.equal(lists, 1);

    // The version is too old: relist, and learn of the deletion that happened meanwhile.
    pods = [pod("a", 20, "Running")];
    listRv = 20;
    send("ERROR", {
      kind: "Status",
      apiVersion: "v1",
      status: "Failure",
      code: 410,
      reason: "Expired",
      message: "too old resource version",
    });
    await until(() => lists === 2 && watches.length === 3, "the relist");
    assert.deepEqual(seen.splice(0), ["deleted b", "modified a Running"]);
    assert.equal(watches[2]?.rv, "20");
    assert.equal(syncs, 2);

    // The API server fails for a while: back off and come back.
    failNextWatch = 2;
    watches[2]?.response.end();
    await until(() => watches.length === 4, "recovery after errors");
    assert.ok(watch.restarts >= 3, `restarts counted (${watch.restarts})`);
    send("ADDED", pod("c", 30));
    await until(() => seen.length === 1, "an event after recovery");
    assert.deepEqual(seen.splice(0), ["added c"]);
    assert.deepEqual(
      watch
        .list()
        .map((p) => p.metadata?.name)
        .sort(),
      ["a", "c"],
    );

    const closing = Date.now();
    await watch.close();
    assert.ok(Date.now() - closing < 2000, "close is prompt");
    await watch.close();
  });

  it("logs a handler that throws and goes on, in a list and in the watch", async (t) => {
    const watches: ServerResponse[] = [];
    let lists = 0;
    api.handler = (request, response) => {
      if (request.query.get("watch") !== "true") {
        lists++;
        return json(response, 200, {
          kind: "PodList",
          apiVersion: "v1",
          metadata: { resourceVersion: "11" },
          items: [pod("a", 10), pod("b", 11)],
        });
      }
      response.writeHead(200, { "content-type": "application/json" });
      response.flushHeaders();
      watches.push(response);
    };
    const send = (type: string, object: unknown) =>
      watches.at(-1)?.write(`${JSON.stringify({ type, object })}\n`);
    const logged: Array<{ event?: string; object?: string; msg?: string; err?: unknown }> = [];
    const capture = pino(
      { level: "error" },
      { write: (line: string) => logged.push(JSON.parse(line)) },
    );
    const seen: string[] = [];
    let syncs = 0;
    const kube = new KubeClient(api.kubeConfig());
    const watch = new ResilientWatch<V1Pod>({
      kubeConfig: kube.kubeConfig,
      path: "/api/v1/pods",
      typeName: "V1Pod",
      list: () => kube.core.listPodForAllNamespaces(),
      logger: capture,
      backoff: { initialMs: 20, maxMs: 50 },
      handler: {
        added: (p) => {
          if (p.metadata?.name === "a") throw new Error("added a: a bug in the handler");
          seen.push(`added ${p.metadata?.name}`);
        },
        modified: (p) => {
          if (p.metadata?.name === "b") throw new Error("modified b: a bug in the handler");
          seen.push(`modified ${p.metadata?.name}`);
        },
        deleted: async (p) => {
          throw new Error(`deleted ${p.metadata?.name}: a bug in an async handler`);
        },
        synced: () => syncs++,
      },
    });
    t.after(() => watch.close());
    watch.start();
    await watch.synced;
    assert.deepEqual(seen.splice(0), ["added b"], "the list goes on past the handler that threw");
    assert.equal(syncs, 1);
    assert.equal(lists, 1, "a throwing handler does not fail the list");
    await until(() => watches.length === 1, "the watch");

    send("MODIFIED", pod("b", 12, "Running"));
    send("DELETED", pod("a", 13));
    send("ADDED", pod("c", 14));
    await until(() => seen.length === 1, "the events after those that failed");
    assert.deepEqual(seen.splice(0), ["added c"]);
    assert.deepEqual(
      logged.map((entry) => [
        entry.event,
        entry.object,
        (entry.err as { message?: string }).message,
      ]),
      [
        ["ADDED", "ns/a", "added a: a bug in the handler"],
        ["MODIFIED", "ns/b", "modified b: a bug in the handler"],
        ["DELETED", "ns/a", "deleted a: a bug in an async handler"],
      ],
    );
    assert.equal(watch.restarts, 0);
    assert.equal(watch.get("ns", "b")?.status?.phase, "Running", "the cache holds the event");
  });
});
