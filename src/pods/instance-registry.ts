// Node-wide guard: at most one live instance per (pod uid, container). Every start claims, every
// exit releases; a second claim is refused with WASMLET_ERR_DUPLICATE_INSTANCE instead of running
// a container twice.
import { podError } from "./errors.ts";

export class InstanceRegistry {
  readonly #live = new Map<string, string>();

  static key(uid: string, container: string): string {
    return `${uid}/${container}`;
  }

  claim(uid: string, container: string, instanceId: string): void {
    const key = InstanceRegistry.key(uid, container);
    const current = this.#live.get(key);
    if (current !== undefined) {
      throw podError(
        "WASMLET_ERR_DUPLICATE_INSTANCE",
        `container ${container} of pod ${uid} already runs as instance ${current}; refusing to start ${instanceId}`,
      );
    }
    this.#live.set(key, instanceId);
  }

  release(uid: string, container: string, instanceId: string): void {
    const key = InstanceRegistry.key(uid, container);
    if (this.#live.get(key) === instanceId) this.#live.delete(key);
  }

  live(uid: string, container: string): string | undefined {
    return this.#live.get(InstanceRegistry.key(uid, container));
  }

  get size(): number {
    return this.#live.size;
  }
}
