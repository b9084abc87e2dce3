// A container: an instance whose output goes to its CRI log file, which can be attached to and
// exec'd into. Its execs die with it, as processes in a container's cgroup do.
import { runtimeError } from "./errors.ts";
import { type InstanceContext, InstanceHandle, type InstanceParams } from "./instance.ts";
import { checkExecOptions } from "./spec.ts";
import type { Container, ContainerSpec, ExecOptions, Instance, OutputListener } from "./types.ts";

export class ContainerHandle extends InstanceHandle implements Container {
  readonly spec: Readonly<ContainerSpec>;
  readonly #execs = new Set<InstanceHandle>();
  #execCount = 0;

  constructor(spec: ContainerSpec, maxLineBytes: number, context: InstanceContext) {
    const params: InstanceParams = {
      id: spec.id,
      module: spec.module,
      args: spec.args,
      env: spec.env,
      mounts: spec.mounts,
      entrypoint: spec.entrypoint ?? "_start",
      memoryLimitBytes: spec.memoryLimitBytes,
      memoryGroup: spec.id,
      cpuLimitMillis: spec.cpuLimitMillis,
      dedicated: spec.exclusiveCpu === true,
      stdin: spec.stdin === true,
      output: { kind: "log", logPath: spec.logPath, rotation: spec.logRotation, maxLineBytes },
      deadlineMs: spec.deadlineMs,
      network: spec.network,
    };
    super(params, {
      ...context,
      onExit: (instance) => {
        for (const exec of this.#execs) exec.kill({ kind: "container-exited" });
        context.onExit(instance);
      },
    });
    this.spec = spec;
  }

  onOutput(listener: OutputListener): () => void {
    const wrapped: OutputListener = (stream, chunk) => listener(stream, chunk);
    this.listeners.add(wrapped);
    this.setListenerCount();
    return () => {
      this.listeners.delete(wrapped);
      this.setListenerCount();
    };
  }

  exec(options: ExecOptions): Instance {
    checkExecOptions(options);
    const module = this.module;
    if (!this.running || !module)
      throw runtimeError("WASMLET_ERR_NOT_RUNNING", `container ${this.id} is not running`);
    const exec = new InstanceHandle(
      {
        ...this.params,
        id: `${this.id}/exec-${++this.#execCount}`,
        module,
        args: options.args,
        stdin: options.stdin === true,
        output: { kind: "stream" },
        deadlineMs: options.deadlineMs,
        // An exec shares its container's network, but not its listeners.
        network: this.params.network && { ...this.params.network, listen: [] },
        sink: options.onOutput,
        near: this.worker,
      },
      {
        ...this.context,
        onExit: (instance) => {
          this.#execs.delete(instance);
        },
      },
    );
    this.#execs.add(exec);
    return exec;
  }
}
