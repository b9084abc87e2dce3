// `wasmlet run`: one node, until SIGTERM or SIGINT. A second signal stops at once. Exit status: 0
// after a clean stop, 1 when the node cannot start or cannot go on (its name taken over).
import type { Logger } from "pino";
import { App, type ComponentFactory } from "../app/app.ts";
import { createLogger } from "../app/logger.ts";
import { bootstrapNodeCredentials, clientCertificateRotation } from "../app/node-credentials.ts";
import { workloads } from "../app/workloads.ts";
import { helpText, loadConfig } from "../config/load.ts";
import { describeError, type WasmletError } from "../errors.ts";
import { enableEagerCompile } from "../wasm/eager-compile.ts";

/** Parts that run workloads, started after the node registers. */
const components: ComponentFactory[] = [clientCertificateRotation(), workloads()];

export async function main(argv: string[]): Promise<number> {
  const loaded = loadConfig({ argv });
  if (loaded.help) {
    console.log(helpText());
    return 0;
  }
  const { config } = loaded;
  if (config.eagerCompile) enableEagerCompile();
  const logger: Logger = createLogger(config.logLevel);
  logger.info(
    { node: config.nodeName, nodeIP: config.nodeIP, configFile: loaded.configFile },
    "starting wasmlet",
  );

  await bootstrapNodeCredentials(config, logger);
  const app = new App(config, { logger, components });
  let signals = 0;
  let resolveExit!: (code: number) => void;
  const exit = new Promise<number>((resolve) => {
    resolveExit = resolve;
  });
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      logger.info({ signal }, "stopping: pods get their grace period, the node is left NotReady");
      app.close(signal).then(
        () => resolveExit(0),
        (error) => {
          logger.error({ err: describeError(error) }, "stopping failed");
          resolveExit(1);
        },
      );
    } else {
      logger.warn({ signal }, "second signal: stopping now");
      void app.destroy().finally(() => resolveExit(1));
    }
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  app.onFatal((error: WasmletError) => {
    logger.fatal({ err: error.toJSON() }, "cannot go on");
    console.error(`wasmlet run: ${describeError(error)}`);
    void app.close(error.message).finally(() => resolveExit(1));
  });

  try {
    await app.start();
  } catch (error) {
    // A signal during start (say, while the API server is unreachable) is a clean stop.
    if (signals === 0) {
      logger.fatal({ err: describeError(error) }, "cannot start");
      await app.destroy().catch(() => {});
      throw error;
    }
  }
  const code = await exit;
  process.off("SIGTERM", onSignal);
  process.off("SIGINT", onSignal);
  // Keep-alive sockets of the API client may linger; do not let them hold the process.
  setTimeout(() => process.exit(code), 2_000).unref();
  return code;
}
