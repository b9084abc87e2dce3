// One HTTP GET as the kubelet sends it for an httpGet probe or lifecycle hook
// (pkg/probe/http/request.go and http.go, and the hook client built in pkg/kubelet/kubelet.go):
// the request built from the action, HTTPS without certificate verification, redirects followed
// up to 10 times while they stay on the first host (a redirect elsewhere ends the exchange with
// that 3xx response), one deadline for the whole exchange, and errors worded like Go's net/http:
// `Get "<url>": <cause>`.

import {
  type ClientRequest,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
} from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP, type Socket } from "node:net";
import type { V1Container, V1HTTPGetAction } from "@kubernetes/client-node";
import { messageOf } from "./format.ts";
import { connectionErrorText, dialErrorText } from "./go-net-errors.ts";
import { joinHostPort, kubeUserAgent, resolveContainerPort } from "./probe-target.ts";

/** The kubelet reads at most this much of a response body. */
export const MAX_RESPONSE_BODY_BYTES = 10 * 1024;
const MAX_REDIRECTS = 10;
/** The statuses Go's client follows when they carry a Location. */
const FOLLOWED = new Set([301, 302, 303, 307, 308]);

export interface HttpGetRequest {
  url: URL;
  /** host:port, as Go's URL.Host: the Host header unless the action sets one. */
  authority: string;
  /** The URL as Go prints it in errors (an empty path stays empty, the port is always there). */
  display: string;
  /** Header name in Go's canonical form → its values, in the order the action lists them. */
  headers: Map<string, string[]>;
}

export type HttpGetOutcome =
  | { kind: "response"; status: number; body: string; bodyError?: string }
  | {
      kind: "error";
      message: string;
      /** The TLS handshake met something that is not TLS (maybe plain HTTP): see net-hooks.ts. */
      notTls?: boolean;
    };

export interface HttpGetOptions {
  /** Deadline for the whole exchange, redirects and body included (Go's http.Client.Timeout). */
  timeoutMs?: number;
  /** Ends the exchange early. */
  signal?: AbortSignal;
  /** Read up to MAX_RESPONSE_BODY_BYTES of the final response's body (probes); hooks drop it. */
  readBody: boolean;
  /** Ask for gzip like Go's default transport (hooks); the probe transport disables that. */
  acceptGzip?: boolean;
}

/** NewRequestForHTTPGetAction: throws (port not found, bad URL) when there is no request to send. */
export function httpGetRequest(
  action: V1HTTPGetAction,
  container: V1Container,
  podIP: string,
  purpose: "probe" | "lifecycle",
): HttpGetRequest {
  const scheme = (action.scheme ?? "").toLowerCase() || "http";
  const host = action.host || podIP;
  const port = resolveContainerPort(action.port, container);
  const authority = joinHostPort(host, port);
  const origin = `${scheme}://${authority}`;
  const path = action.path ?? "";
  // Like Go's formatURL: only the path, query and fragment of `path` count.
  const parsed = new URL(path, "http://path.invalid");
  const rest = `${parsed.pathname}${parsed.search}${parsed.hash}`;
  const url = new URL(rest, origin);
  const headers = new Map<string, string[]>();
  for (const { name, value } of action.httpHeaders ?? []) {
    const key = canonicalHeaderKey(name);
    headers.set(key, [...(headers.get(key) ?? []), value]);
  }
  if (!headers.has("User-Agent")) headers.set("User-Agent", [kubeUserAgent(purpose)]);
  if (!headers.has("Accept")) headers.set("Accept", ["*/*"]);
  else if (headers.get("Accept")?.[0] === "") headers.delete("Accept");
  return { url, authority, display: path === "" ? origin : `${origin}${rest}`, headers };
}

/** Go's textproto.CanonicalMIMEHeaderKey: `x-custom-header` → `X-Custom-Header`. */
function canonicalHeaderKey(name: string): string {
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) return name;
  return name
    .toLowerCase()
    .replace(/(^|-)([a-z])/g, (_, dash, letter) => dash + letter.toUpperCase());
}

export async function httpGet(
  request: HttpGetRequest,
  options: HttpGetOptions,
): Promise<HttpGetOutcome> {
  const deadline = new Deadline(options.timeoutMs, options.signal);
  try {
    let url = request.url;
    let display = request.display;
    let urlHost = request.authority;
    let hostHeader = request.headers.get("Host")?.[0] ?? "";
    let referer: string | undefined;
    for (let sent = 1; ; sent++) {
      const headers = outgoingHeaders(request, hostHeader || urlHost, referer, options.acceptGzip);
      const hop = await send(url, headers, deadline);
      if (hop.kind === "error") {
        return {
          kind: "error",
          message: `Get ${JSON.stringify(display)}: ${hop.message}`,
          ...(hop.notTls ? { notTls: true } : {}),
        };
      }
      const { response } = hop;
      const status = response.statusCode ?? 0;
      const location = response.headers.location;
      if (!FOLLOWED.has(status) || !location) return await finish(response, options, deadline);
      let next: URL;
      try {
        next = new URL(location, url);
      } catch (error) {
        response.destroy();
        return {
          kind: "error",
          message: `Get ${JSON.stringify(display)}: failed to parse Location header ${JSON.stringify(location)}: ${messageOf(error)}`,
        };
      }
      // The kubelet does not follow redirects to another host: the 3xx response is the answer.
      if (next.hostname !== request.url.hostname) return await finish(response, options, deadline);
      response.destroy();
      if (sent >= MAX_REDIRECTS) {
        return {
          kind: "error",
          message: `Get ${JSON.stringify(location)}: stopped after ${MAX_REDIRECTS} redirects`,
        };
      }
      // A custom Host header survives relative redirects only (Go's client, issue 22233).
      const relative = !/^[a-z][a-z0-9+.-]*:/i.test(location);
      hostHeader = hostHeader !== "" && hostHeader !== urlHost && relative ? hostHeader : "";
      const explicitReferer = request.headers.get("Referer")?.[0];
      referer =
        url.protocol === "https:" && next.protocol === "http:"
          ? undefined
          : explicitReferer || display;
      url = next;
      urlHost = next.host;
      display = next.href;
    }
  } finally {
    deadline.dispose();
  }
}

function outgoingHeaders(
  request: HttpGetRequest,
  host: string,
  referer: string | undefined,
  acceptGzip: boolean | undefined,
): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, values] of request.headers) {
    // Go writes Host and User-Agent once, from their first value; an empty User-Agent not at all.
    if (name === "Host" || name === "User-Agent") continue;
    out[name] = values.length === 1 ? values[0] : values;
  }
  const agent = request.headers.get("User-Agent")?.[0];
  if (agent) out["User-Agent"] = agent;
  out.Host = host;
  if (referer !== undefined) out.Referer = referer;
  if (acceptGzip && !request.headers.has("Accept-Encoding") && !request.headers.has("Range")) {
    out["Accept-Encoding"] = "gzip";
  }
  return out;
}

type Hop =
  | { kind: "response"; response: IncomingMessage }
  | { kind: "error"; message: string; notTls?: boolean };

function send(url: URL, headers: OutgoingHttpHeaders, deadline: Deadline): Promise<Hop> {
  return new Promise((resolve) => {
    const tls = url.protocol === "https:";
    if (!tls && url.protocol !== "http:") {
      resolve({
        kind: "error",
        message: `unsupported protocol scheme ${JSON.stringify(url.protocol.slice(0, -1))}`,
      });
      return;
    }
    const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = Number(url.port) || (tls ? 443 : 80);
    const address = joinHostPort(hostname, port);
    let socket: Socket | undefined;
    let connected = false;
    let request: ClientRequest;
    try {
      request = (tls ? httpsRequest : httpRequest)({
        hostname,
        port,
        path: `${url.pathname}${url.search}`,
        method: "GET",
        headers,
        agent: false,
        // Not verified, as the kubelet's; SNI from the URL's host, never from a Host header.
        ...(tls ? { rejectUnauthorized: false, servername: isIP(hostname) ? "" : hostname } : {}),
      });
    } catch (error) {
      resolve({ kind: "error", message: messageOf(error) });
      return;
    }
    deadline.watch(request);
    request.on("socket", (opened) => {
      socket = opened;
      opened.once("connect", () => {
        connected = true;
      });
    });
    request.on("response", (response) => resolve({ kind: "response", response }));
    request.on("error", (error) => {
      const ended = deadline.ended;
      resolve({
        kind: "error",
        message:
          ended === "timeout"
            ? "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            : ended === "canceled"
              ? "context canceled"
              : connected
                ? connectionErrorText(error, socket)
                : dialErrorText(error, hostname, address),
        ...(tls && /wrong version number/i.test(messageOf(error)) ? { notTls: true } : {}),
      });
    });
    request.end();
  });
}

async function finish(
  response: IncomingMessage,
  options: HttpGetOptions,
  deadline: Deadline,
): Promise<HttpGetOutcome> {
  const status = response.statusCode ?? 0;
  if (!options.readBody) {
    response.destroy();
    return { kind: "response", status, body: "" };
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let bodyError: string | undefined;
  deadline.watch(response);
  try {
    for await (const chunk of response as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      // utilio.ReadAtMost: more than the limit is not an error, the rest is not read.
      if (size >= MAX_RESPONSE_BODY_BYTES) break;
    }
  } catch (error) {
    const ended = deadline.ended;
    bodyError =
      ended === "timeout"
        ? "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
        : ended === "canceled"
          ? "context canceled"
          : messageOf(error) === "aborted"
            ? "unexpected EOF"
            : connectionErrorText(error, response.socket ?? undefined);
  }
  const body = Buffer.concat(chunks).subarray(0, MAX_RESPONSE_BODY_BYTES).toString();
  return { kind: "response", status, body, ...(bodyError === undefined ? {} : { bodyError }) };
}

/** One timeout and one cancellation for all the requests of an exchange. */
class Deadline {
  ended: "timeout" | "canceled" | undefined;
  /** The request, then the response body, that the deadline or cancellation ends. */
  #current: ClientRequest | IncomingMessage | undefined;
  readonly #timer: NodeJS.Timeout | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = () => this.#end("canceled");

  constructor(timeoutMs: number | undefined, signal: AbortSignal | undefined) {
    if (timeoutMs !== undefined) {
      this.#timer = setTimeout(() => this.#end("timeout"), Math.max(0, timeoutMs));
    }
    this.#signal = signal;
    if (signal?.aborted) this.ended = "canceled";
    else signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  watch(stream: ClientRequest | IncomingMessage): void {
    this.#current = stream;
    if (this.ended) stream.destroy(new Error(this.ended));
  }

  dispose(): void {
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener("abort", this.#onAbort);
  }

  #end(reason: "timeout" | "canceled"): void {
    if (this.ended) return;
    this.ended = reason;
    this.#current?.destroy(new Error(reason));
  }
}
