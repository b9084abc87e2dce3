// Compile modes from the pod to the module cache: the `wasmlet.io/compile` annotation reaches the
// ImagePort (an unknown value holds the container in CreateContainerConfigError), the port hands
// it to the image service, and the module cache compiles once per digest, memory cap and mode.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { ImageServicePort } from "../../../src/app/image-port.ts";
import type { ImageService, PulledImage } from "../../../src/images/image-service.ts";
import { ModuleCache } from "../../../src/images/module-cache.ts";
import { PodController } from "../../../src/pods/controller.ts";
import { COMPILE_MODE_SECTION } from "../../../src/wasm/compile-mode.ts";
import { FakeImages, FakeKube, FakeRuntime, makePod, silentLogger, until } from "../pods/fakes.ts";
import { computeModule, expectedRun } from "../wasm/compute-module.ts";

const root = await mkdtemp(join(tmpdir(), "wasmlet-compile-modes-"));
const controllers: PodController[] = [];
after(async () => {
  await Promise.all(controllers.map((c) => c.destroy()));
  await rm(root, { recursive: true, force: true });
});

const digestOf = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const imports = () => ({ wasmlet: { yield: () => 1000 } });

test("the module cache keys compile modes apart and compiles each once", async () => {
  const spec = { functions: 40 };
  const bytes = computeModule(spec);
  let loads = 0;
  const cache = new ModuleCache();
  const request = (mode?: "lazy" | "optimized", memoryLimitBytes?: number) => ({
    digest: digestOf(bytes),
    what: "image t",
    ...(mode === undefined ? {} : { mode }),
    ...(memoryLimitBytes === undefined ? {} : { memoryLimitBytes }),
    load: async () => {
      loads++;
      return bytes;
    },
  });
  const [lazy1, lazy2, optimized1, optimized2, byDefault] = await Promise.all([
    cache.get(request("lazy")),
    cache.get(request("lazy")),
    cache.get(request("optimized")),
    cache.get(request("optimized")),
    cache.get(request()),
  ]);
  assert.equal(lazy1, lazy2);
  assert.equal(optimized1, optimized2);
  assert.equal(byDefault, lazy1, "no mode is the lazy mode");
  assert.notEqual(optimized1, lazy1);
  assert.equal(cache.compilations, 2);
  assert.equal(loads, 2);
  assert.equal(cache.size, 2);
  // Only the optimized module carries the section that keeps V8's module cache from merging them.
  assert.equal(WebAssembly.Module.customSections(lazy1, COMPILE_MODE_SECTION).length, 0);
  assert.equal(WebAssembly.Module.customSections(optimized1, COMPILE_MODE_SECTION).length, 1);
  // Both are instrumented (they import wasmlet.yield) and compute the same.
  for (const module of [lazy1, optimized1]) {
    const run = new WebAssembly.Instance(module, imports()).exports.run as (n: number) => number;
    assert.equal(run(100), expectedRun(spec, 100));
  }
  // The memory cap is a key of its own, in each mode.
  const capped = await cache.get(request("optimized", 2 * 65536));
  assert.notEqual(capped, optimized1);
  assert.equal(await cache.get(request("optimized", 2 * 65536)), capped);
  assert.equal(cache.compilations, 3);
  // Collecting the image forgets every mode of it.
  cache.retain(() => false);
  assert.equal(cache.size, 0);
});

test("the ImagePort passes the pod's compile mode to the image service", async () => {
  const image = {
    reference: "docker.io/library/app:1",
    repository: "docker.io/library/app",
    imageID: "docker.io/library/app@sha256:ab",
    entrypoint: [],
    cmd: [],
    env: [],
    annotations: {},
    pulled: false,
    size: 1,
    wasmFunction: undefined,
    workingDir: undefined,
  } as unknown as PulledImage;
  const compiles: unknown[] = [];
  const module = new WebAssembly.Module(computeModule({ functions: 1 }));
  const service = {
    get: async () => image,
    ensure: async () => image,
    compile: async (_image: PulledImage, options: unknown) => {
      compiles.push(options);
      return module;
    },
  } as unknown as ImageService;
  const port = new ImageServicePort(service);
  const signal = new AbortController().signal;
  const base = { pullPolicy: "IfNotPresent" as const, pullSecrets: [], signal };
  await port.ensure("app:1", { ...base, compileMode: "optimized", memoryLimitBytes: 65536 });
  await port.ensure("app:1", base);
  assert.deepEqual(compiles, [{ memoryLimitBytes: 65536, mode: "optimized" }, {}]);
});

function harness() {
  const kube = new FakeKube();
  kube.runtimeClasses.set("wasm", "wasmlet");
  const images = new FakeImages();
  const runtime = new FakeRuntime();
  const dirs = { pods: join(root, `h${controllers.length}`, "pods") };
  const controller = new PodController({
    node: {
      nodeName: "wasm-node",
      nodeIPs: ["10.9.0.1"],
      allocatable: () => ({ cpu: "2", memory: "2Gi" }),
      podLogsDir: join(root, `h${controllers.length}`, "logs"),
    },
    podsDir: dirs.pods,
    hostPath: false,
    images,
    runtime,
    kube,
    logger: silentLogger,
    timing: {
      crashLoop: { initialMs: 40, maxMs: 160, resetAfterMs: 10_000 },
      imagePull: { initialMs: 40, maxMs: 160, resetAfterMs: 10_000 },
      retryMs: 30,
      errImagePullShowMs: 10,
      volumeRefreshMs: 30,
      emptyDirCheckMs: 20,
      probeSecondMs: 5,
    },
  });
  controllers.push(controller);
  return { kube, images, runtime, controller };
}

const annotated = (annotations: Record<string, string> | undefined, image: string): V1Pod => {
  const pod = makePod({ spec: { containers: [{ name: "app", image }] } });
  if (annotations) pod.metadata = { ...pod.metadata, annotations };
  return pod;
};

const waitingOf = (kube: FakeKube, pod: V1Pod) =>
  kube.status(pod.metadata!.uid!).containerStatuses?.[0]?.state?.waiting;

test("the wasmlet.io/compile annotation: optimized and lazy reach the ImagePort, other values are a CreateContainerConfigError until fixed", async () => {
  const { kube, images, runtime, controller } = harness();
  controller.onPodUpsert(annotated({ "wasmlet.io/compile": "optimized" }, "fast:1"));
  controller.onPodUpsert(annotated({ "wasmlet.io/compile": "lazy" }, "plain:1"));
  controller.onPodUpsert(annotated(undefined, "default:1"));
  await until(() => runtime.instances.length === 3, "three pods running");
  const modeOf = (image: string) =>
    images.calls.find((c) => c.image === image)?.options.compileMode;
  assert.equal(modeOf("fast:1"), "optimized");
  assert.equal(modeOf("plain:1"), "lazy");
  assert.equal(modeOf("default:1"), undefined);

  const bad = annotated({ "wasmlet.io/compile": "turbo" }, "bad:1");
  controller.onPodUpsert(bad);
  const waiting = await until(() => {
    const w = waitingOf(kube, bad);
    return w?.reason === "CreateContainerConfigError" ? w : undefined;
  }, "CreateContainerConfigError");
  const message =
    'invalid value "turbo" of annotation wasmlet.io/compile: expected "optimized" or "lazy"';
  assert.equal(waiting.message, message);
  assert.ok(kube.events.some((e) => e.reason === "Failed" && e.message === `Error: ${message}`));
  assert.equal(
    images.calls.filter((c) => c.image === "bad:1").length,
    0,
    "nothing pulled or compiled",
  );
  // Annotations may be changed on a live pod: the next retry picks the fix up.
  controller.onPodUpsert({
    ...bad,
    metadata: { ...bad.metadata, annotations: { "wasmlet.io/compile": "optimized" } },
  });
  await until(() => runtime.instances.length === 4, "the fixed pod running");
  assert.equal(modeOf("bad:1"), "optimized");
  await controller.destroy();
});
