// RuntimeClass handlers for admission, read from the API on demand and kept for a while: admission
// asks once per pod, and a RuntimeClass rarely changes.
import { isNotFound } from "../kube/api-error.ts";
import type { KubeClient } from "../kube/client.ts";
import { TtlCache } from "../server/ttl-cache.ts";
import type { RuntimeClassLookup } from "./kube-port.ts";

export class RuntimeClassCache implements RuntimeClassLookup {
  readonly #kube: KubeClient;
  /** Boxed, so that "no such RuntimeClass" is cached too. */
  readonly #cache: TtlCache<{ handler: string | undefined }>;
  readonly #ttlMs: number;

  constructor(kube: KubeClient, options: { ttlMs?: number; now?: () => number } = {}) {
    this.#kube = kube;
    this.#ttlMs = options.ttlMs ?? 30_000;
    this.#cache = new TtlCache(1000, options.now);
  }

  async handler(name: string): Promise<string | undefined> {
    const cached = this.#cache.get(name);
    if (cached) return cached.handler;
    let handler: string | undefined;
    try {
      handler = (await this.#kube.nodeApi.readRuntimeClass({ name })).handler;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    this.#cache.set(name, { handler }, this.#ttlMs);
    return handler;
  }
}
