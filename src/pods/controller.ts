// PodController: desired state (pods bound to this node, fed from a resilient watch someone else
// runs) against actual state (one PodLifecycle per pod uid). Upserts create or update a lifecycle,
// a pod with a deletionTimestamp is terminated and deleted, a pod gone from the API is stopped at
// once, and a resync (after a relist, or at start-up after a wasmlet restart) rebuilds everything:
// pods it no longer lists are treated as deleted and their leftover directories removed.
import type { V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { describeError } from "../errors.ts";
import { Backoff } from "../kube/backoff.ts";
import { PodNetwork } from "../network/pod-network.ts";
import type { HostPathPolicy } from "../volumes/host-path.ts";
import { VolumeManager } from "../volumes/volume-manager.ts";
import { podError } from "./errors.ts";
import { InstanceRegistry } from "./instance-registry.ts";
import { PodLifecycle } from "./lifecycle.ts";
import {
  DEFAULT_TIMING,
  type LifecycleDeps,
  type NodeFacts,
  type Timing,
} from "./lifecycle-deps.ts";
import { removeOrphanLogs } from "./log-layout.ts";
import type { ImagePort, KubePort, LogPort, RuntimePort } from "./ports.ts";
import type { StateName } from "./states/state.ts";

export interface PodControllerOptions {
  node: NodeFacts;
  /** Root of per-pod directories (volumes), e.g. <dataDir>/pods. */
  podsDir: string;
  /** Which hostPath volumes the node allows. */
  hostPath: HostPathPolicy;
  images: ImagePort;
  runtime: RuntimePort;
  kube: KubePort;
  logs?: LogPort;
  logger: Logger;
  timing?: Partial<Timing>;
  /** The clock of every pod (default: the wall clock). */
  now?: () => Date;
  /** Observes state changes (tests, metrics). */
  onState?: (pod: { namespace: string; name: string; uid: string }, state: StateName) => void;
  /** Pod addresses; default: node mode on the node's first IP. */
  network?: PodNetwork;
  /** The node's pressure conditions that are True now; pods are admitted as the kubelet's eviction manager would. */
  nodePressure?: () => readonly string[];
}

export interface ContainerInstanceInfo {
  id: string;
  logPath: string;
}

export class PodController {
  readonly #deps: LifecycleDeps;
  readonly #logger: Logger;
  readonly #lifecycles = new Map<string, PodLifecycle>();
  readonly #onState: PodControllerOptions["onState"];
  #closed = false;

  constructor(options: PodControllerOptions) {
    if (!options.node.nodeName) throw new RangeError("PodController needs node.nodeName");
    const timing: Timing = { ...DEFAULT_TIMING, ...options.timing };
    const now = options.now ?? (() => new Date());
    const clockMs = () => now().getTime();
    this.#logger = options.logger;
    this.#onState = options.onState;
    const volumes = new VolumeManager({
      podsDir: options.podsDir,
      source: options.kube,
      hostPath: options.hostPath,
      now,
    });
    this.#deps = {
      node: options.node,
      timing,
      images: options.images,
      runtime: options.runtime,
      kube: options.kube,
      ...(options.logs ? { logs: options.logs } : {}),
      volumes,
      network:
        options.network ??
        new PodNetwork({ mode: "node", nodeIP: options.node.nodeIPs[0] ?? "127.0.0.1" }),
      admission: {
        hostPath: options.hostPath,
        runtimeClassHandler: (name) => options.kube.getRuntimeClassHandler(name),
        ...(options.nodePressure ? { nodePressure: options.nodePressure } : {}),
      },
      crashBackoff: new Backoff({ ...timing.crashLoop, jitter: 0, now: clockMs }),
      imageBackoff: new Backoff({ ...timing.imagePull, jitter: 0, now: clockMs }),
      instances: new InstanceRegistry(),
      now,
    };
  }

  /** A pod was added or changed (watch ADDED/MODIFIED, or a list item). */
  onPodUpsert(pod: V1Pod): void {
    if (this.#closed) {
      this.#logger.debug({ uid: pod.metadata?.uid }, "pod event after close ignored");
      return;
    }
    const uid = pod.metadata?.uid;
    if (!uid) return;
    if (pod.spec?.nodeName !== this.#deps.node.nodeName) {
      // Not ours (a watch that is not filtered, or a stale event): if we run it, it was deleted for us.
      if (this.#lifecycles.has(uid)) this.onPodDeleted(pod);
      return;
    }
    const existing = this.#lifecycles.get(uid);
    if (existing) {
      existing.update(pod);
      return;
    }
    const ref = {
      namespace: pod.metadata?.namespace ?? "default",
      name: pod.metadata?.name ?? "",
      uid,
    };
    const lifecycle = new PodLifecycle(pod, {
      deps: this.#deps,
      logger: this.#logger.child(ref),
      onState: (state) => this.#onState?.(ref, state),
    });
    this.#lifecycles.set(uid, lifecycle);
    lifecycle.start().then(
      () => {
        this.#deps.network.release(uid);
        if (lifecycle.forced) this.#forget(uid, lifecycle);
      },
      (error) => {
        this.#deps.network.release(uid);
        this.#logger.error(
          { ...ref, err: describeError(error) },
          "pod lifecycle ended with an error",
        );
        this.#forget(uid, lifecycle);
      },
    );
  }

  /** A pod was deleted from the API (watch DELETED): whatever runs stops now. */
  onPodDeleted(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    const lifecycle = this.#lifecycles.get(uid);
    if (!lifecycle) return;
    if (lifecycle.state === "Terminated") {
      this.#forget(uid, lifecycle);
      return;
    }
    lifecycle.forceDelete();
  }

  /**
   * The full list of pods bound to this node (after a relist, or at start-up). Upserts each; pods
   * that are no longer listed count as deleted; pod directories of unknown uids are removed.
   */
  async resync(pods: readonly V1Pod[]): Promise<void> {
    if (this.#closed)
      throw podError("WASMLET_ERR_CONTROLLER_CLOSED", "resync after the pod controller was closed");
    const listed = new Set<string>();
    for (const pod of pods) {
      if (pod.spec?.nodeName !== this.#deps.node.nodeName || !pod.metadata?.uid) continue;
      listed.add(pod.metadata.uid);
      this.onPodUpsert(pod);
    }
    for (const [uid, lifecycle] of this.#lifecycles) {
      if (!listed.has(uid)) this.onPodDeleted(lifecycle.pod);
    }
    const known = new Set([...listed, ...this.#lifecycles.keys()]);
    const removed = await this.#deps.volumes.removeOrphans(known);
    if (removed.length > 0)
      this.#logger.info({ uids: removed }, "removed directories of pods no longer bound here");
    const logs = await removeOrphanLogs(this.#deps.node.podLogsDir, known);
    if (logs.length > 0)
      this.#logger.info({ directories: logs }, "removed logs of pods no longer bound here");
  }

  /** The live instance of a container (exec, attach, logs). */
  instance(namespace: string, name: string, container: string): ContainerInstanceInfo | undefined {
    for (const lifecycle of this.#lifecycles.values()) {
      if (
        lifecycle.ref.namespace === namespace &&
        lifecycle.ref.name === name &&
        lifecycle.state !== "Terminated"
      ) {
        const found = lifecycle.instance(container);
        if (found) return found;
      }
    }
    return undefined;
  }

  /** Images of the pods this node still runs or may run again: never garbage-collected. */
  imagesInUse(): string[] {
    const images = new Set<string>();
    for (const lifecycle of this.#lifecycles.values()) {
      if (lifecycle.state === "Terminated") continue;
      const spec = lifecycle.pod.spec;
      const all = [
        ...(spec?.initContainers ?? []),
        ...(spec?.containers ?? []),
        ...(spec?.ephemeralContainers ?? []),
      ];
      for (const c of all) if (c.image) images.add(c.image);
    }
    return [...images];
  }

  /** The lifecycle state of a pod, by uid (tests, debugging). */
  stateOf(uid: string): StateName | undefined {
    return this.#lifecycles.get(uid)?.state;
  }

  /** Pods currently managed. */
  get size(): number {
    return this.#lifecycles.size;
  }

  /** Graceful: stops accepting pods and stops every instance within its pod's grace period, at most `graceMs`; statuses are rebuilt by the next start. */
  async close(graceMs = 10_000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(
      [...this.#lifecycles.values()].map((lifecycle) => lifecycle.shutdown(graceMs)),
    );
  }

  /** Now: every instance ends at once. */
  async destroy(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#lifecycles.values()].map((lifecycle) => lifecycle.shutdown(0)));
  }

  #forget(uid: string, lifecycle: PodLifecycle): void {
    if (this.#lifecycles.get(uid) === lifecycle) this.#lifecycles.delete(uid);
  }
}
