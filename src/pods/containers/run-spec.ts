// The pure step between a container's resolved configuration and its launch: container spec +
// image + resolved env and mounts + limits → the RunSpec the runtime port takes. No I/O, no clock,
// no randomness (the instance id and log path come in), so it is unit-tested on its own.
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { bytesOf, millisOf } from "../../quantity/quantity.ts";
import type { ContainerNetwork } from "../../runtime/types.ts";
import { commandLine, podHostname, runEnvironment } from "../env.ts";
import type { EnsuredImage, PodRef, RunMount, RunSpec } from "../ports.ts";
import { qosClass } from "../status.ts";

export interface RunSpecInputs {
  /** The new instance's id. */
  id: string;
  pod: V1Pod;
  ref: PodRef;
  spec: V1Container;
  image: Pick<EnsuredImage, "module" | "config" | "entrypointExport">;
  /** The container's resolved environment (env and envFrom). */
  env: Map<string, string>;
  mounts: RunMount[];
  logPath: string;
  /** The container's listeners on the pod's address (PodNetwork.containerNetwork). */
  network: ContainerNetwork;
}

export function buildRunSpec(inputs: RunSpecInputs): RunSpec {
  const { pod, ref, spec, image, env } = inputs;
  const command = commandLine(spec, image.config, env);
  const limits = spec.resources?.limits ?? {};
  const requests = spec.resources?.requests ?? {};
  const runSpec: RunSpec = {
    id: inputs.id,
    module: image.module,
    args: command.args,
    env: runEnvironment(image.config, env, podHostname(pod)),
    mounts: inputs.mounts,
    workingDir: command.workingDir,
    stdin: spec.stdin ?? false,
    logPath: inputs.logPath,
    labels: {
      namespace: ref.namespace,
      pod: ref.name,
      uid: ref.uid,
      container: spec.name,
    },
  };
  if (image.entrypointExport !== undefined) runSpec.entrypointExport = image.entrypointExport;
  runSpec.network = inputs.network;
  const memory = bytesOf(limits.memory);
  if (memory !== undefined) runSpec.memoryLimitBytes = memory;
  const cpuLimit = millisOf(limits.cpu);
  if (cpuLimit !== undefined) runSpec.cpuLimitMillis = cpuLimit;
  // The static CPU manager's rule: whole CPUs for a container of a Guaranteed pod.
  const cpuRequest = millisOf(requests.cpu);
  if (cpuRequest !== undefined && cpuRequest % 1000 === 0 && qosClass(pod) === "Guaranteed")
    runSpec.exclusiveCpu = true;
  return runSpec;
}
