// pods/ and volumes/ reach the Kubernetes API only through KubePort; this is its real
// implementation over the kube/ client. Errors keep the HTTP status as `statusCode`, which the
// lifecycle reads (404: the pod is gone; 409: it was recreated).
import type { V1ConfigMap, V1Secret, V1Service } from "@kubernetes/client-node";
import { apiError, isNotFound, statusCode } from "../kube/api-error.ts";
import type { KubeClient } from "../kube/client.ts";
import { kubeError } from "../kube/errors.ts";
import type { EventRecorder } from "../kube/events.ts";
import { patchPodStatus } from "../kube/patch.ts";
import type { KubePort, PodEvent } from "../pods/ports.ts";
import type { ServiceAccountToken, ServiceAccountTokenRequest } from "../volumes/ports.ts";
import { appError } from "./errors.ts";

function withStatus(error: unknown, doing: string): Error {
  const wrapped = apiError(error, doing);
  const code = statusCode(error);
  if (code !== undefined) Object.assign(wrapped, { statusCode: code });
  return wrapped;
}

/** Runs `call`, sharing one in-flight request per key (many pods read the same ConfigMap at once). */
class Coalescer {
  readonly #inFlight = new Map<string, Promise<unknown>>();

  run<T>(key: string, call: () => Promise<T>): Promise<T> {
    const existing = this.#inFlight.get(key);
    if (existing) return existing as Promise<T>;
    const pending = call().finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, pending);
    return pending;
  }
}

export interface RuntimeClassLookup {
  /** The handler of a RuntimeClass, undefined when it does not exist. */
  handler(name: string): Promise<string | undefined>;
}

export interface KubeApiPortOptions {
  kube: KubeClient;
  events: EventRecorder;
  runtimeClasses: RuntimeClassLookup;
  /** The cluster's services from a watch; undefined until it has listed them once. */
  services: () => readonly V1Service[] | undefined;
}

export class KubeApiPort implements KubePort {
  readonly #kube: KubeClient;
  readonly #events: EventRecorder;
  readonly #runtimeClasses: RuntimeClassLookup;
  readonly #services: KubeApiPortOptions["services"];
  readonly #reads = new Coalescer();

  constructor(options: KubeApiPortOptions) {
    this.#kube = options.kube;
    this.#events = options.events;
    this.#runtimeClasses = options.runtimeClasses;
    this.#services = options.services;
  }

  listServices(): readonly V1Service[] {
    const services = this.#services();
    if (!services) {
      // The kubelet's words, so the CreateContainerConfigError reads the same.
      throw appError(
        "WASMLET_ERR_SERVICES_UNREAD",
        "services have not yet been read at least once, cannot construct envvars",
      );
    }
    return services;
  }

  async patchPodStatus(
    namespace: string,
    name: string,
    patch: Record<string, unknown>,
  ): Promise<void> {
    try {
      await patchPodStatus(this.#kube, namespace, name, "strategic", patch);
    } catch (error) {
      throw withStatus(
        (error as { cause?: unknown }).cause ?? error,
        `patching the status of pod ${namespace}/${name}`,
      );
    }
  }

  async deletePod(namespace: string, name: string, uid: string): Promise<void> {
    try {
      await this.#kube.core.deleteNamespacedPod({
        namespace,
        name,
        gracePeriodSeconds: 0,
        body: { gracePeriodSeconds: 0, preconditions: { uid } },
      });
    } catch (error) {
      if (isNotFound(error)) return;
      throw withStatus(error, `deleting pod ${namespace}/${name}`);
    }
  }

  recordEvent(event: PodEvent): void {
    this.#events.record(
      event.type,
      {
        kind: "Pod",
        apiVersion: "v1",
        namespace: event.pod.namespace,
        name: event.pod.name,
        uid: event.pod.uid,
        ...(event.fieldPath ? { fieldPath: event.fieldPath } : {}),
      },
      event.reason,
      event.message,
    );
  }

  getRuntimeClassHandler(name: string): Promise<string | undefined> {
    return this.#runtimeClasses.handler(name);
  }

  getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined> {
    return this.#reads.run(`cm/${namespace}/${name}`, async () => {
      try {
        return await this.#kube.core.readNamespacedConfigMap({ namespace, name });
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw withStatus(error, `reading ConfigMap ${namespace}/${name}`);
      }
    });
  }

  getSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    return this.#reads.run(`secret/${namespace}/${name}`, async () => {
      try {
        return await this.#kube.core.readNamespacedSecret({ namespace, name });
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw withStatus(error, `reading Secret ${namespace}/${name}`);
      }
    });
  }

  async createServiceAccountToken(
    namespace: string,
    serviceAccountName: string,
    request: ServiceAccountTokenRequest,
  ): Promise<ServiceAccountToken> {
    const doing = `requesting a token for ServiceAccount ${namespace}/${serviceAccountName}`;
    let response: Awaited<ReturnType<KubeClient["core"]["createNamespacedServiceAccountToken"]>>;
    try {
      response = await this.#kube.core.createNamespacedServiceAccountToken({
        namespace,
        name: serviceAccountName,
        body: {
          spec: {
            audiences: request.audiences,
            expirationSeconds: request.expirationSeconds,
            boundObjectRef: {
              apiVersion: "v1",
              kind: "Pod",
              name: request.boundPod.name,
              uid: request.boundPod.uid,
            },
          },
        },
      });
    } catch (error) {
      throw withStatus(error, doing);
    }
    const status = response.status;
    if (!status?.token)
      throw kubeError("WASMLET_ERR_KUBE_API", `${doing}: the TokenRequest answer has no token`);
    const expires =
      status.expirationTimestamp ?? new Date(Date.now() + request.expirationSeconds * 1000);
    return { token: status.token, expirationTimestamp: new Date(expires) };
  }
}
