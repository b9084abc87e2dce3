// Shared by the pod end-to-end tests: one wasmlet node per test file (fast crash-loop back-off),
// guests pushed to the test registry, a RuntimeClass that schedules onto exactly that node, and
// helpers to read pods the way kubectl shows them.
import { readFile } from "node:fs/promises";
import type { V1Pod } from "@kubernetes/client-node";
import { pushWasmArtifact, RegistryClient } from "../../../src/images/index.ts";
import {
  createNamespace,
  eventually,
  kubectl,
  kubectlOk,
  testCluster,
} from "../../support/cluster.ts";
import { buildGuest, type GuestName } from "../../support/guests.ts";
import { Wasmlet, waitForReady } from "../../support/wasmlet.ts";

export interface PodTestBed {
  /** The node's current process (a new one after restartWasmlet()). */
  readonly wasmlet: Wasmlet;
  namespace: string;
  /** A RuntimeClass (handler wasmlet) whose scheduling pins pods to this node. */
  runtimeClass: string;
  image(guest: GuestName): Promise<string>;
  /** SIGKILLs the node's process and starts it again: same node name, data directory, port and flags. */
  restartWasmlet(): Promise<Wasmlet>;
  cleanup(): Promise<void>;
}

export async function startPodTestBed(
  prefix: string,
  args: string[] = [],
  nodeIP = "127.0.0.1",
): Promise<PodTestBed> {
  const namespace = await createNamespace(prefix);
  // Loopback is enough for logs and exec (only the node proxy refuses it).
  const flags = [
    "--allow-self-signed",
    "--no-tls-bootstrap",
    "--crash-loop-backoff",
    "1s",
    "--crash-loop-backoff-max",
    "4s",
    ...args,
  ];
  let wasmlet = await Wasmlet.start({ nodeIP, args: flags });
  await waitForReady(wasmlet.nodeName);
  const runtimeClass = `wasm-${namespace.name}`;
  await kubectlOk(["apply", "-f", "-"], {
    input: runtimeClassManifest(runtimeClass, wasmlet.nodeName),
  });
  const pushed = new Map<GuestName, Promise<string>>();
  return {
    get wasmlet() {
      return wasmlet;
    },
    namespace: namespace.name,
    runtimeClass,
    image(guest) {
      let ref = pushed.get(guest);
      if (!ref) {
        ref = (async () => {
          const reference = `${testCluster().registry}/e2e/${guest}:v1`;
          await pushWasmArtifact(await readFile(await buildGuest(guest)), reference, {
            client: new RegistryClient(),
          });
          return reference;
        })();
        pushed.set(guest, ref);
      }
      return ref;
    },
    async restartWasmlet() {
      const { nodeName, dataDir, port } = wasmlet;
      wasmlet.kill("SIGKILL");
      await wasmlet.exited;
      wasmlet = await Wasmlet.start({ nodeName, dataDir, port, nodeIP, args: flags });
      return wasmlet;
    },
    async cleanup() {
      await kubectl(["delete", "runtimeclass", runtimeClass, "--wait=false"]);
      await namespace.remove();
      await wasmlet.cleanup();
    },
  };
}

export async function applyJson(namespace: string, object: object): Promise<void> {
  await kubectlOk(["-n", namespace, "apply", "-f", "-"], { input: JSON.stringify(object) });
}

export async function getPod(namespace: string, name: string): Promise<V1Pod | undefined> {
  const result = await kubectl(["-n", namespace, "get", "pod", name, "-o", "json"]);
  return result.code === 0 ? (JSON.parse(result.stdout) as V1Pod) : undefined;
}

/** Waits until `probe(pod)` holds, and returns the pod. */
export function waitForPod(
  namespace: string,
  name: string,
  what: string,
  probe: (pod: V1Pod) => boolean,
  timeoutMs = 30_000,
): Promise<V1Pod> {
  return eventually(
    async () => {
      const pod = await getPod(namespace, name);
      return pod && probe(pod) ? pod : undefined;
    },
    `pod ${namespace}/${name} ${what}`,
    timeoutMs,
    200,
  );
}

export const phaseIs = (phase: string) => (pod: V1Pod) => pod.status?.phase === phase;

/** The STATUS column of `kubectl get pod`. */
export async function kubectlStatus(namespace: string, name: string): Promise<string> {
  const out = await kubectlOk(["-n", namespace, "get", "pod", name, "--no-headers"]);
  return out.trim().split(/\s+/)[2] ?? "";
}

export async function logsOf(namespace: string, pod: string, args: string[] = []): Promise<string> {
  return kubectlOk(["-n", namespace, "logs", pod, ...args]);
}

/** A RuntimeClass for wasmlet nodes: tolerating their taint and, given `nodeName`, pinned to it. */
export function runtimeClassManifest(name: string, nodeName?: string): string {
  return JSON.stringify({
    apiVersion: "node.k8s.io/v1",
    kind: "RuntimeClass",
    metadata: { name },
    handler: "wasmlet",
    scheduling: {
      ...(nodeName ? { nodeSelector: { "kubernetes.io/hostname": nodeName } } : {}),
      tolerations: [{ key: "wasmlet.io/wasm", operator: "Exists", effect: "NoSchedule" }],
    },
  });
}

/** A pod pinned to the test bed's node with one container `main` (restartPolicy Never unless `spec` says otherwise). */
export function podManifest(
  bed: Pick<PodTestBed, "runtimeClass">,
  name: string,
  container: Record<string, unknown>,
  spec: Record<string, unknown> = {},
  metadata: Record<string, unknown> = {},
) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, ...metadata },
    spec: {
      runtimeClassName: bed.runtimeClass,
      restartPolicy: "Never",
      containers: [{ name: "main", ...container }],
      ...spec,
    },
  };
}

/** Waits until the pod's log (`kubectl logs` with `args`) matches `pattern`, and returns it. */
export function waitForLogs(
  namespace: string,
  pod: string,
  pattern: RegExp,
  args: string[] = [],
  timeoutMs = 30_000,
): Promise<string> {
  return eventually(
    async () => {
      const logs = await logsOf(namespace, pod, args);
      return pattern.test(logs) ? logs : undefined;
    },
    `the log of ${namespace}/${pod} to match ${pattern}`,
    timeoutMs,
    200,
  );
}

/** Pods of the namespace (optionally by label selector), as kubectl returns them. */
export async function listPods(namespace: string, selector?: string): Promise<V1Pod[]> {
  const out = await kubectlOk([
    "-n",
    namespace,
    "get",
    "pods",
    ...(selector ? ["-l", selector] : []),
    "-o",
    "json",
  ]);
  return (JSON.parse(out) as { items: V1Pod[] }).items;
}
