// IPv4 CIDR arithmetic for pod addresses: parsing, membership, and the n-th usable address.
import { isIPv4 } from "node:net";
import { networkError } from "./errors.ts";

export interface Cidr {
  /** The network address as an unsigned 32-bit number. */
  base: number;
  prefix: number;
  /** Addresses in the block. */
  size: number;
  text: string;
}

export function ipv4ToNumber(ip: string): number {
  return ip.split(".").reduce((n, octet) => n * 256 + Number(octet), 0) >>> 0;
}

export function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/** Parses `a.b.c.d/n`; throws with a message naming what is wrong. */
export function parseCidr(text: string): Cidr {
  const [ip, bits, extra] = text.split("/");
  const prefix = Number(bits);
  if (extra !== undefined || !ip || !isIPv4(ip) || !/^\d+$/.test(bits ?? "") || prefix > 32) {
    throw networkError(
      "WASMLET_ERR_CIDR",
      `${JSON.stringify(text)} is not an IPv4 CIDR (e.g. 10.244.1.0/24)`,
    );
  }
  const size = 2 ** (32 - prefix);
  const base = ipv4ToNumber(ip);
  if (base % size !== 0) {
    throw networkError(
      "WASMLET_ERR_CIDR",
      `${JSON.stringify(text)} has host bits set: the block starts at ${numberToIpv4(base - (base % size))}/${prefix}`,
    );
  }
  return { base, prefix, size, text };
}

/** A block pods get addresses from: at least one besides network, broadcast and first host. */
export function parsePodCidr(text: string): Cidr {
  const cidr = parseCidr(text);
  if (cidr.prefix > 29)
    throw networkError(
      "WASMLET_ERR_CIDR",
      `${JSON.stringify(text)} is too small for pods: use a prefix of at most /29`,
    );
  return cidr;
}

export function cidrContains(cidr: Cidr, ip: string): boolean {
  if (!isIPv4(ip)) return false;
  const n = ipv4ToNumber(ip);
  return n >= cidr.base && n < cidr.base + cidr.size;
}

/**
 * The usable pod addresses of a block, in order: neither the network nor the broadcast address,
 * nor the first host address (a gateway's by convention, and 127.0.0.1 in a loopback block).
 */
export function podAddressCount(cidr: Cidr): number {
  return cidr.size - 3;
}

export function podAddress(cidr: Cidr, index: number): string {
  return numberToIpv4(cidr.base + 2 + index);
}
