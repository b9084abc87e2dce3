// In-memory fakes of the pods/ ports, for unit tests. They behave like the real parts where the pod
// logic depends on it (404 on a missing object, strategic merge of status conditions by type,
// instances that exit, stop within grace) and record every call for assertions. Their clock can be
// the one injected into the controller, and `until` polls on real timers, so tests may mock
// setTimeout (node:test's mock.timers) and move time themselves. `controllerBench` builds a
// PodController over fresh fakes, in a temporary directory removed after the file's tests.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import type { V1ConfigMap, V1Pod, V1Secret, V1Service } from "@kubernetes/client-node";
import pino from "pino";
import { PodController } from "../../../src/pods/controller.ts";
import type { Timing } from "../../../src/pods/lifecycle-deps.ts";
import type {
  EnsuredImage,
  ExecResult,
  ExitStatus,
  ImageEnsureOptions,
  ImagePort,
  KubePort,
  PodEvent,
  RunHandle,
  RunSpec,
  RuntimePort,
} from "../../../src/pods/ports.ts";
import type { StateName } from "../../../src/pods/states/state.ts";
import type { ServiceAccountTokenRequest } from "../../../src/volumes/ports.ts";

export { until } from "../../support/until.ts";

export const silentLogger = pino({ level: "silent" });

// The smallest valid module: magic + version.
export const EMPTY_MODULE = new WebAssembly.Module(
  new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]),
);

export class HttpError extends Error {
  readonly statusCode: number;
  constructor(statusCode: number, message: string) {
    super(message);
    this.statusCode = statusCode;
  }
}

export class FakeKube implements KubePort {
  readonly configMaps = new Map<string, V1ConfigMap>();
  readonly secrets = new Map<string, V1Secret>();
  readonly runtimeClasses = new Map<string, string>();
  services: V1Service[] = [];
  readonly events: PodEvent[] = [];
  readonly patches: { namespace: string; name: string; patch: Record<string, unknown> }[] = [];
  readonly deletes: { namespace: string; name: string; uid: string }[] = [];
  readonly tokens: ServiceAccountTokenRequest[] = [];
  /** Server-side status per pod uid, built by applying patches like the API server would. */
  readonly statuses = new Map<string, Record<string, unknown>>();
  tokenSeconds = 3600;
  failPatches = 0;
  /** DELETE calls to fail with a 500 (Infinity: every one). */
  failDeletes = 0;
  deleteAttempts = 0;

  setConfigMap(
    namespace: string,
    name: string,
    data: Record<string, string>,
    binaryData?: Record<string, string>,
  ): void {
    this.configMaps.set(`${namespace}/${name}`, {
      metadata: { name, namespace },
      data,
      ...(binaryData ? { binaryData } : {}),
    });
  }

  setSecret(namespace: string, name: string, data: Record<string, string>): void {
    const encoded = Object.fromEntries(
      Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")]),
    );
    this.secrets.set(`${namespace}/${name}`, { metadata: { name, namespace }, data: encoded });
  }

  async getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined> {
    return structuredClone(this.configMaps.get(`${namespace}/${name}`));
  }

  async getSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    return structuredClone(this.secrets.get(`${namespace}/${name}`));
  }

  async createServiceAccountToken(
    _namespace: string,
    serviceAccountName: string,
    request: ServiceAccountTokenRequest,
  ) {
    this.tokens.push(request);
    return {
      token: `token-${serviceAccountName}-${this.tokens.length}`,
      expirationTimestamp: new Date(Date.now() + this.tokenSeconds * 1000),
    };
  }

  async patchPodStatus(
    namespace: string,
    name: string,
    patch: Record<string, unknown>,
  ): Promise<void> {
    if (this.failPatches > 0) {
      this.failPatches--;
      throw new HttpError(500, "injected failure");
    }
    this.patches.push({ namespace, name, patch: structuredClone(patch) });
    const uid = (patch.metadata as { uid: string }).uid;
    const current = this.statuses.get(uid) ?? {};
    for (const [field, value] of Object.entries(patch.status as Record<string, unknown>)) {
      if (value === null) delete current[field];
      else if (field === "conditions") {
        const merged = new Map(
          ((current.conditions as { type: string }[] | undefined) ?? []).map((c) => [c.type, c]),
        );
        // A strategic merge: a condition's fields merge into the one of its type; null clears.
        for (const c of value as { type: string }[]) {
          const fields = { ...merged.get(c.type), ...structuredClone(c) } as Record<
            string,
            unknown
          >;
          for (const [key, field] of Object.entries(fields)) if (field === null) delete fields[key];
          merged.set(c.type, fields as { type: string });
        }
        current.conditions = [...merged.values()];
      } else current[field] = structuredClone(value);
    }
    this.statuses.set(uid, current);
  }

  async deletePod(namespace: string, name: string, uid: string): Promise<void> {
    this.deleteAttempts++;
    if (this.failDeletes > 0) {
      this.failDeletes--;
      throw new HttpError(500, "injected failure");
    }
    this.deletes.push({ namespace, name, uid });
  }

  recordEvent(event: PodEvent): void {
    this.events.push(event);
  }

  async getRuntimeClassHandler(name: string): Promise<string | undefined> {
    return this.runtimeClasses.get(name);
  }

  listServices(): readonly V1Service[] {
    return this.services;
  }

  /** The status as the API holds it; tests read arbitrary JSON paths from it. */
  // biome-ignore lint/suspicious/noExplicitAny: assertions navigate untyped status JSON
  status(uid: string): Record<string, any> {
    return this.statuses.get(uid) ?? {};
  }

  eventReasons(): string[] {
    return this.events.map((e) => e.reason);
  }
}

export interface FakeImage {
  config?: EnsuredImage["config"];
  /** Fail this many times before succeeding (with `reason` when given). */
  failures?: number;
  reason?: string;
  /** Never resolve until the signal aborts. */
  hang?: boolean;
}

export class FakeImages implements ImagePort {
  readonly images = new Map<string, FakeImage>();
  readonly calls: { image: string; options: ImageEnsureOptions }[] = [];

  async ensure(image: string, options: ImageEnsureOptions): Promise<EnsuredImage> {
    this.calls.push({ image, options });
    const entry = this.images.get(image) ?? {};
    if (entry.hang) {
      await new Promise((_, reject) => {
        options.signal.addEventListener("abort", () => reject(new Error("aborted")), {
          once: true,
        });
      });
    }
    if ((entry.failures ?? 0) > 0) {
      entry.failures = (entry.failures ?? 0) - 1;
      const error = new Error(`pull of ${image} failed: manifest unknown`) as Error & {
        reason?: string;
      };
      if (entry.reason) error.reason = entry.reason;
      throw error;
    }
    options.onPulling?.();
    return {
      image: `docker.io/library/${image}`,
      imageID: `docker.io/library/${image.split(":")[0]}@sha256:${"ab".repeat(32)}`,
      module: EMPTY_MODULE,
      config: entry.config ?? { entrypoint: ["/app.wasm"] },
      pulled: true,
      sizeBytes: 1234,
    };
  }
}

export interface Behaviour {
  /** Exit by itself after this many ms (undefined: run until stopped). */
  exitAfterMs?: number;
  exitCode?: number;
  reason?: string;
  /** `started` rejects with this message. */
  startError?: string;
  /** Answers exec probes and hooks (default: exit code 0, no output). */
  exec?: (args: string[]) => ExecResult;
}

export class FakeInstance implements RunHandle {
  readonly id: string;
  readonly spec: RunSpec;
  readonly started: Promise<Date>;
  readonly exited: Promise<ExitStatus>;
  readonly stops: number[] = [];
  readonly execs: { args: string[]; timeoutMs: number | undefined }[] = [];
  /** When stop() was first called (performance.now()), to check the order of stops. */
  stoppedAt: number | undefined;
  readonly createdAt = performance.now();
  readonly #behaviour: Behaviour;
  #resolveExit!: (status: ExitStatus) => void;
  readonly #startedAt: Date;
  #finishedAt: Date | undefined;
  #done = false;
  readonly #onExit: () => void;
  readonly #clock: () => Date;

  constructor(spec: RunSpec, behaviour: Behaviour, onExit: () => void, clock: () => Date) {
    this.id = spec.id;
    this.spec = spec;
    this.#behaviour = behaviour;
    this.#onExit = onExit;
    this.#clock = clock;
    this.#startedAt = clock();
    this.exited = new Promise((resolve) => {
      this.#resolveExit = resolve;
    });
    if (behaviour.startError) {
      this.started = Promise.reject(new Error(behaviour.startError));
      this.started.catch(() => undefined);
      this.exit(128);
    } else {
      this.started = Promise.resolve(this.#startedAt);
      if (behaviour.exitAfterMs !== undefined) {
        setTimeout(
          () => this.exit(behaviour.exitCode ?? 0, behaviour.reason),
          behaviour.exitAfterMs,
        );
      }
    }
  }

  get running(): boolean {
    return !this.#done;
  }

  /** When it started and exited, on the runtime's clock. */
  get startedAt(): Date {
    return this.#startedAt;
  }

  get finishedAt(): Date | undefined {
    return this.#finishedAt;
  }

  exit(exitCode: number, reason?: string): void {
    if (this.#done) return;
    this.#done = true;
    this.#finishedAt = this.#clock();
    this.#onExit();
    this.#resolveExit({
      exitCode,
      ...(reason ? { reason } : {}),
      startedAt: this.#startedAt,
      finishedAt: this.#finishedAt,
    });
  }

  async stop(graceMs: number): Promise<void> {
    this.stops.push(graceMs);
    this.stoppedAt ??= performance.now();
    this.exit(143);
    await this.exited;
  }

  async exec(args: string[], timeoutMs?: number): Promise<ExecResult> {
    this.execs.push({ args, timeoutMs });
    if (this.#done) throw new Error("container is not running");
    return this.#behaviour.exec?.(args) ?? { exitCode: 0, output: "", timedOut: false };
  }
}

export class FakeRuntime implements RuntimePort {
  readonly instances: FakeInstance[] = [];
  readonly behaviours = new Map<string, Behaviour>();
  /** Live instances per `uid/container`; a second one is a bug the tests must catch. */
  readonly live = new Map<string, number>();
  maxConcurrentPerContainer = 0;
  readonly #clock: () => Date;

  /** `clock`: the controller's, so that exit times and back-offs agree. */
  constructor(clock: () => Date = () => new Date()) {
    this.#clock = clock;
  }

  run(spec: RunSpec): RunHandle {
    const key = `${spec.labels.uid}/${spec.labels.container}`;
    const count = (this.live.get(key) ?? 0) + 1;
    this.live.set(key, count);
    this.maxConcurrentPerContainer = Math.max(this.maxConcurrentPerContainer, count);
    const behaviour = this.behaviours.get(spec.labels.container ?? "") ?? {};
    const instance = new FakeInstance(
      spec,
      behaviour,
      () => this.live.set(key, (this.live.get(key) ?? 1) - 1),
      this.#clock,
    );
    this.instances.push(instance);
    return instance;
  }

  of(container: string): FakeInstance[] {
    return this.instances.filter((i) => i.spec.labels.container === container);
  }
}

/** Lets every promise continuation already queued run (one turn of the event loop, not a wait for time). */
export function drained(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

let counter = 0;

export function makePod(
  overrides: {
    spec?: Partial<V1Pod["spec"]>;
    metadata?: Partial<V1Pod["metadata"]>;
    status?: V1Pod["status"];
  } = {},
): V1Pod {
  counter++;
  const pod: V1Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `pod-${counter}`,
      namespace: "default",
      uid: `uid-${counter}-${process.pid}`,
      ...overrides.metadata,
    },
    spec: {
      nodeName: "wasm-node",
      restartPolicy: "Always",
      containers: [{ name: "app", image: "hello:1" }],
      ...overrides.spec,
    } as V1Pod["spec"],
  };
  if (overrides.status) pod.status = overrides.status;
  return pod;
}

/** Back-offs and retries in tens of milliseconds, for controllers on the real clock. */
export const TEST_TIMING: Partial<Timing> = {
  crashLoop: { initialMs: 40, maxMs: 160, resetAfterMs: 10_000 },
  imagePull: { initialMs: 40, maxMs: 160, resetAfterMs: 10_000 },
  retryMs: 30,
  errImagePullShowMs: 10,
  volumeRefreshMs: 30,
  emptyDirCheckMs: 20,
  probeSecondMs: 5,
};

export interface HarnessOptions {
  /** Default 10.9.0.1. */
  nodeIPs?: string[];
  /** Default 2 CPUs and 2Gi. */
  allocatable?: () => Record<string, string>;
  /** Over TEST_TIMING. */
  timing?: Partial<Timing>;
  /** The controller's clock, and the fake runtime's. */
  now?: () => Date;
}

/**
 * A temporary directory (prefix `prefix`) for pod controllers, and `harness()` to make one over
 * fresh fakes (the runtime class "wasm" handled by wasmlet) with the states it passes through per
 * pod UID; `make()` makes another over the same fakes and directories, as after a restart. After
 * the file's tests, every controller is destroyed before the directory goes: a lifecycle still
 * retrying would write into it while it is removed (and keep the process alive after a failure).
 */
export async function controllerBench(prefix: string) {
  const root = await mkdtemp(join(tmpdir(), prefix));
  const controllers: PodController[] = [];
  after(async () => {
    await Promise.all(controllers.map((controller) => controller.destroy()));
    await rm(root, { recursive: true, force: true });
  });
  let harnesses = 0;
  function harness(options: HarnessOptions = {}) {
    harnesses++;
    const kube = new FakeKube();
    kube.runtimeClasses.set("wasm", "wasmlet");
    const images = new FakeImages();
    const runtime = new FakeRuntime(options.now);
    const states = new Map<string, StateName[]>();
    const dirs = {
      pods: join(root, `h${harnesses}`, "pods"),
      logs: join(root, `h${harnesses}`, "logs"),
    };
    const make = () => {
      const controller = new PodController({
        node: {
          nodeName: "wasm-node",
          nodeIPs: options.nodeIPs ?? ["10.9.0.1"],
          allocatable: options.allocatable ?? (() => ({ cpu: "2", memory: "2Gi" })),
          podLogsDir: dirs.logs,
        },
        podsDir: dirs.pods,
        hostPath: false,
        images,
        runtime,
        kube,
        logger: silentLogger,
        timing: { ...TEST_TIMING, ...options.timing },
        ...(options.now ? { now: options.now } : {}),
        onState: (pod, state) => states.set(pod.uid, [...(states.get(pod.uid) ?? []), state]),
      });
      controllers.push(controller);
      return controller;
    };
    const statesOf = (pod: V1Pod) => states.get(pod.metadata!.uid!) ?? [];
    return { kube, images, runtime, controller: make(), states, statesOf, dirs, make };
  }
  return { root, harness };
}
