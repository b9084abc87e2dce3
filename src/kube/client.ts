// The API client: one KubeConfig (from a kubeconfig file or the in-cluster service account) and
// the typed API groups wasmlet uses. Every request carries a timeout, so a hung API server cannot
// stall a heartbeat; watches have their own inactivity timeout (see watch.ts).
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type * as https from "node:https";
import {
  AuthenticationV1Api,
  AuthorizationV1Api,
  CertificatesV1Api,
  type ConnectOptions,
  CoordinationV1Api,
  CoreV1Api,
  EventsV1Api,
  KubeConfig,
  NodeV1Api,
  type RequestContext,
} from "@kubernetes/client-node";
import { Agent } from "undici";
import { statusCode } from "./api-error.ts";
import { kubeError } from "./errors.ts";

/** A call to the API that failed: the client method, and the HTTP status or `network`. */
export interface ApiFailure {
  operation: string;
  code: string;
}

/** Answers callers expect and act on (absent, already exists, changed meanwhile): not failures. */
const EXPECTED_STATUSES = new Set([404, 409]);

/**
 * A KubeConfig whose requests time out and share one keep-alive connection pool. client-node
 * builds a new undici Agent — so a new TCP connection and TLS handshake — for every request; on a
 * busy node that handshake costs more than the request. The pool is keyed by everything that
 * shapes a connection (CA, client certificate and key, verification), so a rotated client
 * certificate gets a fresh pool and the old one closes once its requests are done.
 */
class TimedKubeConfig extends KubeConfig {
  requestTimeoutMs = 30_000;
  #pool: { key: string; agent: Agent } | undefined;

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    const tls: https.RequestOptions = {};
    await this.applyToHTTPSOptions(tls);
    const options = this.createDispatcherOptions(this.getCurrentCluster(), {
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      pfx: tls.pfx,
      passphrase: tls.passphrase,
      ...(tls.rejectUnauthorized === undefined
        ? {}
        : { rejectUnauthorized: tls.rejectUnauthorized }),
      ...(tls.servername === undefined ? {} : { servername: tls.servername }),
    });
    if (options.type === "proxy" || options.type === "socks") {
      await super.applySecurityAuthentication(context);
    } else {
      for (const [name, value] of Object.entries(tls.headers ?? {}))
        context.setHeaderParam(name, `${value}`);
      if (tls.auth)
        context.setHeaderParam(
          "Authorization",
          `Basic ${Buffer.from(tls.auth).toString("base64")}`,
        );
      if (options.type === "agent") context.setDispatcher(this.#sharedAgent(options.connect));
    }
    if (context.getSignal() === undefined)
      context.setSignal(AbortSignal.timeout(this.requestTimeoutMs));
  }

  #sharedAgent(connect: ConnectOptions): Agent {
    const hash = createHash("sha256");
    for (const [name, value] of Object.entries(connect).sort(([a], [b]) => a.localeCompare(b)))
      hash
        .update(`${name}\0`)
        .update(Buffer.isBuffer(value) ? value : JSON.stringify(value ?? null))
        .update("\0");
    const key = hash.digest("hex");
    if (this.#pool?.key !== key) {
      void this.#pool?.agent.close().catch(() => {});
      this.#pool = { key, agent: new Agent({ connect }) };
    }
    return this.#pool.agent;
  }
}

export interface KubeClientOptions {
  /** Kubeconfig file; undefined means in-cluster. */
  kubeconfig: string | undefined;
  apiRequestTimeoutMs: number;
}

export class KubeClient {
  readonly kubeConfig: KubeConfig;
  readonly core: CoreV1Api;
  readonly coordination: CoordinationV1Api;
  readonly certificates: CertificatesV1Api;
  readonly authentication: AuthenticationV1Api;
  readonly authorization: AuthorizationV1Api;
  readonly nodeApi: NodeV1Api;
  readonly events: EventsV1Api;
  readonly #failureListeners: Array<(failure: ApiFailure) => void> = [];

  constructor(kubeConfig: KubeConfig) {
    this.kubeConfig = kubeConfig;
    if (!kubeConfig.getCurrentCluster()) {
      throw kubeError("WASMLET_ERR_KUBECONFIG", "the kubeconfig has no current cluster");
    }
    this.core = this.#observed(kubeConfig.makeApiClient(CoreV1Api));
    this.coordination = this.#observed(kubeConfig.makeApiClient(CoordinationV1Api));
    this.certificates = this.#observed(kubeConfig.makeApiClient(CertificatesV1Api));
    this.authentication = this.#observed(kubeConfig.makeApiClient(AuthenticationV1Api));
    this.authorization = this.#observed(kubeConfig.makeApiClient(AuthorizationV1Api));
    this.nodeApi = this.#observed(kubeConfig.makeApiClient(NodeV1Api));
    this.events = this.#observed(kubeConfig.makeApiClient(EventsV1Api));
  }

  /** Calls `listener` for every API call that fails (wasmlet_kube_api_errors_total). */
  onFailure(listener: (failure: ApiFailure) => void): void {
    this.#failureListeners.push(listener);
  }

  /** The API group with every call's failure reported to the failure listeners. */
  #observed<T extends object>(api: T): T {
    return new Proxy(api, {
      get: (target, property, receiver) => {
        const value: unknown = Reflect.get(target, property, receiver);
        if (typeof value !== "function" || typeof property !== "string") return value;
        return (...args: unknown[]) => {
          const result: unknown = value.apply(target, args);
          if (result instanceof Promise) result.catch((error) => this.#failed(property, error));
          return result;
        };
      },
    });
  }

  #failed(operation: string, error: unknown): void {
    const status = statusCode(error);
    if (status !== undefined && EXPECTED_STATUSES.has(status)) return;
    const failure = { operation, code: status === undefined ? "network" : String(status) };
    for (const listener of this.#failureListeners) listener(failure);
  }

  static create(options: KubeClientOptions): KubeClient {
    const kc = new TimedKubeConfig();
    kc.requestTimeoutMs = options.apiRequestTimeoutMs;
    try {
      if (options.kubeconfig === undefined) kc.loadFromCluster();
      else kc.loadFromFile(options.kubeconfig);
    } catch (error) {
      const where = options.kubeconfig ?? "the in-cluster service account";
      throw kubeError(
        "WASMLET_ERR_KUBECONFIG",
        `cannot load ${where}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    if (options.kubeconfig !== undefined && !kc.getCurrentCluster()) {
      throw kubeError(
        "WASMLET_ERR_KUBECONFIG",
        `${options.kubeconfig} names no current cluster (is it a kubeconfig?)`,
      );
    }
    if (options.kubeconfig === undefined && !process.env.KUBERNETES_SERVICE_HOST) {
      throw kubeError(
        "WASMLET_ERR_KUBECONFIG",
        "not running in a pod (KUBERNETES_SERVICE_HOST is unset) and no kubeconfig given",
      );
    }
    return new KubeClient(kc);
  }

  /** The API server's URL. */
  get server(): string {
    return this.kubeConfig.getCurrentCluster()?.server ?? "";
  }

  /** The cluster CA bundle (PEM) from the kubeconfig or the service account, if there is one. */
  clusterCA(): string | undefined {
    const cluster = this.kubeConfig.getCurrentCluster();
    if (!cluster) return undefined;
    if (cluster.caData) return Buffer.from(cluster.caData, "base64").toString("utf8");
    if (cluster.caFile) {
      try {
        return readFileSync(cluster.caFile, "utf8");
      } catch (error) {
        throw kubeError(
          "WASMLET_ERR_KUBECONFIG",
          `cannot read the cluster CA ${cluster.caFile}: ${(error as Error).message}`,
          {
            cause: error,
          },
        );
      }
    }
    return undefined;
  }
}
