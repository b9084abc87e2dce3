// Opens a container's listeners in its worker before the guest starts, and tells the guest where
// they are. WASI gives pre-opened directories descriptors 3, 4, …; the listeners follow them, so
// libc's pre-open scan still finds every directory. systemd's socket-activation variables name
// them: LISTEN_FDS (how many) and LISTEN_FDNAMES (the port names, colon-separated), plus
// LISTEN_FDS_START (the first descriptor), because with directories present it is not 3.

import type { DescriptorBudget } from "./descriptor-budget.ts";
import { runtimeError } from "./errors.ts";
import { ConnectionLimit, type GuestListener, openListeners } from "./guest-sockets.ts";
import type { RunMessage } from "./protocol.ts";

export interface ListenContext {
  /** Rings the guest's doorbell. */
  wake(): void;
  descriptors: DescriptorBudget;
  /** Told (now and then) that connections past the limit were reset. */
  onRefused(message: string): void;
}

export interface OpenedListeners {
  opened: GuestListener[];
  env: Record<string, string>;
}

/** Warn at the first refusal and then at every power of ten, not at each one. */
function worthTelling(refused: number): boolean {
  return refused === 1 || 10 ** Math.round(Math.log10(refused)) === refused;
}

export async function openGuestListeners(
  message: Pick<RunMessage, "network">,
  /** Pre-opened directories, which come first. */
  directories: number,
  context: ListenContext,
): Promise<OpenedListeners> {
  const network = message.network;
  if (!network || network.listen.length === 0) return { opened: [], env: {} };
  const limit = new ConnectionLimit(network.maxConnections, (refused) => {
    if (worthTelling(refused)) {
      context.onRefused(
        `the container holds ${network.maxConnections} connections, its limit: ${refused} new connection(s) reset so far`,
      );
    }
  });
  const release = { budget: context.descriptors, limit };
  let opened: GuestListener[];
  try {
    opened = await openListeners(network.listen, context.wake, release);
  } catch (error) {
    const failed = network.listen.find((l) => l.port === (error as { port?: number }).port);
    const where = failed ? `${failed.host}:${failed.port} (port "${failed.name}")` : "its port";
    throw runtimeError(
      "WASMLET_ERR_LISTEN",
      `cannot listen on ${where}: ${(error as Error).message}`,
    );
  }
  const start = 3 + directories;
  return {
    opened,
    env: {
      LISTEN_FDS: String(opened.length),
      LISTEN_FDS_START: String(start),
      LISTEN_FDNAMES: network.listen.map((l) => l.name).join(":"),
    },
  };
}
