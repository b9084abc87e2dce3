// What the host itself suggests as defaults: its name and its primary address.
import { readFileSync } from "node:fs";
import { hostname, networkInterfaces } from "node:os";

export interface HostDefaults {
  hostname(): string;
  /** The address of the interface holding the default route, or the first non-internal one. */
  primaryIP(): string | undefined;
}

function defaultRouteInterface(): string | undefined {
  try {
    for (const line of readFileSync("/proc/net/route", "utf8").split("\n").slice(1)) {
      const [iface, destination, , , , , , mask] = line.trim().split(/\s+/);
      if (iface && destination === "00000000" && mask === "00000000") return iface;
    }
  } catch {
    // not Linux, or /proc unavailable: fall through
  }
  return undefined;
}

function primaryIP(): string | undefined {
  const interfaces = networkInterfaces();
  const usable = (name: string) =>
    (interfaces[name] ?? []).filter(
      (a) => !a.internal && !(a.family === "IPv6" && a.address.startsWith("fe80")),
    );
  const preferred = defaultRouteInterface();
  const candidates = [
    ...(preferred ? usable(preferred) : []),
    ...Object.keys(interfaces).flatMap((name) => usable(name)),
  ];
  return (candidates.find((a) => a.family === "IPv4") ?? candidates[0])?.address;
}

export const hostDefaults: HostDefaults = {
  hostname: () => hostname().toLowerCase(),
  primaryIP,
};
