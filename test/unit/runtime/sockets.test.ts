import assert from "node:assert/strict";
import { connect, createServer } from "node:net";
import { after, before, test } from "node:test";
import { type ContainerSpec, Runtime } from "../../../src/runtime/index.ts";
import type { GuestName } from "../../support/guests.ts";
import { collector, guest, logText, spec, tempDir, until } from "./helpers.ts";

const dir = tempDir();
const runtime = new Runtime({ workers: 1 });
before(() => runtime.start());
after(async () => {
  await runtime.destroy();
  dir.remove();
});

/** A port nobody listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Writes `data` on a new connection to `port` and collects the answer: all of it, up to the
 * server's end, or (given `length`) until that many bytes came back.
 */
function exchange(port: number, data: string | Buffer, length = Infinity): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    const chunks: Buffer[] = [];
    let got = 0;
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      got += chunk.length;
      if (got >= length) {
        socket.destroy();
        resolve(Buffer.concat(chunks));
      }
    });
    socket.on("end", () => resolve(Buffer.concat(chunks)));
    socket.on("error", reject);
    socket.write(data);
  });
}

/** One HTTP/1.0 GET over a raw socket: the whole response. */
const get = (port: number, path = "/") =>
  exchange(port, `GET ${path} HTTP/1.0\r\n\r\n`).then(String);

const outbound = { podLoopback: ["127.0.0.0/8"], hostAddresses: [], wasmletPorts: [] };

function network(port: number, maxConnections = 100) {
  return { listen: [{ name: "http", host: "127.0.0.1", port }], maxConnections, outbound };
}

/** Runs guest `name` listening on a free port; resolves once its output includes `ready`. */
async function serving(
  name: GuestName,
  ready: string,
  fields: Partial<ContainerSpec> = {},
  timeoutMs?: number,
) {
  const port = await freePort();
  const out = collector();
  const server = runtime.run(
    spec(dir.path, { module: await guest(name), args: [name], network: network(port), ...fields }),
  );
  server.onOutput(out.onOutput);
  await until(() => out.text().includes(ready), `${name} to print "${ready}"`, timeoutMs);
  return { port, server, out };
}

test("a C guest serves its pre-opened listener with accept, recv and send", async () => {
  const { port, server, out } = await serving("c-server", "listening");
  assert.match(out.text(), /listening on fd 3 \(http\)/);
  for (let i = 1; i <= 3; i++) {
    const response = await get(port);
    assert.match(response, /^HTTP\/1\.0 200 OK/);
    assert.ok(response.endsWith(`hello from c, connection ${i}\n`), response);
  }
  const concurrent = await Promise.all(Array.from({ length: 20 }, () => get(port)));
  assert.equal(concurrent.filter((r) => r.startsWith("HTTP/1.0 200")).length, 20);
  await get(port, "/bye");
  assert.equal((await server.exited).reason, "Completed");
  // The listener went with the guest.
  await assert.rejects(get(port), /ECONNREFUSED/);
});

test("listeners come after the pre-opened directories; LISTEN_FDS* say where", async () => {
  const { server, out } = await serving("c-server", "listening", {
    mounts: [{ hostPath: dir.path, guestPath: "/data", readOnly: true }],
  });
  assert.match(out.text(), /listening on fd 4 \(http\)/);
  await server.stop(1000);
});

test("a port already in use ends the start with a message naming it", async () => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
  const { port } = taken.address() as { port: number };
  try {
    const server = runtime.run(
      spec(dir.path, {
        module: await guest("c-server"),
        args: ["c-server"],
        network: network(port),
      }),
    );
    const status = await server.exited;
    assert.equal(status.reason, "StartError");
    assert.match(
      status.message ?? "",
      new RegExp(`127\\.0\\.0\\.1:${port} \\(port "http"\\).*in use`),
    );
  } finally {
    taken.close();
  }
});

test("past the connection limit new connections are reset, and a warning says so", async () => {
  const port = await freePort();
  const warnings: string[] = [];
  const limited = new Runtime({
    workers: 1,
    logger: { debug() {}, warn: (o: object) => warnings.push(JSON.stringify(o)) },
  });
  await limited.start();
  try {
    // The ticker never accepts: connections stay pending and count against the limit.
    const idle = limited.run(
      spec(dir.path, {
        module: await guest("ticker"),
        args: ["ticker"],
        env: { TICK_MS: "60000" },
        network: network(port, 2),
      }),
    );
    await idle.started;
    const open = [connect({ host: "127.0.0.1", port }), connect({ host: "127.0.0.1", port })];
    await Promise.all(open.map((s) => new Promise((resolve) => s.on("connect", resolve))));
    const third = connect({ host: "127.0.0.1", port });
    const ended = await new Promise<string>((resolve) => {
      third.on("error", (error) => resolve((error as NodeJS.ErrnoException).code ?? "error"));
      third.on("close", () => resolve("closed"));
    });
    assert.match(ended, /ECONNRESET|closed/);
    await until(
      () => warnings.some((w) => w.includes("holds 2 connections, its limit")),
      "the connection-limit warning",
    );
    for (const socket of open) socket.destroy();
    await idle.stop(1000);
  } finally {
    await limited.destroy();
  }
});

test("the toolbox guest echoes many clients at once through poll(); megabytes each way", async () => {
  const { port, server } = await serving("toolbox", "echoing on 1 listener(s)");
  const payloads = Array.from({ length: 8 }, (_, i) => Buffer.alloc(1024 * 1024 + i, i + 1));
  const answers = await Promise.all(payloads.map((p) => exchange(port, p, p.length)));
  for (const [i, answer] of answers.entries())
    assert.ok(answer.equals(payloads[i]!), `client ${i}`);
  await server.stop(1000);
});

test("a client that never reads holds the guest's send back instead of filling wasmlet's memory", async () => {
  const { port, server } = await serving("toolbox", "echoing");
  const client = connect({ host: "127.0.0.1", port });
  client.pause();
  await new Promise((resolve) => client.on("connect", resolve));
  // 64 MiB offered. Were wasmlet buffering without bound, it would take them all; it stops once
  // its 256 KiB each way and the kernel's buffers are full, so most stay with the client.
  const chunk = Buffer.alloc(1024 * 1024, 7);
  for (let i = 0; i < 64; i++) client.write(chunk);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const unsent = client.writableLength / 2 ** 20;
  assert.ok(unsent > 32, `only ${unsent.toFixed(1)} MiB still queued at the client`);
  // Reading now gets the echo flowing again: the guest was waiting, not dead.
  let received = 0;
  client.on("data", (c: Buffer) => {
    received += c.length;
  });
  client.resume();
  await until(() => received >= 8 * 1024 * 1024, "8 MiB back");
  client.destroy();
  await server.stop(1000);
});

test("Go: net/http serves the pre-opened listener, and a Go guest fetches from it through the socket extension", async () => {
  const { port, server } = await serving(
    "http-go",
    "listening on http",
    { env: { POD_NAME: "web-1" } },
    20_000,
  );
  const hello = await fetch(`http://127.0.0.1:${port}/`);
  assert.equal(await hello.text(), "hello from web-1\n");
  const body = Buffer.alloc(3 * 1024 * 1024, 9);
  const echo = await fetch(`http://127.0.0.1:${port}/echo`, { method: "POST", body });
  assert.ok(Buffer.from(await echo.arrayBuffer()).equals(body));

  const fetched = collector();
  const client = runtime.run(
    spec(dir.path, {
      module: await guest("fetch-go"),
      args: ["fetch-go", `http://localhost:${port}/`],
      network: { listen: [], maxConnections: 10, outbound },
    }),
  );
  client.onOutput(fetched.onOutput);
  const status = await client.exited;
  assert.equal(status.reason, "Completed", fetched.text());
  assert.match(fetched.text(), /HTTP\/1\.1 200 OK[\s\S]*hello from web-1/);
  await server.stop(1000);
});

test("the outbound policy refuses this host's own services; without a network there are no sockets", async () => {
  const port = await freePort();
  const refused = runtime.run(
    spec(dir.path, {
      module: await guest("fetch-go"),
      args: ["fetch-go", `http://127.0.0.1:${port}/`],
      network: {
        listen: [],
        maxConnections: 10,
        outbound: { podLoopback: ["127.99.0.0/16"], hostAddresses: [], wasmletPorts: [] },
      },
    }),
  );
  assert.equal((await refused.exited).exitCode, 1);
  assert.match(logText(refused.spec.logPath, "stderr").join("\n"), /permission denied/i);

  const offline = runtime.run(
    spec(dir.path, {
      module: await guest("fetch-go"),
      args: ["fetch-go", `http://127.0.0.1:${port}/`],
    }),
  );
  assert.equal((await offline.exited).exitCode, 1);
  assert.match(logText(offline.spec.logPath, "stderr").join("\n"), /not supported/i);
});
