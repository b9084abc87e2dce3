// wasmlet's one error shape. Every module declares its codes in its own `errors.ts` with
// `defineErrors`; `docs/errors.md` lists every code (a unit test keeps the two in step). Match on
// `code`, never on the class: errors lose their class crossing a worker boundary.

export interface ErrorOptions {
  hint?: string;
  cause?: unknown;
}

export class WasmletError extends Error {
  readonly code: string;
  readonly hint: string | undefined;

  constructor(code: string, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "WasmletError";
    this.code = code;
    this.hint = options.hint;
  }

  /** The plain form that crosses worker boundaries and goes into logs. */
  toJSON(): { code: string; message: string; hint?: string } {
    return this.hint === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, hint: this.hint };
  }
}

export interface ErrorDefinition {
  /** What the code means, for docs/errors.md. */
  description: string;
  /** Default hint shown to users, if any. */
  hint?: string;
}

const registry = new Map<string, ErrorDefinition>();

/**
 * Registers a module's error codes and returns a typed constructor for them. Codes are global and
 * unique: registering one twice is a programming error.
 */
export function defineErrors<const T extends Record<string, ErrorDefinition>>(definitions: T) {
  for (const [code, definition] of Object.entries(definitions)) {
    if (!code.startsWith("WASMLET_ERR_"))
      throw new Error(`error code ${code} must start with WASMLET_ERR_`);
    if (registry.has(code)) throw new Error(`error code ${code} is defined twice`);
    registry.set(code, definition);
  }
  return (code: keyof T & string, message: string, options: ErrorOptions = {}): WasmletError =>
    new WasmletError(code, message, {
      hint: options.hint ?? definitions[code]?.hint,
      cause: options.cause,
    });
}

export function registeredErrors(): ReadonlyMap<string, ErrorDefinition> {
  return registry;
}

export function isWasmletError(value: unknown, code?: string): value is WasmletError {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { code?: unknown }).code === "string" &&
    (value as { code: string }).code.startsWith("WASMLET_ERR_") &&
    (code === undefined || (value as { code: string }).code === code)
  );
}

/** One line for a human: message, then the hint when there is one. */
export function describeError(error: unknown): string {
  if (isWasmletError(error)) return error.hint ? `${error.message} (${error.hint})` : error.message;
  return error instanceof Error ? error.message : String(error);
}

/** The message alone, no hint: what goes into statuses and events, in the kubelet's words. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
