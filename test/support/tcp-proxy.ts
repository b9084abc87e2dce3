import { createConnection, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP proxy in front of a server (the registry, the API server) that tests take away: it can go
 * down with every connection cut (the server gone) and up again, and hold a connection once it has
 * passed `holdAfter` bytes to the client (a download caught mid-blob).
 */
export class GatedProxy {
  readonly #target: { host: string; port: number };
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  port = 0;
  /** Connections hold once they passed this many bytes to the client; undefined: never. */
  holdAfter: number | undefined;
  /** Connections held so far. */
  held = 0;

  /** `target` is `host:port`. */
  constructor(target: string) {
    const [host = "127.0.0.1", port] = target.split(":");
    this.#target = { host, port: Number(port) };
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    const server = createServer((client) => {
      const upstream = createConnection(this.#target);
      const limit = this.holdAfter;
      let passed = 0;
      let holding = false;
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on("close", () => {
          this.#sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
        s.on("error", () => {});
      }
      client.pipe(upstream);
      upstream.on("data", (chunk: Buffer) => {
        if (holding) return;
        if (limit !== undefined && passed + chunk.length > limit) {
          client.write(chunk.subarray(0, limit - passed));
          passed = limit;
          holding = true;
          this.held++;
          upstream.pause();
          return;
        }
        passed += chunk.length;
        client.write(chunk);
      });
      upstream.on("end", () => {
        if (!holding) client.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", () => resolve()));
    this.port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  /** Stops listening and cuts every connection. */
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
