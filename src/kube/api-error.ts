// Turns what the client library throws (ApiException with an HTTP code, or a network error from
// fetch) into one WasmletError with a stable code and the API server's own message, and answers
// the questions callers ask of an error: not found? conflict? worth retrying?
import { ApiException } from "@kubernetes/client-node";
import { isWasmletError, type WasmletError } from "../errors.ts";
import { kubeError } from "./errors.ts";

/** The HTTP status of an API error, or undefined for network errors. */
export function statusCode(error: unknown): number | undefined {
  if (error instanceof ApiException) return error.code;
  if (typeof error === "object" && error !== null) {
    const e = error as { code?: unknown; statusCode?: unknown; cause?: unknown };
    if (typeof e.statusCode === "number") return e.statusCode;
    if (isWasmletError(error) && e.cause !== undefined) return statusCode(e.cause);
  }
  return undefined;
}

/** The API server's Status message, when the body is one. */
function serverMessage(error: unknown): string | undefined {
  if (!(error instanceof ApiException)) return undefined;
  const body: unknown = error.body;
  let parsed: unknown = body;
  if (typeof body === "string") {
    try {
      parsed = JSON.parse(body);
    } catch {
      return body.trim().slice(0, 500) || undefined;
    }
  }
  if (
    parsed &&
    typeof parsed === "object" &&
    typeof (parsed as { message?: unknown }).message === "string"
  ) {
    return (parsed as { message: string }).message;
  }
  return undefined;
}

function networkReason(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current && depth < 5; depth++) {
    if (current instanceof Error) {
      const code = (current as { code?: unknown }).code;
      parts.push(typeof code === "string" ? `${current.message} (${code})` : current.message);
      current = (current as { cause?: unknown }).cause;
    } else {
      parts.push(String(current));
      break;
    }
  }
  return [...new Set(parts)].join(": ");
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "EPROTO",
  "ECONNABORTED",
]);

/** Whether the error (or one of its causes) says the API server could not be reached or timed out. */
export function isNetworkError(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; current && typeof current === "object" && depth < 6; depth++) {
    const e = current as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown };
    if (
      typeof e.code === "string" &&
      (NETWORK_CODES.has(e.code) ||
        e.code.startsWith("UND_ERR") ||
        e.code.startsWith("ERR_SSL") ||
        e.code.startsWith("ERR_TLS"))
    ) {
      return true;
    }
    if (e.name === "AbortError" || e.name === "TimeoutError") return true;
    if (e.name === "TypeError" && e.message === "fetch failed") return true;
    if (e.name === "FetchError" || e.name === "SocketError") return true;
    current = e.cause;
  }
  return false;
}

/** One WasmletError for any failure of an API call; `doing` says what was attempted. */
export function apiError(error: unknown, doing: string): WasmletError {
  if (isWasmletError(error)) return error;
  const code = statusCode(error);
  const detail = serverMessage(error);
  const text = (status: string) => `${doing}: ${status}${detail ? `: ${detail}` : ""}`;
  switch (code) {
    case undefined:
      if (isNetworkError(error)) {
        return kubeError(
          "WASMLET_ERR_KUBE_UNREACHABLE",
          `${doing}: the API server did not answer: ${networkReason(error)}`,
          {
            cause: error,
          },
        );
      }
      return kubeError("WASMLET_ERR_KUBE_API", `${doing}: ${networkReason(error)}`, {
        cause: error,
      });
    case 401:
      return kubeError("WASMLET_ERR_KUBE_UNAUTHORIZED", text("401 Unauthorized"), { cause: error });
    case 403:
      return kubeError("WASMLET_ERR_KUBE_FORBIDDEN", text("403 Forbidden"), { cause: error });
    case 404:
      return kubeError("WASMLET_ERR_KUBE_NOT_FOUND", text("404 Not Found"), { cause: error });
    case 409:
      return kubeError("WASMLET_ERR_KUBE_CONFLICT", text("409 Conflict"), { cause: error });
    case 410:
      return kubeError("WASMLET_ERR_KUBE_GONE", text("410 Gone"), { cause: error });
    case 400:
    case 422:
      return kubeError("WASMLET_ERR_KUBE_INVALID", text(`${code} Invalid`), { cause: error });
    default:
      return kubeError("WASMLET_ERR_KUBE_API", text(`HTTP ${code}`), { cause: error });
  }
}

export const isNotFound = (error: unknown): boolean => statusCode(error) === 404;
export const isConflict = (error: unknown): boolean => statusCode(error) === 409;
export const isAlreadyExists = isConflict;

/**
 * Whether trying again later can help on its own: network trouble, timeouts, 429 and 5xx. 401 and
 * 403 need a person (new credentials, an RBAC binding), so long-running loops keep retrying them
 * but startup reports them at once. wasmlet's own errors (a taken node name) are never transient.
 */
export function isTransient(error: unknown): boolean {
  if (isWasmletError(error) && !error.code.startsWith("WASMLET_ERR_KUBE_")) return false;
  if (isWasmletError(error) && error.code === "WASMLET_ERR_KUBE_UNREACHABLE") return true;
  const code = statusCode(error);
  if (code === undefined) return isNetworkError(error);
  return code === 429 || code >= 500;
}
