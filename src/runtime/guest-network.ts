// A guest's network, set up in its worker before the guest starts: its listeners, opened and
// numbered, its connection limit, and where it may connect. WASI gives pre-opened directories
// descriptors 3, 4, …; the listeners follow them, so libc's pre-open scan still finds every
// directory. systemd's socket-activation variables name them: LISTEN_FDS (how many) and
// LISTEN_FDNAMES (the port names, colon-separated), plus LISTEN_FDS_START (the first descriptor),
// because with directories present it is not 3.
import type { DescriptorBudget } from "./descriptor-budget.ts";
import { runtimeError } from "./errors.ts";
import {
  ConnectionLimit,
  type GuestListener,
  openListeners,
  type Release,
} from "./guest-sockets.ts";
import type { OutboundPolicy } from "./outbound-policy.ts";
import type { RunMessage } from "./protocol.ts";

export interface NetworkContext {
  /** Rings the guest's doorbell. */
  wake(): void;
  descriptors: DescriptorBudget;
  /** Told (now and then) that connections past the limit were refused. */
  onRefused(message: string): void;
}

export interface GuestNetwork {
  listeners: GuestListener[];
  env: Record<string, string>;
  /** Where the instance's connections draw from. */
  release: Release;
  outbound: OutboundPolicy;
}

/** Warn at the first refusal and then at every power of ten, not at each one. */
function worthTelling(refused: number): boolean {
  return refused === 1 || 10 ** Math.round(Math.log10(refused)) === refused;
}

/** The instance's network, or undefined when it has none. */
export async function openGuestNetwork(
  message: Pick<RunMessage, "network">,
  /** Pre-opened directories, which come first. */
  directories: number,
  context: NetworkContext,
): Promise<GuestNetwork | undefined> {
  const network = message.network;
  if (!network) return undefined;
  const limit = new ConnectionLimit(network.maxConnections, (refused) => {
    if (worthTelling(refused)) {
      context.onRefused(
        `the container holds ${network.maxConnections} connections, its limit: ${refused} new connection(s) refused so far`,
      );
    }
  });
  const release = { budget: context.descriptors, limit };
  const base = { release, outbound: network.outbound };
  if (network.listen.length === 0) return { ...base, listeners: [], env: {} };
  let listeners: GuestListener[];
  try {
    listeners = await openListeners(network.listen, context.wake, release);
  } catch (error) {
    const failed = network.listen.find((l) => l.port === (error as { port?: number }).port);
    const where = failed ? `${failed.host}:${failed.port} (port "${failed.name}")` : "its port";
    throw runtimeError(
      "WASMLET_ERR_LISTEN",
      `cannot listen on ${where}: ${(error as Error).message}`,
    );
  }
  return {
    ...base,
    listeners,
    env: {
      LISTEN_FDS: String(listeners.length),
      LISTEN_FDS_START: String(3 + directories),
      LISTEN_FDNAMES: network.listen.map((l) => l.name).join(":"),
    },
  };
}
