// The API client: one KubeConfig (from a kubeconfig file or the in-cluster service account) and
// the typed API groups wasmlet uses. Every request carries a timeout, so a hung API server cannot
// stall a heartbeat; watches have their own inactivity timeout (see watch.ts).
import { readFileSync } from "node:fs";
import {
  AuthenticationV1Api,
  AuthorizationV1Api,
  CertificatesV1Api,
  CoordinationV1Api,
  CoreV1Api,
  EventsV1Api,
  KubeConfig,
  NodeV1Api,
  type RequestContext,
} from "@kubernetes/client-node";
import { kubeError } from "./errors.ts";

class TimedKubeConfig extends KubeConfig {
  requestTimeoutMs = 30_000;

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    if (context.getSignal() === undefined)
      context.setSignal(AbortSignal.timeout(this.requestTimeoutMs));
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

  constructor(kubeConfig: KubeConfig) {
    this.kubeConfig = kubeConfig;
    if (!kubeConfig.getCurrentCluster()) {
      throw kubeError("WASMLET_ERR_KUBECONFIG", "the kubeconfig has no current cluster");
    }
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.coordination = kubeConfig.makeApiClient(CoordinationV1Api);
    this.certificates = kubeConfig.makeApiClient(CertificatesV1Api);
    this.authentication = kubeConfig.makeApiClient(AuthenticationV1Api);
    this.authorization = kubeConfig.makeApiClient(AuthorizationV1Api);
    this.nodeApi = kubeConfig.makeApiClient(NodeV1Api);
    this.events = kubeConfig.makeApiClient(EventsV1Api);
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
