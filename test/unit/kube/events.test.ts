import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { KubeClient } from "../../../src/kube/client.ts";
import { EventRecorder } from "../../../src/kube/events.ts";
import { FakeApiServer, json } from "./fake-api-server.ts";

describe("EventRecorder", () => {
  const api = new FakeApiServer();
  before(() => api.start());
  after(() => api.stop());

  it("creates events.k8s.io/v1 events and counts repeats as a series", async () => {
    let failCreate = false;
    api.handler = (request, response) => {
      if (request.method === "POST" && failCreate)
        return json(response, 403, { kind: "Status", code: 403, message: "no" });
      if (request.method === "POST") return json(response, 201, JSON.parse(request.body));
      if (request.method === "PATCH")
        return json(response, 200, {
          kind: "Event",
          apiVersion: "events.k8s.io/v1",
          metadata: { name: "x" },
        });
      return json(response, 404, {});
    };
    const recorder = new EventRecorder({
      kube: new KubeClient(api.kubeConfig()),
      nodeName: "n1",
      logger: pino({ level: "silent" }),
    });
    const pod = { kind: "Pod", name: "p1", namespace: "ns1", uid: "u-1" };
    recorder.warning(pod, "BackOff", "Back-off restarting failed container");
    await recorder.flush();
    recorder.warning(pod, "BackOff", "Back-off restarting failed container");
    recorder.normal({ kind: "Node", name: "n1", uid: "n-uid" }, "Starting", "Starting wasmlet.");
    await recorder.flush();

    const posts = api.requests.filter((r) => r.method === "POST");
    assert.equal(posts.length, 2);
    assert.equal(posts[0]?.path, "/apis/events.k8s.io/v1/namespaces/ns1/events");
    const created = JSON.parse(posts[0]?.body ?? "{}");
    assert.equal(created.reason, "BackOff");
    assert.equal(created.type, "Warning");
    assert.equal(created.action, "BackOff");
    assert.equal(created.reportingController, "wasmlet");
    assert.equal(created.reportingInstance, "n1");
    assert.deepEqual(created.regarding, {
      kind: "Pod",
      name: "p1",
      namespace: "ns1",
      uid: "u-1",
      apiVersion: "v1",
    });
    assert.match(
      created.eventTime,
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/,
      "MicroTime with six fractional digits",
    );
    assert.match(created.metadata.name, /^p1\.[0-9a-f]+$/);
    assert.equal(
      posts[1]?.path,
      "/apis/events.k8s.io/v1/namespaces/default/events",
      "node events go to default",
    );

    const patches = api.requests.filter((r) => r.method === "PATCH");
    assert.equal(patches.length, 1);
    assert.equal(
      patches[0]?.path,
      `/apis/events.k8s.io/v1/namespaces/ns1/events/${created.metadata.name}`,
    );
    assert.equal(patches[0]?.headers["content-type"], "application/merge-patch+json");
    assert.equal(JSON.parse(patches[0]?.body ?? "{}").series.count, 2);

    // A failed write is swallowed (logged), never thrown at the caller.
    failCreate = true;
    recorder.normal(pod, "Pulled", "done");
    await recorder.flush();
    await recorder.close();
    recorder.normal(pod, "Ignored", "after close");
    await recorder.flush();
    assert.equal(api.requests.filter((r) => r.method === "POST").length, 3);
  });

  it("reads its clock for event times and the series window", async () => {
    api.requests.length = 0;
    api.handler = (request, response) => json(response, 201, JSON.parse(request.body || "{}"));
    let now = Date.parse("2030-01-02T03:04:05.123Z");
    const recorder = new EventRecorder({
      kube: new KubeClient(api.kubeConfig()),
      nodeName: "n1",
      logger: pino({ level: "silent" }),
      seriesWindowMs: 60_000,
      now: () => new Date(now),
    });
    const pod = { kind: "Pod", name: "p2", namespace: "ns1", uid: "u-2" };
    recorder.warning(pod, "BackOff", "again");
    await recorder.flush();
    now += 60_000; // the window has passed: a new event, not a series
    recorder.warning(pod, "BackOff", "again");
    await recorder.flush();
    const posts = api.requests.filter((r) => r.method === "POST");
    assert.deepEqual(
      posts.map((r) => JSON.parse(r.body).eventTime),
      ["2030-01-02T03:04:05.123000Z", "2030-01-02T03:05:05.123000Z"],
    );
    assert.equal(api.requests.filter((r) => r.method === "PATCH").length, 0);
    await recorder.close();
  });

  it("forgets the series of an object that is gone, and remembers a bounded number", async () => {
    api.requests.length = 0;
    api.handler = (request, response) => {
      if (request.method === "POST") return json(response, 201, JSON.parse(request.body));
      return json(response, 200, { kind: "Event", apiVersion: "events.k8s.io/v1", metadata: {} });
    };
    let now = Date.parse("2030-01-02T03:04:05.123Z");
    const recorder = new EventRecorder({
      kube: new KubeClient(api.kubeConfig()),
      nodeName: "n1",
      logger: pino({ level: "silent" }),
      now: () => new Date(now),
      maxSeries: 50,
    });
    // Pods come and go (churn): each leaves its events behind, and is forgotten when gone.
    for (let i = 0; i < 20; i++) {
      const pod = { kind: "Pod", name: `p${i}`, namespace: "ns1", uid: `u-${i}` };
      for (const reason of ["Pulled", "Created", "Started"])
        recorder.normal(pod, reason, `${reason} main`);
      recorder.normal(pod, "Killing", "Stopping main");
      void recorder.forget(pod.uid); // before the Killing event is written: kept until it is
    }
    await recorder.flush();
    await recorder.forget("u-none");
    assert.equal(recorder.seriesCount, 0, "no series of a forgotten pod is remembered");
    // A forgotten object's repeat is a new event, not a series.
    const gone = { kind: "Pod", name: "p0", namespace: "ns1", uid: "u-0" };
    recorder.normal(gone, "Pulled", "Pulled main");
    await recorder.flush();
    assert.equal(api.requests.filter((r) => r.method === "PATCH").length, 0);

    // Objects never forgotten (the node, pods that stay): at most maxSeries series...
    for (let i = 0; i < 200; i++)
      recorder.normal({ kind: "Node", name: "n1", uid: "n-uid" }, "Note", `note ${i}`);
    await recorder.flush();
    assert.equal(recorder.seriesCount, 50);
    // ...and none whose window has passed.
    now += 10 * 60_000;
    recorder.normal({ kind: "Node", name: "n1", uid: "n-uid" }, "Note", "later");
    await recorder.flush();
    assert.equal(recorder.seriesCount, 1);
    await recorder.close();
  });
});
