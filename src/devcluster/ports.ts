import { createServer } from "node:net";
import { devclusterError } from "./errors.ts";

/** A TCP port that is free on `host` right now (the kernel picks it). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === "object") resolve(address.port);
        else reject(new Error("no port assigned"));
      });
    });
  });
}

/** Fails with WASMLET_ERR_PORT_IN_USE when `port` cannot be bound on `host`. */
export function assertPortFree(host: string, port: number, owner: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", (error: NodeJS.ErrnoException) => {
      reject(
        error.code === "EADDRINUSE"
          ? devclusterError(
              "WASMLET_ERR_PORT_IN_USE",
              `${owner}: port ${host}:${port} is already in use`,
            )
          : error,
      );
    });
    server.listen(port, host, () => server.close(() => resolve()));
  });
}
