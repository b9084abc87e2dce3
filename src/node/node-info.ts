// The Node's identity as `kubectl get nodes -o wide` and `describe node` show it.
import type { V1NodeAddress, V1NodeSystemInfo } from "@kubernetes/client-node";
import {
  ARCHITECTURE,
  CONTAINER_RUNTIME_VERSION,
  KUBELET_VERSION,
  OPERATING_SYSTEM,
} from "./constants.ts";
import type { HostIdentity } from "./host.ts";

export function nodeInfo(host: HostIdentity): V1NodeSystemInfo {
  return {
    architecture: ARCHITECTURE,
    operatingSystem: OPERATING_SYSTEM,
    // OS-IMAGE: what pods see (WASI preview1), and the host under it.
    osImage: `WASI preview1 (wasmlet, Node ${process.versions.node}) on ${host.hostOS}`,
    kernelVersion: host.kernelVersion,
    containerRuntimeVersion: CONTAINER_RUNTIME_VERSION,
    kubeletVersion: KUBELET_VERSION,
    kubeProxyVersion: "",
    machineID: host.machineID,
    systemUUID: host.systemUUID,
    bootID: host.bootID,
  };
}

export function nodeAddresses(nodeIP: string, hostname: string): V1NodeAddress[] {
  return [
    { type: "InternalIP", address: nodeIP },
    { type: "Hostname", address: hostname },
  ];
}
