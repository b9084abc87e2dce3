// Makes a pod CIDR local to this host, so pods can listen on its addresses: one
// `ip route add local <cidr> dev lo` (the kernel then answers for every address of the block on
// the loopback device, as it does for 127.0.0.0/8 out of the box). Needs CAP_NET_ADMIN; without
// it the exact command is returned for an administrator to run.
import { execFile } from "node:child_process";
import { createServer } from "node:net";
import { promisify } from "node:util";
import { type Cidr, podAddress } from "./cidr.ts";

export type RunCommand = (command: string, args: string[]) => Promise<unknown>;

const execFileAsync = promisify(execFile);
const runCommand: RunCommand = (command, args) => execFileAsync(command, args);

export type LocalRouteResult =
  | { local: true; added: boolean }
  | { local: false; command: string; reason: string };

/** Whether a socket can be bound on `ip` (port 0: any free one). */
export function canBind(ip: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(0, ip, () => server.close(() => resolve(true)));
  });
}

export async function ensureLocalRoute(
  cidr: Cidr,
  run: RunCommand = runCommand,
  bindable: (ip: string) => Promise<boolean> = canBind,
): Promise<LocalRouteResult> {
  const probe = podAddress(cidr, 0);
  if (await bindable(probe)) return { local: true, added: false };
  const args = ["route", "add", "local", cidr.text, "dev", "lo"];
  const command = `ip ${args.join(" ")}`;
  try {
    await run("ip", args);
  } catch (error) {
    const detail = (error as { stderr?: string }).stderr?.trim() || (error as Error).message;
    return { local: false, command, reason: detail };
  }
  if (await bindable(probe)) return { local: true, added: true };
  return {
    local: false,
    command,
    reason: `after the route was added, ${probe} still cannot be bound`,
  };
}
