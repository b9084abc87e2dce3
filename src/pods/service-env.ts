// The environment variables a pod gets for services, as the kubelet makes them: for the
// `kubernetes` service of the default namespace always, and for every service of the pod's own
// namespace unless `enableServiceLinks: false`; headless and ExternalName services (no cluster IP)
// give none. Per service NAME (upper case, `-` → `_`): NAME_SERVICE_HOST, NAME_SERVICE_PORT,
// NAME_SERVICE_PORT_<PORTNAME>, and the Docker-link style NAME_PORT, NAME_PORT_<n>_<PROTO>{,_PROTO,
// _PORT,_ADDR}. They come after the container's own variables, which win on a clash.
import type { V1Service } from "@kubernetes/client-node";

const MASTER_SERVICES = new Set(["kubernetes"]);

function envName(name: string): string {
  return name.replaceAll("-", "_").toUpperCase();
}

function hasClusterIP(service: V1Service): boolean {
  const ip = service.spec?.clusterIP;
  return !!ip && ip !== "None";
}

function hostPort(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

export function serviceEnv(
  services: readonly V1Service[],
  namespace: string,
  enableServiceLinks: boolean,
): Map<string, string> {
  const chosen = new Map<string, V1Service>();
  for (const service of services) {
    const name = service.metadata?.name ?? "";
    if (!hasClusterIP(service)) continue;
    if (service.metadata?.namespace === "default" && MASTER_SERVICES.has(name)) {
      if (!chosen.has(name)) chosen.set(name, service);
    } else if (service.metadata?.namespace === namespace && enableServiceLinks) {
      chosen.set(name, service);
    }
  }
  const env = new Map<string, string>();
  for (const [name, service] of [...chosen].sort(([a], [b]) => a.localeCompare(b))) {
    const prefix = envName(name);
    const ip = service.spec?.clusterIP ?? "";
    const ports = service.spec?.ports ?? [];
    env.set(`${prefix}_SERVICE_HOST`, ip);
    if (ports[0]) env.set(`${prefix}_SERVICE_PORT`, String(ports[0].port));
    for (const port of ports) {
      if (port.name) env.set(`${prefix}_SERVICE_PORT_${envName(port.name)}`, String(port.port));
    }
    ports.forEach((port, index) => {
      const protocol = port.protocol ?? "TCP";
      const url = `${protocol.toLowerCase()}://${hostPort(ip, port.port)}`;
      if (index === 0) env.set(`${prefix}_PORT`, url);
      const portPrefix = `${prefix}_PORT_${port.port}_${protocol.toUpperCase()}`;
      env.set(portPrefix, url);
      env.set(`${portPrefix}_PROTO`, protocol.toLowerCase());
      env.set(`${portPrefix}_PORT`, String(port.port));
      env.set(`${portPrefix}_ADDR`, ip);
    });
  }
  return env;
}
