// The kubelet's second health endpoint: plain HTTP, no authentication, loopback by default
// (--healthz-port, --healthz-bind-address), for liveness probes of a wasmlet running in a pod.
// It answers /healthz only, from the same checks as the kubelet API's /healthz.
import { createServer, type Server } from "node:http";
import type { Logger } from "pino";
import type { Config } from "../config/config.ts";
import { serverError } from "./errors.ts";
import type { HealthChecks } from "./healthz.ts";

export class HealthzServer {
  readonly #config: Pick<Config, "healthzPort" | "healthzBindAddress">;
  readonly #checks: HealthChecks;
  readonly #log: Logger;
  #server: Server | undefined;
  #port: number | undefined;

  constructor(
    config: Pick<Config, "healthzPort" | "healthzBindAddress">,
    checks: HealthChecks,
    logger: Logger,
  ) {
    this.#config = config;
    this.#checks = checks;
    this.#log = logger.child({ component: "healthz" });
  }

  /** The bound port; undefined when turned off or not started. */
  get port(): number | undefined {
    return this.#port;
  }

  async start(): Promise<void> {
    const { healthzPort: port, healthzBindAddress: host } = this.#config;
    if (port === 0 || this.#server) return;
    const server = createServer((request, response) => {
      const path = (request.url ?? "").split("?")[0];
      if ((request.method !== "GET" && request.method !== "HEAD") || path !== "/healthz") {
        response
          .writeHead(404, { "content-type": "text/plain; charset=utf-8" })
          .end("404 page not found\n");
        return;
      }
      this.#checks.run().then((results) => {
        const failed = results.filter((r) => r.problem !== undefined);
        const body =
          failed.length === 0
            ? "ok"
            : `${failed.map((r) => `[-]${r.name} failed: ${r.problem}`).join("\n")}\nhealthz check failed\n`;
        response.writeHead(failed.length === 0 ? 200 : 500, {
          "content-type": "text/plain; charset=utf-8",
        });
        response.end(request.method === "HEAD" ? undefined : body);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error: NodeJS.ErrnoException) => {
        reject(
          error.code === "EADDRINUSE"
            ? serverError(
                "WASMLET_ERR_SERVER_ADDRESS_IN_USE",
                `the healthz endpoint cannot listen on ${host}:${port}: the port is in use`,
                {
                  hint: "stop whatever listens there, choose another --healthz-port, or pass --healthz-port 0",
                  cause: error,
                },
              )
            : serverError(
                "WASMLET_ERR_SERVER_LISTEN",
                `the healthz endpoint cannot listen on ${host}:${port}: ${error.message}`,
                {
                  cause: error,
                },
              ),
        );
      });
      server.listen(port, host, () => resolve());
    });
    this.#server = server;
    const address = server.address();
    this.#port = typeof address === "object" && address ? address.port : port;
    this.#log.info({ address: host, port: this.#port }, "healthz listening (plain HTTP)");
  }

  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
