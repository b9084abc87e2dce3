// The runtime's public surface. Other modules import from here only.
export { DEFAULT_LOG_ROTATION, type LogRotation } from "../logs/log-writer.ts";
export { runtimeError } from "./errors.ts";
export { exitStatus, nearMemoryLimit } from "./exit-status.ts";
export {
  checkModule,
  compileModule,
  isProvidedImport,
  missingImports,
  SUPPORTED_IMPORTS,
} from "./module-check.ts";
export { Runtime, type RuntimeStats } from "./runtime.ts";
export type {
  Container,
  ContainerSpec,
  CpuUsage,
  ExecOptions,
  ExitReason,
  ExitStatus,
  Instance,
  Mount,
  OutputListener,
  OutputStream,
  RuntimeLogger,
  RuntimeOptions,
} from "./types.ts";
