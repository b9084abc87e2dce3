// Node's socket errors in the words of Go's net and net/http packages, which the kubelet's probe
// and hook messages quote ("dial tcp 10.0.0.5:8080: connect: connection refused"): users, docs and
// alerts match on those texts. Errors without a well-known Go wording keep Node's message.
import type { Socket } from "node:net";
import { messageOf } from "./format.ts";
import { joinHostPort } from "./probe-target.ts";

function codeOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** A connection that could not be opened to `host` at `address` (host:port). */
export function dialErrorText(error: unknown, host: string, address: string): string {
  switch (codeOf(error)) {
    case "ECONNREFUSED":
      return `dial tcp ${address}: connect: connection refused`;
    case "EHOSTUNREACH":
      return `dial tcp ${address}: connect: no route to host`;
    case "ENETUNREACH":
      return `dial tcp ${address}: connect: network is unreachable`;
    case "ETIMEDOUT":
      return `dial tcp ${address}: i/o timeout`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_NONAME":
      return `dial tcp: lookup ${host}: no such host`;
    default:
      return messageOf(error);
  }
}

/** An open connection that failed before the response was complete. */
export function connectionErrorText(error: unknown, socket: Socket | undefined): string {
  const message = messageOf(error);
  // Node's words for a peer that closed the connection without answering; Go reads an EOF.
  if (message === "socket hang up") return "EOF";
  if (codeOf(error) === "ECONNRESET") {
    const ends =
      socket?.localAddress && socket.remoteAddress
        ? `read tcp ${joinHostPort(socket.localAddress, socket.localPort ?? 0)}->${joinHostPort(socket.remoteAddress, socket.remotePort ?? 0)}: `
        : "";
    return `${ends}read: connection reset by peer`;
  }
  return message;
}
