// exec and attach end to end over real WebSockets: a `ws` client, a fastify server with
// @fastify/websocket wired as KubeletServer wires WebSocket routes (its mountRoute; no TLS or
// authn/authz, which are the KubeletServer's and tested with it), and the real Runtime running
// the test guests `cat` (stdin to stdout, "EOF after N bytes" on stderr, exit $EXIT_CODE) and
// `ticker` ("tick N" every $TICK_MS).
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { type ClientRequest, request as httpRequest, type IncomingMessage } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import fastifyWebsocket from "@fastify/websocket";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { pino } from "pino";
import {
  type Container,
  type ContainerSpec,
  type CpuUsage,
  compileModule,
  type ExecOptions,
  type ExitStatus,
  type Instance,
  type OutputListener,
  Runtime,
} from "../../../src/runtime/index.ts";
import type { ChannelSocket } from "../../../src/server/channel-protocol.ts";
import {
  attachRoutes,
  type ExecAttachTarget,
  execRoutes,
  LineDiscipline,
} from "../../../src/server/exec-attach.ts";
import { httpFailure } from "../../../src/server/http-errors.ts";
import { mountRoute, type RouteContext } from "../../../src/server/server.ts";
import { buildGuest, type GuestName } from "../../support/guests.ts";
import { until } from "../../support/until.ts";

/** The part of the `ws` client these tests use (the package ships no types). */
interface WsClient {
  readonly protocol: string;
  on(event: "open" | "upgrade", listener: () => void): this;
  on(event: "message", listener: (data: Buffer, isBinary: boolean) => void): this;
  on(event: "close", listener: (code: number, reason: Buffer) => void): this;
  on(
    event: "unexpected-response",
    listener: (request: ClientRequest, response: IncomingMessage) => void,
  ): this;
  on(event: "error", listener: (error: Error) => void): this;
  send(data: Buffer | string): void;
  close(): void;
  terminate(): void;
  pause(): void;
  resume(): void;
}
const WebSocketClient = createRequire(import.meta.url)("ws") as new (
  url: string,
  protocols?: string | string[],
) => WsClient;

const V5 = "v5.channel.k8s.io";
const V4 = "v4.channel.k8s.io";
const SUCCESS = '{"metadata":{},"status":"Success"}';
/** Every test ends well within this, or fails instead of hanging. */
const T = { timeout: 20_000 };

/** A container that records what the endpoints do with it: its execs and live subscriptions. */
class Watched implements Container {
  readonly inner: Container;
  readonly execs: Instance[] = [];
  subscriptions = 0;

  constructor(inner: Container) {
    this.inner = inner;
  }
  get id(): string {
    return this.inner.id;
  }
  get spec(): Readonly<ContainerSpec> {
    return this.inner.spec;
  }
  get started(): Promise<Date> {
    return this.inner.started;
  }
  get exited(): Promise<ExitStatus> {
    return this.inner.exited;
  }
  get running(): boolean {
    return this.inner.running;
  }
  stop(gracePeriodMs: number): Promise<ExitStatus> {
    return this.inner.stop(gracePeriodMs);
  }
  writeStdin(data: Uint8Array | string): Promise<void> {
    return this.inner.writeStdin(data);
  }
  closeStdin(): void {
    this.inner.closeStdin();
  }
  cpuUsage(): Promise<CpuUsage> {
    return this.inner.cpuUsage();
  }
  memoryBytes(): number {
    return this.inner.memoryBytes();
  }
  onOutput(listener: OutputListener): () => void {
    this.subscriptions++;
    const unsubscribe = this.inner.onOutput(listener);
    let once = false;
    return () => {
      if (!once) this.subscriptions--;
      once = true;
      unsubscribe();
    };
  }
  exec(options: ExecOptions): Instance {
    const instance = this.inner.exec(options);
    this.execs.push(instance);
    return instance;
  }
}

interface Frame {
  channel: number;
  data: Buffer;
}

/** A client session: every frame received, decoded; resolves `closed` with the close code. */
class Client {
  readonly socket: WsClient;
  readonly frames: Frame[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<number>;
  readonly #base64: boolean;

  constructor(url: string, protocols: string[], base64 = false) {
    this.#base64 = base64;
    this.socket = new WebSocketClient(url, protocols);
    this.opened = new Promise((resolve, reject) => {
      this.socket.on("open", resolve);
      this.socket.on("error", reject);
    });
    this.closed = new Promise((resolve) => this.socket.on("close", (code) => resolve(code)));
    this.socket.on("message", (data, isBinary) => {
      assert.equal(isBinary, !this.#base64, "base64 protocols send text, the others binary");
      if (this.#base64) {
        const text = data.toString();
        this.frames.push({
          channel: text.charCodeAt(0) - 0x30,
          data: Buffer.from(text.slice(1), "base64"),
        });
      } else {
        this.frames.push({ channel: data[0] as number, data: data.subarray(1) });
      }
    });
  }

  send(channel: number, data: string | Buffer): void {
    const bytes = Buffer.from(data);
    this.socket.send(
      this.#base64
        ? `${channel}${bytes.toString("base64")}`
        : Buffer.concat([Buffer.from([channel]), bytes]),
    );
  }

  text(channel: number): string {
    return Buffer.concat(
      this.frames.filter((f) => f.channel === channel).map((f) => f.data),
    ).toString();
  }

  async until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
    await until(condition, () => `the condition; frames: ${this.describe()}`, timeoutMs);
  }

  describe(): string {
    return JSON.stringify(this.frames.map((f) => [f.channel, f.data.toString()]));
  }
}

describe("exec and attach over WebSocket", () => {
  const runtime = new Runtime({ workers: 1, closeGracePeriodMs: 0 });
  const dir = mkdtempSync(join(tmpdir(), "wasmlet-exec-attach-"));
  const modules = new Map<GuestName, WebAssembly.Module>();
  const containers = new Map<string, { container: Watched; stdinOnce?: boolean }>();
  const resolved: (string | undefined)[][] = [];
  const clients: Client[] = [];
  let app: FastifyInstance;
  let base: string;
  let counter = 0;

  /** Starts a container and waits until it runs (exec and attach need a running one). */
  async function run(
    name: string,
    guest: GuestName,
    fields: Partial<ContainerSpec> = {},
    stdinOnce?: boolean,
  ): Promise<Watched> {
    const id = `c${++counter}-${name}`;
    const container = new Watched(
      runtime.run({
        id,
        module: modules.get(guest) as WebAssembly.Module,
        args: [guest],
        env: {},
        mounts: [],
        logPath: join(dir, `${id}.log`),
        ...fields,
      }),
    );
    containers.set(name, { container, stdinOnce });
    await container.started;
    return container;
  }

  before(async () => {
    for (const guest of ["cat", "ticker", "hello"] as const) {
      modules.set(guest, await compileModule(readFileSync(await buildGuest(guest))));
    }
    await runtime.start();
    const deps = {
      resolve(
        namespace: string,
        pod: string,
        container: string,
        podUid: string | undefined,
      ): ExecAttachTarget {
        resolved.push([namespace, pod, container, podUid]);
        if (pod !== "pod" || (podUid !== undefined && podUid !== "uid-1")) {
          return { kind: "pod-not-found" };
        }
        if (container === "waiting") return { kind: "not-running", reason: "ImagePullBackOff" };
        const found = containers.get(container);
        return found ? { kind: "container", ...found } : { kind: "container-not-found" };
      },
      execStopGracePeriodMs: 200,
    };
    app = Fastify();
    await app.register(fastifyWebsocket);
    app.setErrorHandler((error, _request, reply) => {
      const failure = httpFailure(error);
      return reply.code(failure.status).type("text/plain; charset=utf-8").send(failure.message);
    });
    const context: RouteContext = {
      user: { username: "kube-apiserver", groups: [], via: "x509" },
      subresource: "proxy",
      log: pino({ level: "silent" }),
    };
    for (const route of [...execRoutes(deps), ...attachRoutes(deps)]) {
      mountRoute(app, route, () => context);
    }
    await app.listen({ host: "127.0.0.1", port: 0 });
    const address = app.server.address();
    assert.ok(address && typeof address === "object");
    base = `127.0.0.1:${address.port}`;
  });

  after(async () => {
    for (const client of clients) client.socket.terminate();
    await app?.close();
    await runtime.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  function connect(path: string, protocols: string[] = [V5, V4], base64 = false): Client {
    const client = new Client(`ws://${base}${path}`, protocols, base64);
    clients.push(client);
    return client;
  }

  /** An upgrade the server refuses before upgrading: its HTTP status and body. */
  function refused(path: string, protocols: string[] = [V5, V4]): Promise<[number, string]> {
    const socket = new WebSocketClient(`ws://${base}${path}`, protocols);
    return new Promise((resolve, reject) => {
      socket.on("open", () => reject(new Error(`${path} was upgraded`)));
      socket.on("error", () => {});
      socket.on("unexpected-response", (_request, response) => {
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          body += chunk;
        });
        response.on("end", () => resolve([response.statusCode ?? 0, body]));
      });
    });
  }

  /** A plain HTTP request (no WebSocket): its status, body and Connection header. */
  function plain(
    method: string,
    path: string,
    headers: Record<string, string> = {},
  ): Promise<[number, string, string | undefined]> {
    return new Promise((resolve, reject) => {
      const request = httpRequest(`http://${base}${path}`, { method, headers }, (response) => {
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          body += chunk;
        });
        response.on("end", () =>
          resolve([response.statusCode ?? 0, body, response.headers.connection]),
        );
      });
      request.on("error", reject);
      request.end();
    });
  }

  it("offers GET (WebSocket) and POST (refused) for both path forms, as create on nodes/proxy", () => {
    const all = [
      ...execRoutes({ resolve: () => ({ kind: "pod-not-found" }) }),
      ...attachRoutes({ resolve: () => ({ kind: "pod-not-found" }) }),
    ];
    assert.deepEqual(
      all.map((r) => [r.method, r.url, typeof r.websocket]),
      [
        ["GET", "/exec/:namespace/:pod/:container", "function"],
        ["POST", "/exec/:namespace/:pod/:container", "undefined"],
        ["GET", "/exec/:namespace/:pod/:uid/:container", "function"],
        ["POST", "/exec/:namespace/:pod/:uid/:container", "undefined"],
        ["GET", "/attach/:namespace/:pod/:container", "function"],
        ["POST", "/attach/:namespace/:pod/:container", "undefined"],
        ["GET", "/attach/:namespace/:pod/:uid/:container", "function"],
        ["POST", "/attach/:namespace/:pod/:uid/:container", "undefined"],
      ],
    );
    for (const route of all) {
      assert.deepEqual(route.access, { verb: "create", subresources: ["proxy"] });
      assert.equal(route.declares, "ExtendWebSocketsToKubelet");
    }
  });

  it(
    "v5 exec: stdin in until half-closed, stdout and stderr out, Success, normal close",
    T,
    async () => {
      await run("cat", "cat", { stdin: true });
      const client = connect("/exec/ns/pod/cat?command=cat&command=-&input=1&output=1&error=1");
      await client.opened;
      assert.equal(client.socket.protocol, V5);
      client.send(0, "hello ");
      client.send(0, "world\n");
      client.send(255, Buffer.from([0]));
      assert.equal(await client.closed, 1000);
      assert.deepEqual(
        client.frames[0],
        { channel: 1, data: Buffer.alloc(0) },
        "announced on stdout",
      );
      assert.equal(client.text(1), "hello world\n");
      assert.equal(client.text(2), "EOF after 12 bytes\n");
      assert.equal(client.text(3), SUCCESS);
      assert.equal(client.frames.at(-1)?.channel, 3, "the status comes last");
      assert.deepEqual(resolved.at(-1), ["ns", "pod", "cat", undefined]);
      const exec = containers.get("cat")?.container.execs.at(-1);
      assert.equal((await exec?.exited)?.exitCode, 0);
      assert.equal(containers.get("cat")?.container.running, true, "the container keeps running");
    },
  );

  it("a non-zero exit is NonZeroExitCode with the code, on v5 and v4", T, async () => {
    await run("cat3", "cat", { stdin: true, env: { EXIT_CODE: "3" } });
    for (const protocol of [V5, V4]) {
      // No stdin: the command reads end-of-file at once.
      const client = connect("/exec/ns/pod/cat3?command=cat&output=1&error=1", [protocol]);
      await client.opened;
      assert.equal(client.socket.protocol, protocol);
      assert.equal(await client.closed, 1000);
      assert.equal(client.text(2), "EOF after 0 bytes\n");
      assert.deepEqual(JSON.parse(client.text(3)), {
        metadata: {},
        status: "Failure",
        message: "command terminated with non-zero exit code: command terminated with exit code 3",
        reason: "NonZeroExitCode",
        details: { causes: [{ reason: "ExitCode", message: "3" }] },
      });
    }
  });

  it(
    "speaks the older protocols: base64 text frames, and v1's bare failure message",
    T,
    async () => {
      const b64 = connect(
        "/exec/ns/pod/cat3?command=cat&error=1",
        ["v4.base64.channel.k8s.io"],
        true,
      );
      await b64.opened;
      assert.equal(await b64.closed, 1000);
      assert.deepEqual(b64.frames[0], { channel: 2, data: Buffer.alloc(0) }, "announced on stderr");
      assert.equal(b64.text(1), "", "stdout was not asked for");
      assert.equal(b64.text(2), "EOF after 0 bytes\n");
      assert.equal(JSON.parse(b64.text(3)).reason, "NonZeroExitCode");

      const v1 = connect("/exec/ns/pod/cat3?command=cat&output=1", ["channel.k8s.io"]);
      await v1.opened;
      assert.equal(await v1.closed, 1000);
      assert.equal(
        v1.text(3),
        "command terminated with non-zero exit code: command terminated with exit code 3",
      );

      // No subprotocol at all: channel.k8s.io, and nothing on the error channel for success.
      const bare = connect("/exec/ns/pod/cat?command=cat&output=1&error=1", []);
      await bare.opened;
      assert.equal(bare.socket.protocol, "");
      assert.equal(await bare.closed, 1000);
      assert.equal(bare.text(2), "EOF after 0 bytes\n");
      assert.equal(bare.frames.filter((f) => f.channel === 3).length, 0);

      // base64 stdin in, stdout out.
      const echo = connect(
        "/exec/ns/pod/cat?command=cat&input=1&output=1",
        ["base64.channel.k8s.io"],
        true,
      );
      await echo.opened;
      echo.send(0, "over base64\n");
      await echo.until(() => echo.text(1) === "over base64\n");
      echo.socket.close();
      assert.equal(await echo.closed, 1005);
    },
  );

  it("negotiates the client's first known subprotocol and refuses unknown ones", T, async () => {
    const client = connect("/exec/ns/pod/cat?command=cat&output=1", ["v6.channel.k8s.io", V4, V5]);
    await client.opened;
    assert.equal(client.socket.protocol, V4);
    await client.closed;
    const [status, body] = await refused("/exec/ns/pod/cat?command=cat&output=1", [
      "v3.channel.k8s.io",
      "chat",
    ]);
    assert.equal(status, 400);
    assert.match(body, /requested protocol\(s\) are not supported: \[v3\.channel\.k8s\.io chat\]/);
    assert.match(body, /supports \[v5\.channel\.k8s\.io v4\.channel\.k8s\.io /);
  });

  it(
    "tty: no terminal, but echo, line editing, CR LF and stderr merged into stdout",
    T,
    async () => {
      const client = connect("/exec/ns/pod/cat?command=cat&input=1&output=1&error=1&tty=1");
      await client.opened;
      client.send(4, '{"Width":80,"Height":24}'); // resize: accepted, ignored
      client.send(0, "ab\x7fc\x15xy\x7f\x7fé\x7fok\r");
      await client.until(() => client.text(1).includes("ok\r\n"));
      client.send(0, "\x04");
      assert.equal(await client.closed, 1000);
      assert.equal(
        client.text(1),
        "ab\b \bc\b \b\b \bxy\b \b\b \bé\b \bok\r\nok\r\nEOF after 3 bytes\r\n",
      );
      assert.equal(client.text(2), "", "stderr is dropped with tty; its output comes on stdout");
      assert.equal(client.text(3), SUCCESS);
    },
  );

  it("tty: ^C stops the command, reported by its exit code", T, async () => {
    const ticker = await run("ticker-tty", "ticker", { env: { TICK_MS: "20" } });
    const client = connect("/exec/ns/pod/ticker-tty?command=ticker&input=1&output=1&tty=1");
    await client.opened;
    await client.until(() => client.text(1).includes("tick 1\r\n"));
    client.send(0, "\x03");
    assert.equal(await client.closed, 1000);
    assert.match(client.text(1), /\^C\r\n/);
    const status = JSON.parse(client.text(3));
    assert.equal(status.reason, "NonZeroExitCode");
    assert.equal(
      (await ticker.execs[0]?.exited)?.exitCode,
      Number(status.details.causes[0].message),
    );
    assert.equal(ticker.running, true);
  });

  it(
    "tty: a line typed without end is cut at 4095 bytes, and CR still ends it (n_tty)",
    T,
    async () => {
      const client = connect("/exec/ns/pod/cat?command=cat&input=1&output=1&tty=1");
      await client.opened;
      // 2 MiB of keystrokes and no newline, in 64 KiB messages: the line keeps 4095 of them.
      const flood = Buffer.alloc(64 * 1024, "a");
      for (let i = 0; i < 32; i++) client.send(0, flood);
      client.send(0, "\r");
      const line = "a".repeat(4095);
      // Echoed up to the limit, one bell for what was discarded, then the line as cat prints it.
      const expected = `${line}\x07\r\n${line}\r\n`;
      await client.until(() => client.text(1).length >= expected.length, 10_000);
      assert.equal(client.text(1), expected, "bounded echo and line");
      client.send(0, "ok\r");
      await client.until(() => client.text(1).endsWith("ok\r\nok\r\n"));
      client.send(0, "\x04");
      assert.equal(await client.closed, 1000);
      assert.equal(client.text(1), `${expected}ok\r\nok\r\nEOF after 4099 bytes\r\n`);
      assert.equal(client.text(3), SUCCESS);
    },
  );

  it("moves 2 MiB through stdin and stdout intact while the client stalls reading", T, async () => {
    const client = connect("/exec/ns/pod/cat?command=cat&input=1&output=1");
    await client.opened;
    const input = Buffer.alloc(2 * 1024 * 1024);
    for (let i = 0; i < input.length; i++) input[i] = (i * 7) % 251;
    client.socket.pause();
    for (let offset = 0; offset < input.length; offset += 64 * 1024) {
      client.send(0, input.subarray(offset, offset + 64 * 1024));
    }
    client.send(255, Buffer.from([0]));
    await sleep(300);
    client.socket.resume();
    assert.equal(await client.closed, 1000);
    const output = Buffer.concat(client.frames.filter((f) => f.channel === 1).map((f) => f.data));
    assert.equal(output.length, input.length);
    assert.ok(output.equals(input), "every byte, in order");
    assert.equal(client.text(3), SUCCESS);
  });

  it("stops the exec when the client goes away or breaks the protocol", T, async () => {
    const ticker = await run("ticker", "ticker", { env: { TICK_MS: "20" } });
    for (const leave of [
      (client: Client) => client.socket.terminate(),
      (client: Client) => client.socket.send(Buffer.from([255])), // a close signal without channel
    ]) {
      const client = connect("/exec/ns/pod/ticker?command=ticker&output=1");
      await client.opened;
      await client.until(() => client.text(1).includes("tick 2\n"));
      const exec = ticker.execs.at(-1) as Instance;
      assert.equal(exec.running, true);
      leave(client);
      const status = await exec.exited;
      assert.ok([143, 137].includes(status.exitCode), `stopped, exit code ${status.exitCode}`);
    }
    assert.equal(ticker.running, true, "the container is untouched");
  });

  it("attach forwards live output only, and a leaving client just unsubscribes", T, async () => {
    const ticker = containers.get("ticker")?.container as Watched;
    const client = connect("/attach/ns/pod/uid-1/ticker?output=1&error=1");
    await client.opened;
    await client.until(() => (client.text(1).match(/tick \d+\n/g) ?? []).length >= 3);
    const first = Number(/^tick (\d+)\n/.exec(client.text(1))?.[1]);
    assert.ok(first > 2, `live output starts now, not at the log's beginning (tick ${first})`);
    assert.deepEqual(resolved.at(-1), ["ns", "pod", "ticker", "uid-1"]);
    assert.equal(ticker.subscriptions, 1);
    client.socket.close();
    await client.closed;
    await until(() => ticker.subscriptions === 0, "the unsubscription");
    assert.equal(ticker.running, true);
  });

  it(
    "attach feeds the container's stdin, closes it with stdinOnce, and ends with Success on exit",
    T,
    async () => {
      const cat = await run("once", "cat", { stdin: true, env: { EXIT_CODE: "7" } }, true);
      const client = connect("/attach/ns/pod/once?input=1&output=1&error=1");
      await client.opened;
      client.send(0, "ping\n");
      await client.until(() => client.text(1) === "ping\n");
      client.send(255, Buffer.from([0]));
      assert.equal(await client.closed, 1000);
      assert.equal(client.text(2), "EOF after 5 bytes\n");
      // Attach reports how the session went, not the container's exit code.
      assert.equal(client.text(3), SUCCESS);
      assert.equal((await cat.exited).exitCode, 7);
      assert.equal(cat.subscriptions, 0);
    },
  );

  it("refuses before upgrading what the kubelet refuses", T, async () => {
    const path = "/exec/ns/pod/cat?command=cat&input=1&output=1";
    // An API server older than 1.36, or one without ExtendWebSocketsToKubelet, speaks SPDY.
    for (const method of ["POST", "GET"]) {
      const [status, body, connection] = await plain(method, path, {
        connection: "Upgrade",
        upgrade: "SPDY/3.1",
        "x-stream-protocol-version": "v4.channel.k8s.io",
      });
      assert.equal(status, 400, method);
      assert.equal(connection, "close", "a refused upgrade's connection is not reused");
      assert.match(body, /^unable to upgrade: wasmlet serves exec over WebSocket only/);
      assert.match(body, /asks to upgrade to SPDY\/3\.1/);
      assert.match(
        body,
        /Kubernetes 1\.36 or newer with the ExtendWebSocketsToKubelet feature gate/,
      );
    }
    const [status, body] = await plain("GET", "/attach/ns/pod/cat?output=1");
    assert.equal(status, 400);
    assert.match(body, /serves attach over WebSocket only .* is not a WebSocket upgrade/);

    const cases: [string, number, string | RegExp][] = [
      ["/exec/ns/pod/cat?command=cat", 400, "you must specify at least 1 of stdin, stdout, stderr"],
      ["/exec/ns/pod/cat?output=1", 400, "you must specify a command to execute"],
      ["/exec/ns/nopod/cat?command=cat&output=1", 404, 'pod "nopod" does not exist'],
      ["/exec/ns/pod/uid-2/cat?command=cat&output=1", 404, 'pod "pod" does not exist'],
      ["/attach/ns/pod/nosuch?output=1", 404, 'container "nosuch" not found in pod "pod"'],
      [
        "/attach/ns/pod/waiting?output=1",
        400,
        'container "waiting" in pod "pod" is not running: ImagePullBackOff',
      ],
      ["/exec/ns//cat?command=cat&output=1", 400, "Missing podID."],
    ];
    for (const [url, code, message] of cases) {
      const [got, text] = await refused(url);
      assert.equal(got, code, url);
      if (typeof message === "string") assert.equal(text, message, url);
      else assert.match(text, message, url);
    }
    const hello = await run("done", "hello");
    await hello.exited;
    assert.deepEqual(await refused("/exec/ns/pod/done?command=hello&output=1"), [
      400,
      'container "done" in pod "pod" is not running',
    ]);
  });
});

describe("LineDiscipline", () => {
  it("edits a line and echoes it, control characters as ^X", () => {
    const tty = new LineDiscipline();
    const typed = tty.input(Buffer.from("a\tb\x1b[A\x7f\x7f\x7fc\rd"));
    assert.equal(typed.line.toString(), "a\tbc\n");
    // ESC shows as ^[, two columns: erasing it takes two.
    assert.equal(typed.echo.toString(), "a\tb^[[A\b \b\b \b\b \b\b \bc\r\nd");
    assert.equal(typed.eof, false);
    // The unfinished "d" is held until the line ends; ^D hands it over without a newline.
    assert.equal(tty.input(Buffer.from("\x04")).line.toString(), "d");
    const end = tty.input(Buffer.from("\x04more"));
    assert.deepEqual([end.eof, end.line.length, end.echo.length], [true, 0, 0]);
    assert.equal(tty.input(Buffer.from("ignored\n")).line.length, 0, "input has ended");
  });

  it("erases whole UTF-8 characters, kills lines with ^U and interrupts with ^C", () => {
    const tty = new LineDiscipline();
    assert.equal(tty.input(Buffer.from("h€\x7f\n")).line.toString(), "h\n");
    const killed = tty.input(Buffer.from("abc\x15x\n"));
    assert.equal(killed.line.toString(), "x\n");
    assert.equal(killed.echo.toString(), "abc\b \b\b \b\b \bx\r\n");
    const interrupted = tty.input(Buffer.from("lost\x03kept\n"));
    assert.deepEqual([interrupted.interrupt, interrupted.line.toString()], [true, "kept\n"]);
    assert.equal(interrupted.echo.toString(), "lost^C\r\nkept\r\n");
  });

  it("holds at most 4095 bytes of a line, like n_tty, and still ends it with CR or LF", () => {
    const tty = new LineDiscipline();
    let echoed = 0;
    let bells = 0;
    // More than 1 MiB without a newline, as one chunk and as many.
    for (const typed of [
      tty.input(Buffer.alloc(1024 * 1024, "x")),
      ...Array.from({ length: 64 }, () => tty.input(Buffer.alloc(4096, "y"))),
    ]) {
      assert.equal(typed.line.length, 0);
      echoed += typed.echo.length;
      bells += typed.echo.filter((byte) => byte === 0x07).length;
    }
    assert.equal(tty.pending, 4095, "the line is full, and no fuller");
    assert.equal(echoed, 4095 + 1, "the kept keystrokes are echoed, and one bell rings");
    assert.equal(bells, 1);
    const ended = tty.input(Buffer.from("\r"));
    assert.equal(ended.line.toString(), `${"x".repeat(4095)}\n`, "CR works after an overflow");
    assert.equal(ended.echo.toString(), "\r\n");
    assert.equal(tty.pending, 0);
    // Room again: typing is echoed, and erasing a full line's last character makes room for one.
    assert.equal(tty.input(Buffer.from("ab\n")).line.toString(), "ab\n");
    tty.input(Buffer.alloc(5000, "z"));
    const edited = tty.input(Buffer.from("\x7fq\x04"));
    assert.equal(edited.echo.toString(), "\b \bq");
    assert.equal(edited.line.toString(), `${"z".repeat(4094)}q`, "^D hands a full line over");
    // A line of control characters fills up the same way (its echo is ^X, two bytes each).
    tty.input(Buffer.alloc(10_000, 0x01));
    assert.equal(tty.input(Buffer.from("\n")).line.length, 4096);
  });

  it("turns output newlines into CR LF", () => {
    const tty = new LineDiscipline();
    assert.equal(tty.output(Buffer.from("a\nb\n\n")).toString(), "a\r\nb\r\n\r\n");
    assert.equal(tty.output(Buffer.from("no newline")).toString(), "no newline");
  });
});

/**
 * A server-side socket whose client reads nothing until flush(): what is sent stays buffered.
 * Like `ws`, it delivers no messages while paused.
 */
class StalledSocket implements ChannelSocket {
  readonly protocol = V5;
  bufferedAmount = 0;
  /** The most ever buffered. */
  peak = 0;
  paused = false;
  readonly #written: (() => void)[] = [];
  readonly #listeners = new Map<string, (data: Buffer) => void>();
  readonly on = ((event: string, listener: (data: Buffer) => void) => {
    this.#listeners.set(event, listener);
    return this;
  }) as ChannelSocket["on"];

  send(data: Buffer | string, callback?: (error?: Error) => void): void {
    this.bufferedAmount += data.length;
    this.peak = Math.max(this.peak, this.bufferedAmount);
    if (callback) this.#written.push(() => callback());
  }
  close(): void {}
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  /** Delivers a client message, unless the server stopped reading. */
  receive(message: Buffer): boolean {
    if (this.paused) return false;
    this.#listeners.get("message")?.(message);
    return true;
  }
  /** The client reads everything buffered. */
  flush(): void {
    this.bufferedAmount = 0;
    for (const written of this.#written.splice(0)) written();
  }
}

describe("tty input against a client that does not read", () => {
  it("echoes no faster than the socket drains, and stops reading meanwhile", T, async () => {
    let typed = 0;
    const instance = {
      exited: new Promise<ExitStatus>(() => {}),
      writeStdin: async (data: Uint8Array | string) => {
        typed += data.length;
      },
      closeStdin: () => {},
      stop: () => new Promise<ExitStatus>(() => {}),
    } as unknown as Instance;
    const container = { running: true, exec: () => instance } as unknown as Container;
    const route = execRoutes({ resolve: () => ({ kind: "container", container }) })[0];
    assert.ok(route?.websocket);
    const raw = { headers: { "sec-websocket-protocol": V5 } } as unknown as IncomingMessage;
    const request = {
      params: { namespace: "ns", pod: "pod", container: "c" },
      url: "/exec/ns/pod/c?command=sh&input=1&output=1&tty=1",
      headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-protocol": V5 },
      raw,
    } as unknown as FastifyRequest;
    const context: RouteContext = {
      user: { username: "kube-apiserver", groups: [], via: "x509" },
      subresource: "proxy",
      log: pino({ level: "silent" }),
    };
    await route.handler(request, {} as FastifyReply, context);
    const socket = new StalledSocket();
    route.websocket(socket, request, context);

    // 8 MiB of short lines, each echoed in full, in 64 KiB messages sent as fast as taken.
    const message = Buffer.concat([Buffer.from([0]), Buffer.alloc(64 * 1024, "a\r")]);
    const messages = 128;
    const input = messages * (message.length - 1);
    let sent = 0;
    const send = async () => {
      while (sent < messages && socket.receive(message)) sent++;
      await sleep(20);
    };
    await send();
    await send();
    assert.ok(socket.paused, "the server stopped reading while its echo is unread");
    assert.ok(sent < messages / 2, `took only part of the input (${sent} of ${messages} messages)`);
    while (typed < input) {
      socket.flush();
      await send();
    }
    const high = 1024 * 1024;
    assert.ok(
      socket.peak < high + 64 * 1024,
      `at most 1 MiB and a step's echo were buffered (peak ${socket.peak})`,
    );
    assert.equal(typed, input, "every line reached the command");
  });
});
