// An HTTP proxy in front of a registry for tests: counts requests (and records the credentials
// they carry) and can alter blob bodies (a tampering middlebox).
import { createServer, request, type Server } from "node:http";

export interface ProxyOptions {
  /** host:port of the registry. */
  target: string;
  /** Rewrites a blob GET's body (the digest is in the path). */
  tamper?: (path: string, body: Buffer) => Buffer;
}

export class CountingProxy {
  readonly log: { method: string; path: string; authorization: string | undefined }[] = [];
  readonly #server: Server;
  readonly address: string;

  private constructor(server: Server, address: string) {
    this.#server = server;
    this.address = address;
  }

  static async start(options: ProxyOptions): Promise<CountingProxy> {
    let proxy: CountingProxy | undefined;
    const server = createServer((req, res) => {
      proxy?.log.push({
        method: req.method ?? "GET",
        path: req.url ?? "/",
        authorization: req.headers.authorization,
      });
      const upstream = request(
        {
          host: options.target.split(":")[0],
          port: Number(options.target.split(":")[1]),
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: options.target },
        },
        (up) => {
          const isBlob = req.method === "GET" && /\/blobs\/sha256:/.test(req.url ?? "");
          if (!options.tamper || !isBlob) {
            res.writeHead(up.statusCode ?? 502, up.headers);
            up.pipe(res);
            return;
          }
          const chunks: Buffer[] = [];
          up.on("data", (c: Buffer) => chunks.push(c));
          up.on("end", () => {
            const body = options.tamper!(req.url ?? "", Buffer.concat(chunks));
            res.writeHead(up.statusCode ?? 502, {
              ...up.headers,
              "content-length": String(body.length),
            });
            res.end(body);
          });
        },
      );
      upstream.on("error", () => res.writeHead(502).end());
      req.pipe(upstream);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    proxy = new CountingProxy(server, `127.0.0.1:${(server.address() as { port: number }).port}`);
    return proxy;
  }

  count(method: string, pattern: RegExp): number {
    return this.log.filter((e) => e.method === method && pattern.test(e.path)).length;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((r) => this.#server.close(r));
  }
}
