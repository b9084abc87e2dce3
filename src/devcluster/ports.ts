import { randomInt } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { devclusterError } from "./errors.ts";

const EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range";
const LOWEST_CHOSEN_PORT = 10_000;

/**
 * A TCP port that is free on every address right now. Where the kernel says which ports it hands
 * out to outgoing connections, the port is chosen below that range: a port the kernel picked for
 * us (listen on port 0) comes from the same range, and an outgoing connection could take it before
 * the caller binds it (seen in the tests on 2 cores, where many clients connect at once).
 */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const low = await ephemeralRangeStart();
  if (low !== undefined && low > LOWEST_CHOSEN_PORT + 1_000) {
    for (let attempt = 0; attempt < 100; attempt++) {
      const port = LOWEST_CHOSEN_PORT + randomInt(low - LOWEST_CHOSEN_PORT);
      if ((await bindable("0.0.0.0", port)) && (host === "0.0.0.0" || (await bindable(host, port))))
        return port;
    }
  }
  return kernelPickedPort(host);
}

async function ephemeralRangeStart(): Promise<number | undefined> {
  try {
    const low = Number.parseInt((await readFile(EPHEMERAL_RANGE_FILE, "utf8")).trim(), 10);
    return Number.isInteger(low) ? low : undefined;
  } catch {
    return undefined;
  }
}

function bindable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function kernelPickedPort(host: string): Promise<number> {
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
