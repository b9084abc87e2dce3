// The pods' ImagePort over the images module: pull (coalesced, policy-aware; the pod's signal
// reaches the registry, and a pull no pod waits for any more is aborted), then compile with the
// container's memory cap (once per module digest and cap; a compile is not interrupted, only
// no longer waited for).
import type { ImageService, PulledImage } from "../images/image-service.ts";
import type { EnsuredImage, ImageEnsureOptions, ImagePort } from "../pods/ports.ts";

export interface ImagePortObserver {
  onPulled?: (bytes: number) => void;
  onPresent?: () => void;
  onFailed?: () => void;
}

export class ImageServicePort implements ImagePort {
  readonly #images: ImageService;
  readonly #observer: ImagePortObserver;

  constructor(images: ImageService, observer: ImagePortObserver = {}) {
    this.#images = images;
    this.#observer = observer;
  }

  async ensure(image: string, options: ImageEnsureOptions): Promise<EnsuredImage> {
    const present =
      options.pullPolicy === "Always"
        ? undefined
        : await this.#images.get(image).catch(() => undefined);
    if (!present && options.pullPolicy !== "Never") options.onPulling?.();
    const pulled = await this.#images
      .ensure(image, {
        pullPolicy: options.pullPolicy,
        pullSecrets: options.pullSecrets,
        ...(options.executable === undefined ? {} : { executable: options.executable }),
        signal: options.signal,
      })
      .catch((error: unknown) => {
        if (!options.signal.aborted) this.#observer.onFailed?.();
        throw error;
      });
    if (pulled.pulled) this.#observer.onPulled?.(pulled.size);
    else this.#observer.onPresent?.();
    const module = await abortable(
      this.#images.compile(
        pulled,
        options.memoryLimitBytes === undefined
          ? {}
          : { memoryLimitBytes: options.memoryLimitBytes },
      ),
      options.signal,
    );
    return {
      image: pulled.reference,
      imageID: pulled.imageID,
      module,
      config: {
        // A wasm artifact names no program: its module is the entrypoint, so `args` alone keep
        // argv[0] (the module's name) as they would for a container image's Entrypoint.
        entrypoint:
          pulled.entrypoint.length || pulled.cmd.length ? pulled.entrypoint : [programName(pulled)],
        cmd: pulled.cmd,
        env: pulled.env,
        ...(pulled.workingDir === undefined ? {} : { workingDir: pulled.workingDir }),
      },
      ...(pulled.wasmFunction === undefined ? {} : { entrypointExport: pulled.wasmFunction }),
      pulled: pulled.pulled,
      sizeBytes: pulled.size,
    };
  }
}

function programName(image: PulledImage): string {
  const title = image.annotations["org.opencontainers.image.title"];
  return title || `${image.repository.split("/").pop()}.wasm`;
}

/** Settles with `work`, or rejects as soon as `signal` aborts (the work itself goes on, shared). */
function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
