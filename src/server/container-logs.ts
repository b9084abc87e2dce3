// GET /containerLogs/{namespace}/{pod}/{container}: what `kubectl logs` reaches through the API
// server, answered like the kubelet's getContainerLogs (pkg/kubelet/server/server.go):
//
// - the query decodes as the API server encodes PodLogOptions: booleans are false only when
//   absent, `false` or `0` (any other value, even empty, is true); integers are Go's ParseInt
//   (a bad one → 400 "Unable to decode query"); `sinceTime` is RFC 3339 (empty = unset); the legacy
//   `tail=N|all` still works. Only the first value of a repeated parameter counts.
// - then validated like ValidatePodLogOptions: tailLines ≥ 0, limitBytes ≥ 1, sinceSeconds ≥ 1,
//   not sinceSeconds with sinceTime, stream Stdout|Stderr|All (All by default) and not a single
//   stream with tailLines. The kubelet answers 422 "Invalid request." here; wasmlet answers 400
//   (WASMLET_ERR_BAD_REQUEST) naming the field. The API server validates first, so kubectl never
//   sees either.
// - an unknown pod or container → 404 with the kubelet's text; a container with no log to show
//   (`--previous` with no terminated instance, still waiting to start) → 400 with the kubelet's text.
// - the log streams as text/plain with chunked transfer, each chunk written as soon as read; a
//   follow ends when the container has exited and its log is drained, or when the client leaves.
import { Readable } from "node:stream";
import type { FastifyReply, FastifyRequest } from "fastify";
import { parseTimestamp } from "../logs/cri-format.ts";
import { readContainerLog } from "../logs/log-reader.ts";
import { epochNanoseconds } from "../logs/log-writer.ts";
import { serverError } from "./errors.ts";
import type { KubeletRoute } from "./server.ts";

/** What the pod controller knows about a container's log. */
export type ContainerLogTarget =
  | {
      kind: "log";
      /** The instance's CRI log file (rotated files `<logPath>.<n>` beside it). */
      logPath: string;
      /** Whether the instance is running; a follow on one that is not reads to the end and stops. */
      running: boolean;
      /** Settles once the running instance has exited and its log writer is closed. */
      exited?: PromiseLike<unknown>;
    }
  | { kind: "pod-not-found" }
  | { kind: "container-not-found" }
  /** `previous=true` and no terminated instance of the container was kept. */
  | { kind: "no-previous" }
  /** No instance has started yet; `reason` is the waiting reason (ContainerCreating, ErrImagePull…). */
  | { kind: "waiting"; reason: string };

export interface ContainerLogsDeps {
  /** The log of the current (or, with `previous`, the last terminated) instance of a container. */
  resolve(
    namespace: string,
    pod: string,
    container: string,
    previous: boolean,
  ): ContainerLogTarget | Promise<ContainerLogTarget>;
  /** Nanoseconds since the epoch, for sinceSeconds (default: the clock the log writer uses). */
  now?: () => bigint;
}

export type LogStreamSelection = "Stdout" | "Stderr" | "All";

/** PodLogOptions as the kubelet decodes them from the query. */
export interface ContainerLogQuery {
  follow: boolean;
  previous: boolean;
  timestamps: boolean;
  tailLines: number | undefined;
  limitBytes: number | undefined;
  sinceSeconds: number | undefined;
  /** Present: `sinceTime` was given; `undefined` inside when it was empty (the zero time). */
  sinceTime: { ns: bigint | undefined } | undefined;
  stream: LogStreamSelection;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const NS_PER_SECOND = 1_000_000_000n;

function first(params: URLSearchParams, name: string): string | undefined {
  return params.has(name) ? params.getAll(name)[0] : undefined;
}

function decodeFailure(detail: string): Error {
  return serverError("WASMLET_ERR_BAD_REQUEST", `Unable to decode query: ${detail}`);
}

function decodeBool(params: URLSearchParams, name: string): boolean {
  const value = first(params, name);
  if (value === undefined) return false;
  const lower = value.toLowerCase();
  return !(lower === "false" || lower === "0");
}

function decodeInt(params: URLSearchParams, name: string): number | undefined {
  const value = first(params, name);
  if (value === undefined) return undefined;
  if (!/^[+-]?\d+$/.test(value))
    throw decodeFailure(`${name}: invalid syntax: ${JSON.stringify(value)}`);
  const big = BigInt(value);
  if (big < INT64_MIN || big > INT64_MAX) {
    throw decodeFailure(`${name}: value out of range: ${JSON.stringify(value)}`);
  }
  return Number(big);
}

/** Decodes and validates the query like the kubelet; throws WASMLET_ERR_BAD_REQUEST. */
export function parseContainerLogQuery(query: URLSearchParams): ContainerLogQuery {
  const params = new URLSearchParams(query);
  const tail = first(params, "tail");
  if (tail) {
    if (tail === "all") params.delete("tailLines");
    else params.set("tailLines", tail);
  }
  let sinceTime: ContainerLogQuery["sinceTime"];
  const sinceText = first(params, "sinceTime");
  if (sinceText !== undefined) {
    if (sinceText === "" || sinceText === "null") {
      sinceTime = { ns: undefined };
    } else {
      const ns = parseTimestamp(sinceText);
      if (ns === undefined) {
        throw decodeFailure(`sinceTime: not an RFC 3339 time: ${JSON.stringify(sinceText)}`);
      }
      sinceTime = { ns };
    }
  }
  const options: ContainerLogQuery = {
    follow: decodeBool(params, "follow"),
    previous: decodeBool(params, "previous"),
    timestamps: decodeBool(params, "timestamps"),
    sinceSeconds: decodeInt(params, "sinceSeconds"),
    tailLines: decodeInt(params, "tailLines"),
    limitBytes: decodeInt(params, "limitBytes"),
    sinceTime,
    stream: "All",
  };
  const stream = first(params, "stream");

  const problems: string[] = [];
  if (options.tailLines !== undefined && options.tailLines < 0) {
    problems.push(
      `tailLines: Invalid value: ${options.tailLines}: must be greater than or equal to 0`,
    );
  }
  if (options.limitBytes !== undefined && options.limitBytes < 1) {
    problems.push(`limitBytes: Invalid value: ${options.limitBytes}: must be greater than 0`);
  }
  if (options.sinceSeconds !== undefined && sinceTime !== undefined) {
    problems.push("Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified");
  } else if (options.sinceSeconds !== undefined && options.sinceSeconds < 1) {
    problems.push(`sinceSeconds: Invalid value: ${options.sinceSeconds}: must be greater than 0`);
  }
  if (stream !== undefined) {
    if (stream === "Stdout" || stream === "Stderr" || stream === "All") {
      options.stream = stream;
      if (options.tailLines !== undefined && stream !== "All") {
        problems.push(
          "Forbidden: `tailLines` and specific `stream` are mutually exclusive for now",
        );
      }
    } else {
      problems.push(
        `stream: Unsupported value: ${JSON.stringify(stream)}: supported values: "All", "Stderr", "Stdout"`,
      );
    }
  }
  if (problems.length > 0) {
    throw serverError("WASMLET_ERR_BAD_REQUEST", `Invalid request: ${problems.join(", ")}`);
  }
  return options;
}

/** The time bound of a query in nanoseconds since the epoch, as the kubelet's NewLogOptions. */
export function sinceBound(query: ContainerLogQuery, nowNs: bigint): bigint | undefined {
  if (query.sinceSeconds !== undefined) return nowNs - BigInt(query.sinceSeconds) * NS_PER_SECOND;
  return query.sinceTime?.ns;
}

/** The kubelet's message for a container that has no log to show yet. */
function waitingMessage(container: string, pod: string, reason: string): string {
  const prefix = `container ${JSON.stringify(container)} in pod ${JSON.stringify(pod)} is waiting to start`;
  switch (reason) {
    case "":
      return `${prefix} - no logs yet`;
    case "ErrImagePull":
      return `${prefix}: image can't be pulled`;
    case "ImagePullBackOff":
      return `${prefix}: trying and failing to pull image`;
    default:
      return `${prefix}: ${reason}`;
  }
}

interface LogParams {
  namespace: string;
  pod: string;
  container: string;
}

export function containerLogsRoute(deps: ContainerLogsDeps): KubeletRoute {
  const now = deps.now ?? epochNanoseconds;
  return {
    method: "GET",
    url: "/containerLogs/:namespace/:pod/:container",
    async handler(request: FastifyRequest, reply: FastifyReply) {
      const { namespace, pod, container } = request.params as LogParams;
      if (!pod) throw serverError("WASMLET_ERR_BAD_REQUEST", "Missing podID.");
      if (!container) throw serverError("WASMLET_ERR_BAD_REQUEST", "Missing container name.");
      if (!namespace) throw serverError("WASMLET_ERR_BAD_REQUEST", "Missing podNamespace.");
      const search = request.url.indexOf("?");
      const query = parseContainerLogQuery(
        new URLSearchParams(search < 0 ? "" : request.url.slice(search + 1)),
      );
      const since = sinceBound(query, now());

      const target = await deps.resolve(namespace, pod, container, query.previous);
      const [c, p] = [JSON.stringify(container), JSON.stringify(pod)];
      switch (target.kind) {
        case "pod-not-found":
          throw serverError("WASMLET_ERR_NOT_FOUND", `pod ${p} does not exist`);
        case "container-not-found":
          throw serverError("WASMLET_ERR_NOT_FOUND", `container ${c} not found in pod ${p}`);
        case "no-previous":
          throw serverError(
            "WASMLET_ERR_BAD_REQUEST",
            `previous terminated container ${c} in pod ${p} not found`,
          );
        case "waiting":
          throw serverError(
            "WASMLET_ERR_BAD_REQUEST",
            waitingMessage(container, pod, target.reason),
          );
        case "log":
          break;
      }

      // Ends the read when the client goes away (and wakes a follower waiting for new lines).
      const abort = new AbortController();
      reply.raw.once("close", () => abort.abort());
      const log = readContainerLog(target.logPath, {
        follow: query.follow,
        tailLines: query.tailLines,
        limitBytes: query.limitBytes,
        sinceNs: since,
        timestamps: query.timestamps,
        stream:
          query.stream === "All" ? undefined : query.stream === "Stdout" ? "stdout" : "stderr",
        signal: abort.signal,
        exited: target.running ? target.exited : Promise.resolve(),
      });
      return reply
        .code(200)
        .header("content-type", "text/plain; charset=utf-8")
        .send(Readable.from(log, { objectMode: false }));
    },
  };
}
