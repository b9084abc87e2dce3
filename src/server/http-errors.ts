// The one place where an error becomes an HTTP status. Handlers throw WasmletErrors (or let kube
// errors through); the server's error handler asks this table what to answer.
import { isWasmletError } from "../errors.ts";

const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  WASMLET_ERR_UNAUTHENTICATED: 401,
  WASMLET_ERR_FORBIDDEN: 403,
  WASMLET_ERR_NOT_FOUND: 404,
  WASMLET_ERR_BAD_REQUEST: 400,
  WASMLET_ERR_KUBE_NOT_FOUND: 404,
  WASMLET_ERR_KUBE_UNREACHABLE: 503,
  WASMLET_ERR_KUBE_UNAUTHORIZED: 503,
  WASMLET_ERR_KUBE_FORBIDDEN: 503,
};

export interface HttpFailure {
  status: number;
  /** Text for the client; internal failures say only that they happened. */
  message: string;
  /** Whether this is wasmlet's fault (logged as an error) rather than the client's. */
  internal: boolean;
}

export function httpFailure(error: unknown): HttpFailure {
  if (isWasmletError(error)) {
    const status = STATUS_BY_CODE[error.code] ?? 500;
    return {
      status,
      message: status === 500 ? "Internal Server Error" : error.message,
      internal: status >= 500,
    };
  }
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === "number" && status >= 400 && status < 500) {
    return { status, message: (error as Error).message, internal: false };
  }
  return { status: 500, message: "Internal Server Error", internal: true };
}
