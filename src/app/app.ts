// Wiring: builds every part of a node from the Config, starts them in order, stops them in the
// reverse order.
//
//   start: serving certificate files (bad files fail here) → kubelet API (binds the port: a port
//          in use fails here) → plain healthz port → node (name check, Node, first status, Lease) → certificate renewal
//          (the kubelet-serving CSR) → components (the pod controller) in order
//   close: node NotReady ("shutting down", so nothing new lands here) → components in reverse,
//          within the shutdown grace period → node (heartbeat stops; Node left NotReady) →
//          kubelet API → plain healthz → certificates → events
//
// Parts that run workloads plug in as components: a ComponentFactory receives the AppContext
// (kube client, node name and InternalIP, event recorder, the kubelet API for routes, the node
// agent for readiness and usage) when the App is created, registers its routes then, and is
// started after the node is registered.
import { readFileSync } from "node:fs";
import { access, constants, mkdir } from "node:fs/promises";
import type { Logger } from "pino";
import type { Config } from "../config/config.ts";
import { describeError, type WasmletError } from "../errors.ts";
import { KubeClient } from "../kube/client.ts";
import { EventRecorder } from "../kube/events.ts";
import type { HostProbe } from "../node/host.ts";
import { NodeAgent } from "../node/node-agent.ts";
import { kubeTokenReviewer, RequestAuthenticator } from "../server/authn.ts";
import { kubeAccessReviewer, NodeAuthorizer } from "../server/authz.ts";
import { HealthChecks, healthzRoutes } from "../server/healthz.ts";
import { HealthzServer } from "../server/healthz-server.ts";
import { holdsCertificate, KubeletServer } from "../server/server.ts";
import { ServingCertificates } from "../server/serving-certificates.ts";
import { specificAddresses } from "../server/x509.ts";
import { appError } from "./errors.ts";

/** Everything a component may use. */
export interface AppContext {
  config: Config;
  logger: Logger;
  kube: KubeClient;
  events: EventRecorder;
  /** nodeName, nodeIP, setWorkloadSource(), snapshot(). */
  node: NodeAgent;
  /** route() registers kubelet API endpoints (only while components are being built). */
  server: KubeletServer;
  health: HealthChecks;
}

/** A long-lived part of the node with the common life: start, graceful close, immediate destroy. */
export interface Component {
  readonly name: string;
  start(): Promise<void>;
  /** Graceful stop (the pod controller stops its pods within their grace periods); idempotent. */
  close(): Promise<void>;
  /** Immediate stop when close() takes longer than the shutdown grace period; idempotent. */
  destroy(): Promise<void>;
}

export type ComponentFactory = (context: AppContext) => Component;

/**
 * The kubelet API as a node serves it. A client certificate names its user only when a client CA
 * is configured, and is verified against that CA alone; otherwise bearer tokens (TokenReview) are
 * the only credentials — a certificate that Node's default roots or NODE_EXTRA_CA_CERTS vouch for
 * is not. Every request is authorized with a SubjectAccessReview on the Node.
 */
export function kubeletServer(options: {
  config: Config;
  logger: Logger;
  kube: KubeClient;
  clientCA: string | undefined;
  certificates: ServingCertificates;
}): KubeletServer {
  const { config, logger, kube, certificates } = options;
  const clientCA = holdsCertificate(options.clientCA) ? options.clientCA : undefined;
  return new KubeletServer({
    config,
    logger,
    clientCA,
    certificates,
    authenticator: new RequestAuthenticator({
      tokens: kubeTokenReviewer(kube),
      clientCertificates: clientCA !== undefined,
    }),
    authorizer: new NodeAuthorizer({
      nodeName: config.nodeName,
      reviewer: kubeAccessReviewer(kube),
    }),
  });
}

export interface AppOptions {
  logger: Logger;
  /** Built in order, started in order, closed in reverse order. */
  components?: readonly ComponentFactory[];
  /** Defaults: from the config's kubeconfig, and the real host. */
  kube?: KubeClient;
  probe?: HostProbe;
  holderObserveMs?: number;
}

export class App {
  readonly context: AppContext;
  readonly #certificates: ServingCertificates;
  readonly #healthz: HealthzServer;
  readonly #components: Component[];
  readonly #log: Logger;
  readonly #fatalListeners: Array<(error: WasmletError) => void> = [];
  #started: Component[] = [];
  #closing: Promise<void> | undefined;

  constructor(config: Config, options: AppOptions) {
    const logger = options.logger;
    this.#log = logger.child({ component: "app" });
    const kube = options.kube ?? KubeClient.create(config);
    const events = new EventRecorder({ kube, nodeName: config.nodeName, logger });
    const clientCA = App.#clientCA(config, kube, this.#log);
    this.#certificates = new ServingCertificates({
      config,
      identity: {
        nodeName: config.nodeName,
        dnsNames: [...new Set([config.nodeName])],
        ipAddresses: specificAddresses([config.nodeIP, config.address]),
      },
      kube,
      logger,
    });
    const server = kubeletServer({
      config,
      logger,
      kube,
      clientCA,
      certificates: this.#certificates,
    });
    const node = new NodeAgent({
      kube,
      config,
      logger,
      events,
      probe: options.probe,
      holderObserveMs: options.holderObserveMs,
      kubeletPort: () => server.port,
      declaredFeatures: () => server.features(),
    });
    node.onFatal((error) => this.#emitFatal(error));
    const health = new HealthChecks();
    health.add("heartbeat", () => node.healthProblem());
    for (const route of healthzRoutes(health)) server.route(route);
    this.#healthz = new HealthzServer(config, health, logger);

    this.context = { config, logger, kube, events, node, server, health };
    // ── Components: the pod controller is added here (by `wasmlet run`), built with the context
    // above. It registers its kubelet API routes (containerLogs, exec, …) while being built.
    this.#components = (options.components ?? []).map((factory) => factory(this.context));
  }

  static #clientCA(config: Config, kube: KubeClient, log: Logger): string | undefined {
    if (config.clientCAFile) {
      let ca: string;
      try {
        ca = readFileSync(config.clientCAFile, "utf8");
      } catch (error) {
        throw appError(
          "WASMLET_ERR_CLIENT_CA",
          `cannot read --client-ca-file ${config.clientCAFile}: ${(error as Error).message}`,
        );
      }
      if (!holdsCertificate(ca)) {
        throw appError(
          "WASMLET_ERR_CLIENT_CA",
          `--client-ca-file ${config.clientCAFile} holds no PEM certificate`,
        );
      }
      return ca;
    }
    const ca = kube.clusterCA();
    if (holdsCertificate(ca)) return ca;
    log.warn(
      "no client CA (neither --client-ca-file nor a cluster CA in the kubeconfig): the kubelet API accepts bearer tokens only",
    );
    return undefined;
  }

  /** Called once when the node cannot go on (its name was taken over): the process should exit non-zero. */
  onFatal(listener: (error: WasmletError) => void): void {
    this.#fatalListeners.push(listener);
  }

  #emitFatal(error: WasmletError): void {
    for (const listener of this.#fatalListeners) listener(error);
  }

  async start(): Promise<void> {
    const { node, server, config } = this.context;
    try {
      await mkdir(config.dataDir, { recursive: true });
      await access(config.dataDir, constants.W_OK);
    } catch (error) {
      throw appError(
        "WASMLET_ERR_DATA_DIR",
        `cannot use the data directory ${config.dataDir}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    await this.#certificates.load();
    await server.start();
    await this.#healthz.start();
    await node.start();
    this.#certificates.start();
    for (const component of this.#components) {
      await component.start();
      this.#started.push(component);
    }
    this.#log.info(
      { node: node.nodeName, components: this.#components.map((c) => c.name) },
      "wasmlet is running",
    );
  }

  /** Graceful shutdown in reverse order; `cause` (e.g. SIGTERM) is shown on the Node. Safe to call twice. */
  close(cause?: string): Promise<void> {
    this.#closing ??= (async () => {
      const { node, server, events, config } = this.context;
      const why = cause ? ` (${cause})` : "";
      await node.markNotReady(`wasmlet is shutting down${why}`);
      for (const component of [...this.#started].reverse()) {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), config.shutdownGracePeriodMs);
        });
        try {
          const outcome = await Promise.race([
            component.close().then(() => "closed" as const),
            timedOut,
          ]);
          if (outcome === "timeout") {
            this.#log.warn(
              { component: component.name },
              "did not stop within the shutdown grace period; stopping it now",
            );
            await component.destroy();
          }
        } catch (error) {
          this.#log.error(
            { component: component.name, err: describeError(error) },
            "failed to stop cleanly",
          );
        } finally {
          clearTimeout(timer);
        }
      }
      await node.close(`wasmlet stopped${why}`);
      await server.close();
      await this.#healthz.close();
      await this.#certificates.close();
      await events.close();
      this.#log.info("wasmlet stopped");
    })();
    return this.#closing;
  }

  /** Stops everything now, without waiting for pods or requests. */
  async destroy(): Promise<void> {
    const { server } = this.context;
    await Promise.allSettled(this.#started.map((c) => c.destroy()));
    await server.destroy();
    await this.close();
  }
}
