// src/images — pull wasm from OCI registries, verify it, keep it, compile it once.
// Knows nothing of Kubernetes: pull policies and pull secrets arrive as plain values.
//
// For the pods code:
//
//   const images = new ImageService({
//     dataDir,                              // store in <dataDir>/images
//     supportedImports: runtimeImports,     // "wasi_snapshot_preview1.*", "env.x", …
//     dockerConfigPath: "/root/.docker/config.json",   // node-level credentials (optional)
//     registry: { plainHttp: ["registry.local:5000"], hosts: RegistryHosts.load("/etc/wasmlet/certs.d") },
//     gc: { highPercent: 85, lowPercent: 80 },          // or { highBytes, lowBytes }
//     inUse: () => imagesOfPodsOnThisNode(),            // refs or image IDs never collected
//   });
//   await images.start();
//   const image = await images.ensure(container.image, {
//     pullPolicy: container.imagePullPolicy,            // undefined → the `:latest` rule
//     pullSecrets: decodedDockerConfigJsonOrDockercfg,  // one string per imagePullSecret
//     executable: container.command?.[0],               // container images: module named by command
//     signal,                                           // the pod's: ends its wait; the pull ends with its last waiter
//   });
//   image.imageID   // "docker.io/library/app@sha256:…" for containerStatuses[].imageID
//   image.pulled    // false → event "Container image … already present on machine"
//   const module = await images.compile(image, { memoryLimitBytes });  // WebAssembly.Module, cached
//   // argv: pod command/args, else image.entrypoint + image.cmd; env: image.env then the pod's;
//   // cwd: pod workingDir ?? image.workingDir; image.wasmFunction: runwasi's `path#function`.
//
// Errors are WasmletErrors (see errors.ts): match on `code`. ErrImagePull-like failures are
// WASMLET_ERR_IMAGE_AUTH_FAILED, _NOT_FOUND, _REGISTRY_UNAVAILABLE, _REGISTRY_ERROR,
// _DIGEST_MISMATCH, _TOO_LARGE; "not runnable" ones are _NOT_WASM, _COMPONENT, _INVALID_WASM,
// _ENTRYPOINT_MISSING, _MANIFEST_INVALID, _UNSUPPORTED_IMPORTS; ErrImageNeverPull is _NEVER_PULL.
//
// Files: reference.ts (parsing/normalising), credentials.ts (docker configs, keyring matching),
// registry-client.ts (fetch, auth challenges, token cache, retries, mirrors, push),
// registry-hosts.ts (containerd's hosts.toml: mirrors, capabilities, per-host TLS and headers),
// manifest.ts (media types, parsing), formats.ts (which layout, platform choice, wasm checks),
// layers.ts (a file out of tar layers), content-store.ts (verified blobs, records, GC),
// module-cache.ts (compile once, import check), image-service.ts (ensure/compile/gc),
// shared-work.ts (one pull or download for all who wait, aborted when the last one leaves),
// pull-policy.ts, push.ts (CNCF artifact for `wasmlet push`).

export type { GcPolicy, GcResult } from "./content-store.ts";
export {
  CredentialSet,
  credentialsFromPullSecrets,
  DockerConfigFile,
  type RegistryCredential,
} from "./credentials.ts";
export { imageError } from "./errors.ts";
export { type ImageFormat, NOT_WASM_HINT } from "./formats.ts";
export {
  DEFAULT_SIZE_LIMITS,
  type EnsureOptions,
  ImageService,
  type ImageServiceOptions,
  type PulledImage,
  type SizeLimits,
} from "./image-service.ts";
export { MediaType } from "./manifest.ts";
export { ImportChecker, ModuleCache, type SupportedImports } from "./module-cache.ts";
export { defaultPullPolicy, isPullPolicy, type PullPolicy } from "./pull-policy.ts";
export { buildWasmArtifact, type PushOptions, type PushResult, pushWasmArtifact } from "./push.ts";
export {
  familiarReference,
  formatReference,
  type ImageReference,
  imageIdFor,
  parseReference,
  registryHost,
} from "./reference.ts";
export { RegistryClient, type RegistryClientOptions, Repository } from "./registry-client.ts";
export { type HostCapability, type HostNamespace, RegistryHosts } from "./registry-hosts.ts";
