// Pod addresses and the ports pods claim on them, in one of two modes:
// - node: every pod's IP is the node's InternalIP and its ports are bound there, as for a pod with
//   hostNetwork on an ordinary node. Right for a wasmlet beside the kubelet on a real host. A port
//   (with its protocol) can be used by one pod at a time: a second pod asking for it is refused at
//   admission, as the kubelet refuses a hostPort conflict.
// - pod-cidr: each pod gets an address of its own from the node's pod CIDR, made local to this
//   host (local-route.ts), so replicas on one node can all serve port 8080. `wasmlet dev` uses a
//   block of 127.0.0.0/8, which is local without privileges.
// Only TCP ports are served (guests get listening sockets for them); UDP and SCTP ports are
// admitted with a warning.
import { networkInterfaces } from "node:os";
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import type { ContainerNetwork, ListenPort, OutboundPolicy } from "../runtime/types.ts";
import { type Cidr, cidrContains, podAddress, podAddressCount } from "./cidr.ts";
import { networkError } from "./errors.ts";

export type PodNetworkMode = "node" | "pod-cidr";

export interface PodNetworkOptions {
  mode: PodNetworkMode;
  nodeIP: string;
  /** The pod-cidr mode's block (or given later by useCidr, once the Node's is known). */
  cidr?: Cidr;
  /** Connections one container may hold at once. */
  maxConnections?: number;
  /** wasmlet's own ports (kubelet API, healthz): guests may not connect to them on this host. */
  wasmletPorts?: number[];
}

export interface NetworkWarning {
  reason: string;
  message: string;
  fieldPath: string;
}

export type NetworkAdmission =
  | { admitted: true; podIPs: string[]; warnings: NetworkWarning[] }
  | { admitted: false; reason: string; message: string };

interface Claim {
  uid: string;
  pod: string;
}

function podName(pod: V1Pod): string {
  return `${pod.metadata?.namespace ?? "default"}/${pod.metadata?.name ?? ""}`;
}

function containersOf(pod: V1Pod): { container: V1Container; field: string }[] {
  return [
    ...(pod.spec?.initContainers ?? []).map((container) => ({
      container,
      field: `spec.initContainers{${container.name}}`,
    })),
    ...(pod.spec?.containers ?? []).map((container) => ({
      container,
      field: `spec.containers{${container.name}}`,
    })),
  ];
}

export class PodNetwork {
  readonly mode: PodNetworkMode;
  readonly nodeIP: string;
  readonly maxConnections: number;
  readonly #wasmletPorts: number[];
  #cidr: Cidr | undefined;
  /** Pod uid → its address. */
  readonly #addresses = new Map<string, string>();
  readonly #used = new Set<string>();
  /** `ip port/protocol` → the pod holding it. */
  readonly #claims = new Map<string, Claim>();
  /** Next address index to try: addresses are handed out round the block, not reused at once. */
  #cursor = 0;

  constructor(options: PodNetworkOptions) {
    this.mode = options.mode;
    this.nodeIP = options.nodeIP;
    this.#cidr = options.cidr;
    this.maxConnections = options.maxConnections ?? 1024;
    this.#wasmletPorts = options.wasmletPorts ?? [];
  }

  /** Everything a container's sockets need: its listeners, its limit, where it may connect. */
  containerNetwork(uid: string, container: V1Container): ContainerNetwork {
    return {
      listen: this.listenPorts(uid, container),
      maxConnections: this.maxConnections,
      outbound: this.outboundPolicy(),
    };
  }

  /** See src/runtime/outbound-policy.ts: pods' loopback addresses are the only local ones reachable. */
  outboundPolicy(): OutboundPolicy {
    const podLoopback: string[] = [];
    if (this.#cidr?.text.startsWith("127.")) podLoopback.push(this.#cidr.text);
    if (this.mode === "node" && this.nodeIP.startsWith("127.")) podLoopback.push(this.nodeIP);
    const hostAddresses = Object.values(networkInterfaces())
      .flat()
      .flatMap((i) => (i ? [i.address] : []));
    return { podLoopback, hostAddresses, wasmletPorts: this.#wasmletPorts };
  }

  get cidr(): Cidr | undefined {
    return this.#cidr;
  }

  /** Sets the pod-cidr mode's block (before the first pod is admitted). */
  useCidr(cidr: Cidr): void {
    this.#cidr = cidr;
  }

  /** The pod's address, once admitted. */
  podIP(uid: string): string | undefined {
    return this.#addresses.get(uid);
  }

  /**
   * Gives the pod its address (the one its status already shows when wasmlet restarts and it is
   * still free) and claims its TCP ports; or refuses it with the reason.
   */
  admit(pod: V1Pod): NetworkAdmission {
    const uid = pod.metadata?.uid ?? "";
    const warnings: NetworkWarning[] = [];
    const wanted: { port: number; field: string }[] = [];
    for (const { container, field } of containersOf(pod)) {
      for (const port of container.ports ?? []) {
        const protocol = port.protocol ?? "TCP";
        if (protocol !== "TCP") {
          warnings.push({
            reason: "PortNotServed",
            message: `port ${port.containerPort}/${protocol} is not served: wasmlet gives guests TCP listeners only`,
            fieldPath: field,
          });
          continue;
        }
        if (port.hostPort && port.hostPort !== port.containerPort) {
          return {
            admitted: false,
            reason: "HostPortNotSupported",
            message: `container "${container.name}" maps hostPort ${port.hostPort} to containerPort ${port.containerPort}; wasmlet does not forward ports, so hostPort must be unset or equal to containerPort`,
          };
        }
        if (wanted.some((w) => w.port === port.containerPort)) {
          return {
            admitted: false,
            reason: "PortConflict",
            message: `port ${port.containerPort}/TCP is declared twice in the pod (all its containers share one address)`,
          };
        }
        wanted.push({ port: port.containerPort, field });
      }
    }
    const ip = this.#address(pod, uid);
    if (ip === undefined) {
      return {
        admitted: false,
        reason: "OutOfPodAddresses",
        message: `every address of the pod CIDR ${this.cidr?.text} is in use`,
      };
    }
    for (const { port } of wanted) {
      const holder = this.#claims.get(`${ip} ${port}/TCP`);
      if (holder && holder.uid !== uid) {
        this.#free(uid);
        return {
          admitted: false,
          reason: "NodePorts",
          message: `port ${port}/TCP on ${ip} is already used by pod ${holder.pod} (node network mode: pods share the node's address, so each port serves one pod)`,
        };
      }
    }
    for (const { port } of wanted)
      this.#claims.set(`${ip} ${port}/TCP`, { uid, pod: podName(pod) });
    return { admitted: true, podIPs: [ip], warnings };
  }

  /** The listeners a container gets: its TCP ports on the pod's address. */
  listenPorts(uid: string, container: V1Container): ListenPort[] {
    const host = this.#addresses.get(uid);
    if (!host) return [];
    return (container.ports ?? [])
      .filter((p) => (p.protocol ?? "TCP") === "TCP")
      .map((p) => ({ name: p.name || String(p.containerPort), host, port: p.containerPort }));
  }

  /** The pod is gone (or finished): its address and ports are free again. */
  release(uid: string): void {
    this.#free(uid);
  }

  #free(uid: string): void {
    for (const [key, claim] of this.#claims) if (claim.uid === uid) this.#claims.delete(key);
    const ip = this.#addresses.get(uid);
    this.#addresses.delete(uid);
    if (ip && this.mode === "pod-cidr") this.#used.delete(ip);
  }

  #address(pod: V1Pod, uid: string): string | undefined {
    const known = this.#addresses.get(uid);
    if (known) return known;
    if (this.mode === "node") {
      this.#addresses.set(uid, this.nodeIP);
      return this.nodeIP;
    }
    const cidr = this.#cidr;
    if (!cidr)
      throw networkError("WASMLET_ERR_POD_CIDR", "the pod-cidr network mode has no pod CIDR yet");
    const previous = pod.status?.podIP;
    if (previous && cidrContains(cidr, previous) && !this.#used.has(previous)) {
      return this.#take(uid, previous);
    }
    const count = podAddressCount(cidr);
    for (let i = 0; i < count; i++) {
      const ip = podAddress(cidr, (this.#cursor + i) % count);
      if (this.#used.has(ip)) continue;
      this.#cursor = (this.#cursor + i + 1) % count;
      return this.#take(uid, ip);
    }
    return undefined;
  }

  #take(uid: string, ip: string): string {
    this.#used.add(ip);
    this.#addresses.set(uid, ip);
    return ip;
  }
}
