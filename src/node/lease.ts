// The node heartbeat: a Lease named after the node in kube-node-lease, holderIdentity = node name,
// owned by the Node (so it goes when the Node goes), renewed every few seconds. The controller-
// manager marks the node Unknown when renewals stop.
//
// Two processes must never hold one Node name. The Lease carries an annotation naming the holding
// process (a random instance id, the host's boot id, the pid). Before taking a Lease that is still
// fresh, wasmlet asks whether its holder is gone: a dead process on this host is; a holder elsewhere
// is gone if it does not renew within one renewal period. A live holder is a fatal error. While
// running, a renewal that finds another instance's fresh holding is fatal too.
import { randomBytes } from "node:crypto";
import { type V1Lease, V1MicroTime } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Config } from "../config/config.ts";
import { describeError, type WasmletError } from "../errors.ts";
import { apiError, isAlreadyExists, isConflict, isNotFound } from "../kube/api-error.ts";
import { Backoff, sleep } from "../kube/backoff.ts";
import type { KubeClient } from "../kube/client.ts";
import { kubeError } from "../kube/errors.ts";
import { HOLDER_ANNOTATION, LEASE_NAMESPACE } from "./constants.ts";
import { nodeError } from "./errors.ts";

export interface HolderInfo {
  instance: string;
  bootID: string;
  pid: number;
}

export function newHolder(bootID: string): HolderInfo {
  return { instance: randomBytes(8).toString("hex"), bootID, pid: process.pid };
}

function parseHolder(lease: V1Lease): HolderInfo | undefined {
  const raw = lease.metadata?.annotations?.[HOLDER_ANNOTATION];
  if (!raw) return undefined;
  try {
    const value = JSON.parse(raw) as Partial<HolderInfo>;
    if (
      typeof value.instance === "string" &&
      typeof value.bootID === "string" &&
      typeof value.pid === "number"
    ) {
      return value as HolderInfo;
    }
  } catch {
    // not ours
  }
  return undefined;
}

function renewedAt(lease: V1Lease): number | undefined {
  const t = lease.spec?.renewTime as unknown;
  if (t === undefined || t === null) return undefined;
  const ms = t instanceof Date ? t.getTime() : Date.parse(String(t));
  return Number.isNaN(ms) ? undefined : ms;
}

function isFresh(lease: V1Lease, now: number): boolean {
  const renewed = renewedAt(lease);
  const duration = (lease.spec?.leaseDurationSeconds ?? 40) * 1000;
  return renewed !== undefined && renewed + duration > now;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export interface LeaseOptions {
  kube: KubeClient;
  config: Pick<Config, "nodeName" | "nodeLeaseDurationSeconds" | "nodeLeaseRenewIntervalMs">;
  holder: HolderInfo;
  logger: Logger;
}

async function readLease(kube: KubeClient, name: string): Promise<V1Lease | undefined> {
  try {
    return await kube.coordination.readNamespacedLease({ name, namespace: LEASE_NAMESPACE });
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw apiError(error, `reading lease ${LEASE_NAMESPACE}/${name}`);
  }
}

function taken(name: string, why: string): WasmletError {
  return nodeError("WASMLET_ERR_NODE_NAME_TAKEN", `the node name ${name} is in use: ${why}`);
}

/**
 * Fails with WASMLET_ERR_NODE_NAME_TAKEN when another live process holds the node's Lease.
 * `observeMs` bounds how long a fresh holder on another host is watched for a renewal.
 */
export async function assertNameFree(
  options: LeaseOptions & { observeMs?: number; pollMs?: number },
): Promise<void> {
  const { kube, config, holder, logger } = options;
  const name = config.nodeName;
  const lease = await readLease(kube, name);
  if (!lease || !isFresh(lease, Date.now())) return;
  const age = Math.round((Date.now() - (renewedAt(lease) ?? 0)) / 1000);
  const identity = lease.spec?.holderIdentity;
  if (identity && identity !== name) {
    throw taken(
      name,
      `its Lease ${LEASE_NAMESPACE}/${name} is held by ${identity} (renewed ${age} s ago)`,
    );
  }
  const previous = parseHolder(lease);
  if (previous && previous.bootID === holder.bootID && previous.bootID !== "") {
    if (previous.pid !== process.pid && processAlive(previous.pid)) {
      throw taken(
        name,
        `process ${previous.pid} on this host holds its Lease ${LEASE_NAMESPACE}/${name} (renewed ${age} s ago)`,
      );
    }
    logger.info(
      { previousPid: previous.pid },
      "taking over the node from a previous wasmlet on this host that is gone",
    );
    return;
  }
  // Held from elsewhere (another host, or a kubelet): gone unless it renews within a period.
  const observeMs =
    options.observeMs ??
    Math.min(15_000, ((lease.spec?.leaseDurationSeconds ?? 40) * 1000) / 4 + 2_000);
  const before = renewedAt(lease);
  logger.info(
    { holder: previous ?? identity, observeMs },
    "the node's Lease is fresh; waiting to see whether its holder still renews it",
  );
  const deadline = Date.now() + observeMs;
  while (Date.now() < deadline) {
    await sleep(Math.min(options.pollMs ?? 1_000, Math.max(0, deadline - Date.now())));
    const now = await readLease(kube, name);
    if (!now) return;
    const after = renewedAt(now);
    const other = parseHolder(now);
    if (after !== before && (other === undefined || other.instance !== holder.instance)) {
      throw taken(
        name,
        `its Lease ${LEASE_NAMESPACE}/${name} is being renewed by another holder${other ? ` (pid ${other.pid}, instance ${other.instance})` : ""}`,
      );
    }
  }
}

export class LeaseHeartbeat {
  readonly #options: LeaseOptions;
  readonly #log: Logger;
  readonly #stop = new AbortController();
  #lease: V1Lease | undefined;
  #nodeUid = "";
  #loop: Promise<void> | undefined;
  #fatal: ((error: WasmletError) => void) | undefined;
  #recovered: (() => void) | undefined;
  /** When the Lease was last renewed successfully (ms since the epoch), 0 before the first renewal. */
  lastRenewal = 0;
  /** Renewals that failed in a row. */
  failures = 0;

  constructor(options: LeaseOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: "lease" });
  }

  /** Called when the Lease is found held by another live process: the node must stop. */
  onFatal(listener: (error: WasmletError) => void): void {
    this.#fatal = listener;
  }

  /**
   * Called when renewals succeed again after failing: meanwhile the controller-manager may have
   * marked the node Unknown, so its status must be posted again now.
   */
  onRecovered(listener: () => void): void {
    this.#recovered = listener;
  }

  /** The Node's uid, for the Lease's ownerReference (set again after the Node is recreated). */
  setNodeUid(uid: string): void {
    this.#nodeUid = uid;
  }

  /** Renews once now (creating the Lease if needed), then keeps renewing in the background. */
  async start(nodeUid: string): Promise<void> {
    this.#nodeUid = nodeUid;
    await this.renew();
    this.#loop ??= this.#run();
  }

  async close(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  /** For /healthz: a problem when renewals have failed for longer than the lease lasts. */
  problem(): string | undefined {
    const limit = this.#options.config.nodeLeaseDurationSeconds * 1000;
    if (this.lastRenewal === 0) return "the node lease has not been renewed yet";
    const age = Date.now() - this.lastRenewal;
    return age > limit
      ? `the node lease was last renewed ${Math.round(age / 1000)} s ago`
      : undefined;
  }

  #desired(base: V1Lease | undefined): V1Lease {
    const { config, holder } = this.#options;
    const name = config.nodeName;
    const now = new V1MicroTime(Date.now());
    const takingOver =
      base?.spec?.holderIdentity !== name || parseHolder(base)?.instance !== holder.instance;
    return {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        ...(base?.metadata ?? {}),
        name,
        namespace: LEASE_NAMESPACE,
        annotations: {
          ...(base?.metadata?.annotations ?? {}),
          [HOLDER_ANNOTATION]: JSON.stringify(holder),
        },
        ownerReferences: this.#nodeUid
          ? [{ apiVersion: "v1", kind: "Node", name, uid: this.#nodeUid }]
          : [],
        managedFields: undefined,
      },
      spec: {
        ...(base?.spec ?? {}),
        holderIdentity: name,
        leaseDurationSeconds: config.nodeLeaseDurationSeconds,
        renewTime: now,
        ...(takingOver || !base?.spec?.acquireTime
          ? {
              acquireTime: now,
              leaseTransitions: (base?.spec?.leaseTransitions ?? 0) + (base ? 1 : 0),
            }
          : {}),
      },
    };
  }

  /** One renewal; throws on failure (WASMLET_ERR_NODE_NAME_TAKEN when someone else holds it). */
  async renew(): Promise<void> {
    const { kube, config, holder } = this.#options;
    const name = config.nodeName;
    for (let attempt = 0; attempt < 3; attempt++) {
      const base = this.#lease;
      try {
        if (!base) {
          const existing = await readLease(kube, name);
          if (!existing) {
            this.#lease = await kube.coordination.createNamespacedLease({
              namespace: LEASE_NAMESPACE,
              body: this.#desired(undefined),
            });
            this.lastRenewal = Date.now();
            return;
          }
          this.#lease = existing;
          continue;
        }
        const other = parseHolder(base);
        if (
          other &&
          other.instance !== holder.instance &&
          this.lastRenewal !== 0 &&
          isFresh(base, Date.now())
        ) {
          throw taken(
            name,
            `another wasmlet (pid ${other.pid}, instance ${other.instance}) took over its Lease ${LEASE_NAMESPACE}/${name}`,
          );
        }
        this.#lease = await kube.coordination.replaceNamespacedLease({
          name,
          namespace: LEASE_NAMESPACE,
          body: this.#desired(base),
        });
        this.lastRenewal = Date.now();
        return;
      } catch (error) {
        if (isConflict(error) || isAlreadyExists(error) || isNotFound(error)) {
          // Someone else wrote it (or it vanished): read it again and decide.
          this.#lease = undefined;
          const fresh = await readLease(kube, name);
          if (fresh) this.#lease = fresh;
          continue;
        }
        throw apiError(error, `renewing lease ${LEASE_NAMESPACE}/${name}`);
      }
    }
    throw kubeError(
      "WASMLET_ERR_KUBE_CONFLICT",
      `renewing lease ${LEASE_NAMESPACE}/${name}: the Lease kept changing`,
    );
  }

  async #run(): Promise<void> {
    const interval = this.#options.config.nodeLeaseRenewIntervalMs;
    const backoff = new Backoff({ initialMs: Math.min(200, interval), maxMs: interval });
    const signal = this.#stop.signal;
    let wait = interval;
    while (!signal.aborted) {
      await sleep(wait, signal);
      if (signal.aborted) return;
      try {
        await this.renew();
        if (this.failures > 0) {
          this.#log.info({ failures: this.failures }, "node lease renewed again");
          this.#recovered?.();
        }
        this.failures = 0;
        backoff.reset();
        wait = interval;
      } catch (error) {
        if ((error as WasmletError).code === "WASMLET_ERR_NODE_NAME_TAKEN") {
          this.#log.error({ err: describeError(error) }, "lost the node name to another process");
          this.#fatal?.(error as WasmletError);
          return;
        }
        this.failures++;
        wait = backoff.next();
        this.#log.warn(
          { failures: this.failures, retryInMs: wait, err: describeError(error) },
          "cannot renew the node lease; retrying",
        );
      }
    }
  }
}
