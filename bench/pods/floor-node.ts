// The benchmark's floor: a node that does nothing. It registers like wasmlet (same labels and
// taint), renews its Lease, and marks every pod bound to it Running and Ready the moment it sees
// it, so a benchmark against it measures only the API server, scheduler and watch latency.
import {
  CoordinationV1Api,
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
  Watch,
} from "@kubernetes/client-node";

export class FloorNode {
  readonly name: string;
  #core: CoreV1Api;
  #leases: CoordinationV1Api;
  #watch: Watch;
  #abort: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(kubeConfig: KubeConfig, name = "floor") {
    this.name = name;
    this.#core = kubeConfig.makeApiClient(CoreV1Api);
    this.#leases = kubeConfig.makeApiClient(CoordinationV1Api);
    this.#watch = new Watch(kubeConfig);
  }

  async start(): Promise<void> {
    const now = new Date();
    const node = await this.#core.createNode({
      body: {
        metadata: {
          name: this.name,
          labels: {
            "kubernetes.io/hostname": this.name,
            "kubernetes.io/os": "wasip1",
            "kubernetes.io/arch": "wasm",
            "node.kubernetes.io/floor": "true",
          },
        },
        spec: { taints: [{ key: "wasmlet.io/wasm", value: "true", effect: "NoSchedule" }] },
      },
    });
    await this.#core.patchNodeStatus(
      {
        name: this.name,
        body: {
          status: {
            capacity: { cpu: "64", memory: "256Gi", pods: "1000" },
            allocatable: { cpu: "64", memory: "256Gi", pods: "1000" },
            conditions: [
              {
                type: "Ready",
                status: "True",
                reason: "FloorReady",
                message: "floor node",
                lastHeartbeatTime: now,
                lastTransitionTime: now,
              },
            ],
            addresses: [{ type: "InternalIP", address: "127.0.0.1" }],
          },
        },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    const renew = async () => {
      const body = {
        metadata: {
          name: this.name,
          namespace: "kube-node-lease",
          ownerReferences: [
            { apiVersion: "v1", kind: "Node", name: this.name, uid: node.metadata!.uid! },
          ],
        },
        spec: {
          holderIdentity: this.name,
          leaseDurationSeconds: 40,
          renewTime: new Date() as never,
        },
      };
      await this.#leases
        .replaceNamespacedLease({ name: this.name, namespace: "kube-node-lease", body })
        .catch(() => this.#leases.createNamespacedLease({ namespace: "kube-node-lease", body }))
        .catch(() => {});
    };
    await renew();
    this.#timer = setInterval(renew, 10_000);
    await this.#watchPods();
  }

  /** Lists the node's pods, then watches from there; a watch that ends starts over. */
  async #watchPods(): Promise<void> {
    if (this.#stopped) return;
    const fieldSelector = `spec.nodeName=${this.name}`;
    try {
      const list = await this.#core.listPodForAllNamespaces({ fieldSelector });
      for (const pod of list.items) void this.#onPod("ADDED", pod);
      this.#abort = await this.#watch.watch(
        "/api/v1/pods",
        { fieldSelector, resourceVersion: list.metadata?.resourceVersion },
        (type, pod: V1Pod) => void this.#onPod(type, pod),
        (error) => {
          if (this.#stopped) return;
          if (error) process.stderr.write(`floor: watch ended: ${error}\n`);
          setTimeout(() => void this.#watchPods(), 100);
        },
      );
    } catch (error) {
      process.stderr.write(`floor: cannot watch pods: ${error}\n`);
      setTimeout(() => void this.#watchPods(), 100);
    }
  }

  async #onPod(type: string, pod: V1Pod, attempt = 0): Promise<void> {
    const { namespace, name, uid } = pod.metadata ?? {};
    if (!namespace || !name || type === "DELETED") return;
    try {
      if (pod.metadata?.deletionTimestamp) {
        await this.#core.deleteNamespacedPod({
          namespace,
          name,
          gracePeriodSeconds: 0,
          body: { preconditions: { uid } },
        });
      } else if (pod.status?.phase !== "Running") {
        const now = new Date();
        await this.#core.patchNamespacedPodStatus(
          {
            namespace,
            name,
            body: {
              status: {
                phase: "Running",
                startTime: now,
                conditions: [
                  "PodReadyToStartContainers",
                  "Initialized",
                  "ContainersReady",
                  "Ready",
                ].map((type) => ({
                  type,
                  status: "True",
                  lastTransitionTime: now,
                })),
                containerStatuses: (pod.spec?.containers ?? []).map((c) => ({
                  name: c.name,
                  image: c.image ?? "",
                  imageID: "",
                  ready: true,
                  started: true,
                  restartCount: 0,
                  state: { running: { startedAt: now } },
                })),
              },
            },
          },
          setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
        );
      }
    } catch (error) {
      // A pod that is gone needs nothing more; anything else is retried, or the run would hang.
      if ((error as { code?: number }).code === 404 || this.#stopped) return;
      if (attempt >= 20) {
        process.stderr.write(`floor: giving up on ${namespace}/${name}: ${error}\n`);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 50 * (attempt + 1)));
      await this.#onPod(type, pod, attempt + 1);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#abort?.abort();
    await this.#core.deleteNode({ name: this.name }).catch(() => {});
  }
}
