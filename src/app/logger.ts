// The one logger: pino, JSON lines on stdout. Components take child loggers bound to what they
// are about (component, node, pod).
import { type Logger, pino } from "pino";
import type { LogLevel } from "../config/config.ts";
import { VERSION } from "../version.ts";

export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid, wasmlet: VERSION },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ fd: 1, sync: true }),
  );
}
