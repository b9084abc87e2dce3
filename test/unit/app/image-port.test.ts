// The pods' ImagePort over the image service: the pod's signal goes down to the service's ensure
// (where a shared pull is reference-counted), a failure that is only the pod going away is not
// counted as a failed pull, and a compile is no longer waited for once the pod goes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ImageServicePort } from "../../../src/app/image-port.ts";
import type {
  EnsureOptions,
  ImageService,
  PulledImage,
} from "../../../src/images/image-service.ts";

const image = {
  reference: "registry.local/app:1",
  repository: "registry.local/app",
  imageID: "registry.local/app@sha256:00",
  entrypoint: [],
  cmd: [],
  env: [],
  workingDir: undefined,
  annotations: {},
  wasmFunction: undefined,
  pulled: true,
  size: 10,
} as unknown as PulledImage;

/** An image service that records what it was asked, pulls `image` and compiles with `compile`. */
function service(compile: () => Promise<WebAssembly.Module>) {
  const asked: EnsureOptions[] = [];
  const stub = {
    get: async () => undefined,
    ensure: async (_reference: string, options: EnsureOptions) => {
      asked.push(options);
      options.signal?.throwIfAborted();
      return image;
    },
    compile,
  };
  return { images: stub as unknown as ImageService, asked };
}

test("the pod's signal reaches the image service's pull", async () => {
  const module = new WebAssembly.Module(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
  const { images, asked } = service(async () => module);
  const signal = new AbortController().signal;
  const ensured = await new ImageServicePort(images).ensure("app:1", {
    pullPolicy: "IfNotPresent",
    pullSecrets: [],
    signal,
  });
  assert.equal(asked[0]?.signal, signal);
  assert.equal(ensured.module, module);
});

test("a pod gone while its module compiles stops waiting; its abort is not a failed pull", async () => {
  let failures = 0;
  const { images } = service(() => new Promise(() => {}));
  const controller = new AbortController();
  const port = new ImageServicePort(images, { onFailed: () => failures++ });
  const ensuring = port.ensure("app:1", {
    pullPolicy: "IfNotPresent",
    pullSecrets: [],
    signal: controller.signal,
  });
  controller.abort(new Error("pod deleted"));
  await assert.rejects(ensuring, { message: "pod deleted" });
  const late = port.ensure("app:1", {
    pullPolicy: "IfNotPresent",
    pullSecrets: [],
    signal: controller.signal,
  });
  await assert.rejects(late, { message: "pod deleted" });
  assert.equal(failures, 0);
});
