// The /containerLogs handler in a plain fastify app (no TLS, no authn/authz: those are the
// KubeletServer's and tested with it), with the server's error mapping, over real HTTP.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import Fastify, { type FastifyInstance } from "fastify";
import { pino } from "pino";
import { formatRfc3339Nano } from "../../../src/logs/log-reader.ts";
import { CriLogWriter } from "../../../src/logs/log-writer.ts";
import {
  type ContainerLogTarget,
  containerLogsRoute,
  parseContainerLogQuery,
} from "../../../src/server/container-logs.ts";
import { httpFailure } from "../../../src/server/http-errors.ts";

const T0 = 1_700_000_000_000_000_000n;
const MS = 1_000_000n;
const SECOND = 1_000_000_000n;

interface Call {
  namespace: string;
  pod: string;
  container: string;
  previous: boolean;
}

describe("GET /containerLogs/:namespace/:pod/:container", () => {
  const root = mkdtempSync(join(tmpdir(), "wasmlet-container-logs-"));
  const calls: Call[] = [];
  /** Per container name, what resolve() answers. */
  const targets = new Map<string, ContainerLogTarget>();
  let app: FastifyInstance;
  let base: string;
  let nowNs = T0;

  /** A finished log: `line 0`… on stdout at T0+1ms…, `err` on stderr in between. */
  const donePath = join(root, "done", "0.log");
  const previousPath = join(root, "done", "prev.log");

  before(async () => {
    let t = T0;
    const writer = new CriLogWriter({ path: donePath, now: () => (t += MS) });
    writer.write("stdout", Buffer.from("line 0\n")); // t1
    writer.write("stderr", Buffer.from("err\n")); // t2
    writer.write("stdout", Buffer.from("line 1\nline 2\n")); // t3
    writer.close();
    const previous = new CriLogWriter({ path: previousPath, now: () => (t += MS) });
    previous.write("stdout", Buffer.from("from the previous instance\n"));
    previous.close();
    targets.set("done", { kind: "log", logPath: donePath, running: false });

    const route = containerLogsRoute({
      resolve: (namespace, pod, container, previous) => {
        calls.push({ namespace, pod, container, previous });
        if (pod === "nopod") return { kind: "pod-not-found" };
        if (container === "done" && previous)
          return { kind: "log", logPath: previousPath, running: false };
        return targets.get(container) ?? { kind: "container-not-found" };
      },
      now: () => nowNs,
    });
    app = Fastify();
    app.setErrorHandler((error, _request, reply) => {
      const failure = httpFailure(error);
      return reply.code(failure.status).type("text/plain; charset=utf-8").send(failure.message);
    });
    const log = pino({ level: "silent" });
    app.route({
      method: route.method,
      url: route.url,
      handler: (request, reply) =>
        route.handler(request, reply, {
          user: { username: "kube-apiserver", groups: [], via: "x509" },
          subresource: "proxy",
          log,
        }),
    });
    await app.listen({ host: "127.0.0.1", port: 0 });
    const address = app.server.address();
    assert.ok(address && typeof address === "object");
    base = `http://127.0.0.1:${address.port}`;
  });

  after(async () => {
    await app?.close();
    rmSync(root, { recursive: true, force: true });
  });

  async function get(
    path: string,
  ): Promise<{ status: number; type: string | undefined; body: string }> {
    const response = await app.inject({ method: "GET", url: path });
    return {
      status: response.statusCode,
      type: response.headers["content-type"] as string,
      body: response.body,
    };
  }

  it("serves the log as chunked text/plain, with the kubelet's options applied", async () => {
    const response = await fetch(`${base}/containerLogs/ns/p/done`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(response.headers.get("transfer-encoding"), "chunked");
    assert.equal(await response.text(), "line 0\nerr\nline 1\nline 2\n");
    assert.deepEqual(calls.at(-1), {
      namespace: "ns",
      pod: "p",
      container: "done",
      previous: false,
    });

    const ts = (n: bigint) => formatRfc3339Nano(T0 + n * MS);
    assert.equal(
      (await get("/containerLogs/ns/p/done?tailLines=2&timestamps=true")).body,
      `${ts(3n)} line 1\n${ts(3n)} line 2\n`,
    );
    assert.equal((await get("/containerLogs/ns/p/done?tail=1")).body, "line 2\n");
    assert.equal(
      (await get("/containerLogs/ns/p/done?tail=all&tailLines=1")).body,
      "line 0\nerr\nline 1\nline 2\n",
    );
    assert.equal((await get("/containerLogs/ns/p/done?limitBytes=9")).body, "line 0\ner");
    assert.equal((await get("/containerLogs/ns/p/done?stream=Stderr")).body, "err\n");
    assert.equal(
      (await get("/containerLogs/ns/p/done?stream=Stdout")).body,
      "line 0\nline 1\nline 2\n",
    );
    assert.equal(
      (await get("/containerLogs/ns/p/done?stream=All&tailLines=3")).body,
      "err\nline 1\nline 2\n",
    );
    assert.equal((await get("/containerLogs/ns/p/done?tailLines=0")).body, "");
    // sinceTime is RFC 3339, any fraction and offset; the bound is inclusive.
    const at2 = formatRfc3339Nano(T0 + 2n * MS);
    assert.equal(
      (await get(`/containerLogs/ns/p/done?sinceTime=${at2}`)).body,
      "err\nline 1\nline 2\n",
    );
    assert.equal(
      (await get("/containerLogs/ns/p/done?sinceTime=2023-11-15T00:13:20.0025%2B02:00")).body,
      "line 1\nline 2\n",
    );
    // sinceSeconds counts back from now.
    nowNs = T0 + 3n * MS + SECOND;
    assert.equal((await get("/containerLogs/ns/p/done?sinceSeconds=1")).body, "line 1\nline 2\n");
    nowNs = T0 + 3n * MS + SECOND + 1n;
    assert.equal((await get("/containerLogs/ns/p/done?sinceSeconds=1")).body, "");
  });

  it("decodes booleans as the API machinery does: only false and 0 are false", async () => {
    for (const value of ["true", "1", "yes", "", "banana"]) {
      const query = parseContainerLogQuery(new URLSearchParams(`timestamps=${value}`));
      assert.equal(query.timestamps, true, value);
    }
    for (const value of ["false", "FALSE", "0"]) {
      assert.equal(
        parseContainerLogQuery(new URLSearchParams(`follow=${value}`)).follow,
        false,
        value,
      );
    }
    assert.equal(parseContainerLogQuery(new URLSearchParams("")).previous, false);
    assert.equal(
      parseContainerLogQuery(new URLSearchParams("tailLines=5&tailLines=x")).tailLines,
      5,
    );
    assert.equal(parseContainerLogQuery(new URLSearchParams("")).stream, "All");
  });

  it("refuses what the kubelet refuses, before looking up the pod", async () => {
    const cases: [string, RegExp][] = [
      ["tailLines=-1", /tailLines: Invalid value: -1: must be greater than or equal to 0/],
      ["limitBytes=0", /limitBytes: Invalid value: 0: must be greater than 0/],
      ["sinceSeconds=0", /sinceSeconds: Invalid value: 0: must be greater than 0/],
      [
        "sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z",
        /at most one of `sinceTime` or `sinceSeconds`/,
      ],
      ["sinceSeconds=5&sinceTime=", /at most one of `sinceTime` or `sinceSeconds`/],
      ["stream=Stdout&tailLines=1", /`tailLines` and specific `stream` are mutually exclusive/],
      ["stream=stdout", /stream: Unsupported value: "stdout"/],
      ["stream=", /stream: Unsupported value: ""/],
      ["tailLines=abc", /Unable to decode query: tailLines/],
      ["tailLines=", /Unable to decode query: tailLines/],
      ["tail=ten", /Unable to decode query: tailLines/],
      ["limitBytes=1.5", /Unable to decode query: limitBytes/],
      ["limitBytes=9223372036854775808", /Unable to decode query: limitBytes: value out of range/],
      ["sinceSeconds=%2B", /Unable to decode query: sinceSeconds/],
      ["sinceTime=yesterday", /Unable to decode query: sinceTime/],
      ["sinceTime=2024-01-01", /Unable to decode query: sinceTime/],
    ];
    const before = calls.length;
    for (const [query, message] of cases) {
      const answer = await get(`/containerLogs/ns/p/done?${query}`);
      assert.equal(answer.status, 400, query);
      assert.equal(answer.type, "text/plain; charset=utf-8");
      assert.match(answer.body, message, query);
    }
    assert.equal(calls.length, before, "no lookup for a refused request");
    // Within range and well-formed: accepted.
    assert.equal(
      (await get("/containerLogs/ns/p/done?limitBytes=9223372036854775807&tailLines=%2B1")).body,
      "line 2\n",
    );
  });

  it("answers 404 for an unknown pod or container and 400 when there is no log to show", async () => {
    assert.deepEqual(await get("/containerLogs/ns/nopod/c"), {
      status: 404,
      type: "text/plain; charset=utf-8",
      body: 'pod "nopod" does not exist',
    });
    assert.deepEqual(
      (await get("/containerLogs/ns/p/nosuch")).body,
      'container "nosuch" not found in pod "p"',
    );
    assert.equal((await get("/containerLogs/ns/p/nosuch")).status, 404);

    targets.set("fresh", { kind: "no-previous" });
    const previous = await get("/containerLogs/ns/p/fresh?previous=true");
    assert.equal(previous.status, 400);
    assert.equal(previous.body, 'previous terminated container "fresh" in pod "p" not found');
    assert.deepEqual(calls.at(-1), {
      namespace: "ns",
      pod: "p",
      container: "fresh",
      previous: true,
    });

    targets.set("pulling", { kind: "waiting", reason: "ErrImagePull" });
    targets.set("creating", { kind: "waiting", reason: "ContainerCreating" });
    assert.deepEqual(await get("/containerLogs/ns/p/pulling"), {
      status: 400,
      type: "text/plain; charset=utf-8",
      body: `container "pulling" in pod "p" is waiting to start: image can't be pulled`,
    });
    assert.equal(
      (await get("/containerLogs/ns/p/creating")).body,
      `container "creating" in pod "p" is waiting to start: ContainerCreating`,
    );
    // Empty path segments, as the kubelet words them.
    assert.equal((await get("/containerLogs/ns//c")).body, "Missing podID.");
    assert.equal((await get("/containerLogs/ns/p/")).body, "Missing container name.");
    assert.equal((await get("/containerLogs//p/c")).status, 400);
    // previous=true reads the instance resolve() gives for it.
    assert.equal(
      (await get("/containerLogs/ns/p/done?previous=1")).body,
      "from the previous instance\n",
    );
  });

  it("follows a running container: lines arrive as written, the response ends after the exit", async () => {
    const path = join(root, "running", "0.log");
    const writer = new CriLogWriter({ path });
    writer.write("stdout", Buffer.from("before\n"));
    let exit!: () => void;
    const exited = new Promise<void>((resolve) => {
      exit = resolve;
    });
    targets.set("running", { kind: "log", logPath: path, running: true, exited });

    const response = await open(`${base}/containerLogs/ns/p/running?follow=true`);
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers["transfer-encoding"], "chunked");
    const reader = chunks(response);
    assert.equal(await reader.next(), "before\n");
    const latencies: number[] = [];
    for (let i = 0; i < 3; i++) {
      const next = reader.next();
      await sleep(30);
      const start = performance.now();
      writer.write("stdout", Buffer.from(`live ${i}\n`));
      assert.equal(await next, `live ${i}\n`);
      latencies.push(performance.now() - start);
    }
    assert.ok(Math.max(...latencies) < 100, `latencies ${latencies.join(", ")} ms`);
    writer.write("stderr", Buffer.from("last words"));
    writer.close();
    exit();
    assert.equal(await reader.rest(), "last words\n");

    // A container that is not running: follow reads to the end and ends.
    targets.set("stopped", { kind: "log", logPath: path, running: false });
    const stopped = await open(`${base}/containerLogs/ns/p/stopped?follow=true&tailLines=1`);
    assert.equal(await chunks(stopped).rest(), "last words\n");
  });

  it("stops reading when the client goes away", async () => {
    const path = join(root, "forever", "0.log");
    const writer = new CriLogWriter({ path });
    writer.write("stdout", Buffer.from("hello\n"));
    writer.close(); // the container runs on, silent; only the follower has the file open
    targets.set("forever", { kind: "log", logPath: path, running: true });
    const response = await open(`${base}/containerLogs/ns/p/forever?follow=true`);
    assert.equal(await chunks(response).next(), "hello\n");
    assert.ok(openFilesUnder(dirname(path)).length > 0, "the follower holds the log open");
    response.destroy();
    const deadline = Date.now() + 2000;
    while (openFilesUnder(dirname(path)).length > 0 && Date.now() < deadline) await sleep(10);
    assert.deepEqual(openFilesUnder(dirname(path)), []);
  });
});

function open(url: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    httpRequest(url, resolve).on("error", reject).end();
  });
}

/** Reads a streamed response chunk by chunk. */
function chunks(response: IncomingMessage): { next(): Promise<string>; rest(): Promise<string> } {
  const iterator = response[Symbol.asyncIterator]();
  return {
    async next() {
      const { value, done } = await iterator.next();
      assert.ok(!done, "the response ended");
      return (value as Buffer).toString();
    },
    async rest() {
      let text = "";
      for (;;) {
        const { value, done } = await iterator.next();
        if (done) return text;
        text += (value as Buffer).toString();
      }
    },
  };
}

/** Paths of files this process holds open under `dir`. */
function openFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir)) out.push(target);
    } catch {}
  }
  return out;
}
