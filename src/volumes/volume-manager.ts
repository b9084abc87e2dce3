// Materialises a pod's volumes under `<podsDir>/<uid>/volumes/<plugin>/<name>` (the kubelet's
// layout), keeps ConfigMap/Secret/downwardAPI/projected contents current through the atomic
// writer, measures emptyDir usage against sizeLimit, and turns a container's volumeMounts into the
// plain mount list the runtime takes.
import { cp, lstat, mkdir, readdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import type {
  V1ConfigMap,
  V1Container,
  V1DownwardAPIVolumeFile,
  V1KeyToPath,
  V1Pod,
  V1Secret,
  V1Volume,
} from "@kubernetes/client-node";
import { messageOf } from "../errors.ts";
import { bytesOf } from "../quantity/quantity.ts";
import {
  type FileProjection,
  type Payload,
  validatePayloadPath,
  writeAtomic,
} from "./atomic-writer.ts";
import { type Walked, walkBeneath } from "./beneath.ts";
import { volumeError } from "./errors.ts";
import { type DownwardContext, podFieldValue, resourceFieldValue } from "./field-ref.ts";
import { type HostPathPolicy, prepareHostPath } from "./host-path.ts";
import type { VolumeSourcePort } from "./ports.ts";

export type VolumeKind =
  | "configMap"
  | "secret"
  | "emptyDir"
  | "downwardAPI"
  | "projected"
  | "hostPath";

export interface MountedVolume {
  name: string;
  kind: VolumeKind;
  /** Where the volume's content lives on the host. */
  hostPath: string;
  /** configMap, secret, downwardAPI and projected volumes are always mounted read-only. */
  alwaysReadOnly: boolean;
}

export interface VolumeFailure {
  volume: string;
  message: string;
}

export interface SetUpResult {
  volumes: Map<string, MountedVolume>;
  failures: VolumeFailure[];
}

/** A mount as the runtime takes it: a host path preopened at a guest path. */
export interface RunMount {
  hostPath: string;
  guestPath: string;
  readOnly: boolean;
  /** A subPath can name a single file; the runtime decides whether it can mount files. */
  kind: "directory" | "file";
}

/** A container's volumeMount with subPathExpr already expanded by the caller. */
export interface ContainerMountRequest {
  name: string;
  mountPath: string;
  subPath?: string;
  readOnly?: boolean;
}

export interface VolumeManagerOptions {
  /** Root of per-pod directories, e.g. /var/lib/wasmlet/pods. */
  podsDir: string;
  source: VolumeSourcePort;
  hostPath: HostPathPolicy;
  now?: () => Date;
}

const PLUGIN_DIRS: Record<Exclude<VolumeKind, "hostPath">, string> = {
  configMap: "kubernetes.io~configmap",
  secret: "kubernetes.io~secret",
  emptyDir: "kubernetes.io~empty-dir",
  downwardAPI: "kubernetes.io~downward-api",
  projected: "kubernetes.io~projected",
};

const DEFAULT_MODE = 0o644;
const TOKEN_REFRESH_FRACTION = 0.8;
const TOKEN_MAX_AGE_MS = 24 * 60 * 60 * 1000;

export function volumeKind(volume: V1Volume): VolumeKind | undefined {
  if (volume.configMap) return "configMap";
  if (volume.secret) return "secret";
  if (volume.emptyDir) return "emptyDir";
  if (volume.downwardAPI) return "downwardAPI";
  if (volume.projected) return "projected";
  if (volume.hostPath) return "hostPath";
  return undefined;
}

/** The name of the (first) volume source field set on a volume, for messages. */
export function volumeSourceName(volume: V1Volume): string {
  for (const key of Object.keys(volume)) {
    if (key !== "name" && (volume as unknown as Record<string, unknown>)[key] != null) return key;
  }
  return "unknown";
}

interface CachedToken {
  token: string;
  issuedAt: number;
  expiresAt: number;
}

export function validateSubPath(subPath: string): void {
  if (subPath.startsWith("/"))
    throw volumeError(
      "WASMLET_ERR_VOLUME_PATH",
      `subPath ${JSON.stringify(subPath)} must be a relative path`,
    );
  if (subPath.split("/").includes(".."))
    throw volumeError(
      "WASMLET_ERR_VOLUME_PATH",
      `subPath ${JSON.stringify(subPath)} must not contain '..'`,
    );
}

export class VolumeManager {
  readonly #podsDir: string;
  readonly #source: VolumeSourcePort;
  readonly #hostPath: HostPathPolicy;
  readonly #now: () => Date;
  readonly #tokens = new Map<string, CachedToken>();

  constructor(options: VolumeManagerOptions) {
    this.#podsDir = resolve(options.podsDir);
    this.#source = options.source;
    this.#hostPath = options.hostPath;
    this.#now = options.now ?? (() => new Date());
  }

  podDir(uid: string): string {
    if (uid === "" || uid.includes("/") || uid.startsWith("."))
      throw volumeError("WASMLET_ERR_VOLUME_PATH", `invalid pod uid ${JSON.stringify(uid)}`);
    return join(this.#podsDir, uid);
  }

  volumeDir(uid: string, kind: Exclude<VolumeKind, "hostPath">, name: string): string {
    return join(this.podDir(uid), "volumes", PLUGIN_DIRS[kind], name);
  }

  /**
   * Sets up every volume of the pod. Volumes that fail are listed in `failures` (with the message
   * the kubelet would put in a FailedMount event); calling again retries them. Idempotent: emptyDir
   * contents survive (as they survive container restarts and kubelet restarts).
   */
  async setUp(pod: V1Pod, context: DownwardContext): Promise<SetUpResult> {
    const uid = pod.metadata?.uid ?? "";
    const volumes = new Map<string, MountedVolume>();
    const failures: VolumeFailure[] = [];
    for (const volume of pod.spec?.volumes ?? []) {
      try {
        volumes.set(volume.name, await this.#setUpOne(pod, uid, volume, context));
      } catch (error) {
        failures.push({ volume: volume.name, message: messageOf(error) });
      }
    }
    return { volumes, failures };
  }

  async #setUpOne(
    pod: V1Pod,
    uid: string,
    volume: V1Volume,
    context: DownwardContext,
  ): Promise<MountedVolume> {
    const kind = volumeKind(volume);
    if (kind === undefined) {
      throw volumeError(
        "WASMLET_ERR_VOLUME_SETUP",
        `volume type ${volumeSourceName(volume)} is not supported by wasmlet`,
      );
    }
    if (kind === "hostPath") {
      const path = volume.hostPath?.path ?? "";
      const hostPath = await prepareHostPath(this.#hostPath, path, volume.hostPath?.type);
      return { name: volume.name, kind, hostPath, alwaysReadOnly: false };
    }
    const dir = this.volumeDir(uid, kind, volume.name);
    if (kind === "emptyDir") {
      await mkdir(dir, { recursive: true, mode: 0o777 });
      return { name: volume.name, kind, hostPath: dir, alwaysReadOnly: false };
    }
    const payload = await this.#payload(pod, volume, context);
    await writeAtomic(dir, payload, this.#now());
    return { name: volume.name, kind, hostPath: dir, alwaysReadOnly: true };
  }

  /**
   * Re-projects the pod's configMap, secret, downwardAPI and projected volumes (ConfigMap/Secret
   * updates, label/annotation changes, token rotation). Returns the names of volumes whose content
   * changed. A source that has become unreadable keeps its last content, like the kubelet.
   */
  async refresh(
    pod: V1Pod,
    context: DownwardContext,
  ): Promise<{ changed: string[]; failures: VolumeFailure[] }> {
    const uid = pod.metadata?.uid ?? "";
    const changed: string[] = [];
    const failures: VolumeFailure[] = [];
    for (const volume of pod.spec?.volumes ?? []) {
      const kind = volumeKind(volume);
      if (kind === undefined || kind === "emptyDir" || kind === "hostPath") continue;
      try {
        const payload = await this.#payload(pod, volume, context);
        if (await writeAtomic(this.volumeDir(uid, kind, volume.name), payload, this.#now()))
          changed.push(volume.name);
      } catch (error) {
        failures.push({ volume: volume.name, message: messageOf(error) });
      }
    }
    return { changed, failures };
  }

  async #payload(pod: V1Pod, volume: V1Volume, context: DownwardContext): Promise<Payload> {
    const namespace = pod.metadata?.namespace ?? "default";
    const payload: Payload = new Map();
    if (volume.configMap) {
      const source = volume.configMap;
      const configMap = await this.#configMap(
        namespace,
        source.name ?? "",
        source.optional ?? false,
      );
      addConfigMap(
        payload,
        configMap,
        source.items,
        source.defaultMode ?? DEFAULT_MODE,
        source.optional ?? false,
      );
    } else if (volume.secret) {
      const source = volume.secret;
      const secret = await this.#secret(
        namespace,
        source.secretName ?? "",
        source.optional ?? false,
      );
      addSecret(
        payload,
        secret,
        source.items,
        source.defaultMode ?? DEFAULT_MODE,
        source.optional ?? false,
      );
    } else if (volume.downwardAPI) {
      addDownward(
        payload,
        pod,
        volume.downwardAPI.items ?? [],
        volume.downwardAPI.defaultMode ?? DEFAULT_MODE,
        context,
      );
    } else if (volume.projected) {
      const mode = volume.projected.defaultMode ?? DEFAULT_MODE;
      const errors: string[] = [];
      for (const source of volume.projected.sources ?? []) {
        try {
          if (source.configMap) {
            const optional = source.configMap.optional ?? false;
            const configMap = await this.#configMap(
              namespace,
              source.configMap.name ?? "",
              optional,
            );
            addConfigMap(payload, configMap, source.configMap.items, mode, optional);
          } else if (source.secret) {
            const optional = source.secret.optional ?? false;
            const secret = await this.#secret(namespace, source.secret.name ?? "", optional);
            addSecret(payload, secret, source.secret.items, mode, optional);
          } else if (source.downwardAPI) {
            addDownward(payload, pod, source.downwardAPI.items ?? [], mode, context);
          } else if (source.serviceAccountToken) {
            const projection = source.serviceAccountToken;
            const token = await this.#token(
              pod,
              volume.name,
              projection.path,
              projection.audience,
              projection.expirationSeconds ?? 3600,
            );
            payload.set(projection.path, { data: Buffer.from(token), mode });
          } else {
            const kind =
              Object.keys(source).find((key) => (source as Record<string, unknown>)[key] != null) ??
              "unknown";
            throw volumeError(
              "WASMLET_ERR_VOLUME_SETUP",
              `projected source ${kind} is not supported by wasmlet`,
            );
          }
        } catch (error) {
          errors.push(messageOf(error));
        }
      }
      if (errors.length > 0)
        throw volumeError(
          "WASMLET_ERR_VOLUME_SETUP",
          errors.length === 1 ? (errors[0] ?? "") : `[${errors.join(", ")}]`,
        );
    }
    for (const path of payload.keys()) validatePayloadPath(path);
    return payload;
  }

  async #configMap(
    namespace: string,
    name: string,
    optional: boolean,
  ): Promise<V1ConfigMap | undefined> {
    const configMap = await this.#source.getConfigMap(namespace, name);
    if (configMap === undefined && !optional)
      throw volumeError("WASMLET_ERR_VOLUME_SETUP", `configmap "${name}" not found`);
    return configMap;
  }

  async #secret(namespace: string, name: string, optional: boolean): Promise<V1Secret | undefined> {
    const secret = await this.#source.getSecret(namespace, name);
    if (secret === undefined && !optional)
      throw volumeError("WASMLET_ERR_VOLUME_SETUP", `secret "${name}" not found`);
    return secret;
  }

  async #token(
    pod: V1Pod,
    volume: string,
    path: string,
    audience: string | undefined,
    expirationSeconds: number,
  ): Promise<string> {
    const uid = pod.metadata?.uid ?? "";
    const key = `${uid}/${volume}/${path}`;
    const now = this.#now().getTime();
    const cached = this.#tokens.get(key);
    if (cached) {
      const refreshAt =
        cached.issuedAt + (cached.expiresAt - cached.issuedAt) * TOKEN_REFRESH_FRACTION;
      if (now < refreshAt && now - cached.issuedAt < TOKEN_MAX_AGE_MS) return cached.token;
    }
    const result = await this.#source.createServiceAccountToken(
      pod.metadata?.namespace ?? "default",
      pod.spec?.serviceAccountName ?? "default",
      {
        audiences: audience ? [audience] : [],
        expirationSeconds,
        boundPod: { name: pod.metadata?.name ?? "", uid },
      },
    );
    this.#tokens.set(key, {
      token: result.token,
      issuedAt: now,
      expiresAt: new Date(result.expirationTimestamp).getTime(),
    });
    return result.token;
  }

  /**
   * The first emptyDir whose usage exceeds its sizeLimit, with the kubelet's eviction message, or
   * undefined. Usage is counted in allocated blocks, like `du`.
   */
  async emptyDirOverLimit(
    pod: V1Pod,
  ): Promise<{ volume: string; limit: string; usageBytes: number; message: string } | undefined> {
    const uid = pod.metadata?.uid ?? "";
    for (const volume of pod.spec?.volumes ?? []) {
      const limitText = volume.emptyDir?.sizeLimit;
      if (limitText === undefined) continue;
      const limit = bytesOf(String(limitText)) ?? 0;
      const usageBytes = await diskUsage(this.volumeDir(uid, "emptyDir", volume.name));
      if (usageBytes > limit) {
        return {
          volume: volume.name,
          limit: String(limitText),
          usageBytes,
          message: `Usage of EmptyDir volume "${volume.name}" exceeds the limit "${limitText}". `,
        };
      }
    }
    return undefined;
  }

  /**
   * The runtime mounts for one container instance. A subPath into an emptyDir or hostPath is the
   * live directory (created when missing, like the kubelet); a subPath into a projected-kind volume
   * is copied for this instance, which is what the kubelet's bind mount of the resolved path amounts
   * to: that container does not see later updates.
   */
  async containerMounts(
    pod: V1Pod,
    container: Pick<V1Container, "name">,
    requests: readonly ContainerMountRequest[],
    volumes: ReadonlyMap<string, MountedVolume>,
  ): Promise<RunMount[]> {
    const mounts: RunMount[] = [];
    const uid = pod.metadata?.uid ?? "";
    for (const [index, request] of requests.entries()) {
      const volume = volumes.get(request.name);
      if (!volume)
        throw volumeError(
          "WASMLET_ERR_VOLUME_SETUP",
          `volume "${request.name}" of container "${container.name}" is not set up`,
        );
      const readOnly = volume.alwaysReadOnly || (request.readOnly ?? false);
      if (!request.subPath) {
        mounts.push({
          hostPath: volume.hostPath,
          guestPath: request.mountPath,
          readOnly,
          kind: volume.kind === "hostPath" ? await kindOf(volume.hostPath) : "directory",
        });
        continue;
      }
      const prepareError = (detail: string) =>
        volumeError(
          "WASMLET_ERR_VOLUME_PATH",
          `failed to prepare subPath for volumeMount "${request.name}" of container "${container.name}": ${detail}`,
        );
      try {
        validateSubPath(request.subPath);
      } catch (error) {
        throw prepareError(messageOf(error));
      }
      // Walked by descriptors, never following a symlink out of the volume, creating only inside
      // it (beneath.ts); symlinks that stay inside are followed, like the kubelet's.
      let walked: Walked;
      try {
        walked = walkBeneath(volume.hostPath, request.subPath, {
          symlinks: "within",
          ...(volume.alwaysReadOnly ? {} : { create: "directory" }),
        });
      } catch (error) {
        throw prepareError(messageOf(error));
      }
      if (volume.alwaysReadOnly) {
        const copy = join(
          this.podDir(uid),
          "volume-subpaths",
          request.name,
          container.name,
          String(index),
        );
        await rm(copy, { recursive: true, force: true });
        await mkdir(join(copy, ".."), { recursive: true });
        // The volume's content is wasmlet's own (never guest-writable), so its links can be followed.
        await cp(walked.path, copy, { recursive: true, dereference: true });
        mounts.push({
          hostPath: copy,
          guestPath: request.mountPath,
          readOnly: true,
          kind: await kindOf(copy),
        });
      } else {
        mounts.push({
          hostPath: walked.path,
          guestPath: request.mountPath,
          readOnly,
          kind: walked.stat.isDirectory() ? "directory" : "file",
        });
      }
    }
    return mounts;
  }

  /** Removes everything wasmlet keeps for the pod (never follows symlinks, never touches hostPaths). */
  async tearDown(uid: string): Promise<void> {
    for (const key of this.#tokens.keys()) if (key.startsWith(`${uid}/`)) this.#tokens.delete(key);
    await rm(this.podDir(uid), { recursive: true, force: true });
  }

  /** Removes pod directories whose uid is not in `known` (pods deleted while wasmlet was down). */
  async removeOrphans(known: ReadonlySet<string>): Promise<string[]> {
    const removed: string[] = [];
    const entries = await readdir(this.#podsDir).catch(() => [] as string[]);
    for (const entry of entries) {
      if (known.has(entry) || entry.startsWith(".")) continue;
      await this.tearDown(entry);
      removed.push(entry);
    }
    return removed;
  }
}

async function kindOf(path: string): Promise<"directory" | "file"> {
  const info = await lstat(path).catch(() => undefined);
  return info && !info.isDirectory() ? "file" : "directory";
}

/** Allocated bytes under `dir` (like `du -s --block-size=1`), not following symlinks. */
export async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  const info = await lstat(dir).catch(() => undefined);
  if (!info) return 0;
  total += info.blocks * 512;
  if (!info.isDirectory()) return total;
  for (const entry of await readdir(dir)) total += await diskUsage(join(dir, entry));
  return total;
}

function decode(base64: string): Uint8Array {
  return Buffer.from(base64, "base64");
}

function addConfigMap(
  payload: Payload,
  configMap: V1ConfigMap | undefined,
  items: V1KeyToPath[] | undefined,
  mode: number,
  optional: boolean,
): void {
  if (!configMap) return;
  const lookup = (key: string): Uint8Array | undefined => {
    const text = configMap.data?.[key];
    if (text !== undefined) return Buffer.from(text);
    const binary = configMap.binaryData?.[key];
    return binary === undefined ? undefined : decode(binary);
  };
  if (!items || items.length === 0) {
    for (const [key, value] of Object.entries(configMap.data ?? {}))
      payload.set(key, { data: Buffer.from(value), mode });
    for (const [key, value] of Object.entries(configMap.binaryData ?? {}))
      payload.set(key, { data: decode(value), mode });
    return;
  }
  for (const item of items) {
    const data = lookup(item.key);
    if (data === undefined) {
      if (optional) continue;
      throw volumeError(
        "WASMLET_ERR_VOLUME_SETUP",
        `configmap references non-existent config key: ${item.key}`,
      );
    }
    payload.set(item.path, { data, mode: item.mode ?? mode });
  }
}

function addSecret(
  payload: Payload,
  secret: V1Secret | undefined,
  items: V1KeyToPath[] | undefined,
  mode: number,
  optional: boolean,
): void {
  if (!secret) return;
  if (!items || items.length === 0) {
    for (const [key, value] of Object.entries(secret.data ?? {}))
      payload.set(key, { data: decode(value), mode });
    return;
  }
  for (const item of items) {
    const value = secret.data?.[item.key];
    if (value === undefined) {
      if (optional) continue;
      throw volumeError(
        "WASMLET_ERR_VOLUME_SETUP",
        `secret references non-existent secret key: ${item.key}`,
      );
    }
    payload.set(item.path, { data: decode(value), mode: item.mode ?? mode });
  }
}

function addDownward(
  payload: Payload,
  pod: V1Pod,
  items: V1DownwardAPIVolumeFile[],
  mode: number,
  context: DownwardContext,
): void {
  for (const item of items) {
    let value: string;
    if (item.fieldRef) {
      value = podFieldValue(pod, item.fieldRef, context);
    } else if (item.resourceFieldRef) {
      const name = item.resourceFieldRef.containerName;
      const container = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].find(
        (c) => c.name === name,
      );
      if (!container)
        throw volumeError(
          "WASMLET_ERR_VOLUME_SETUP",
          `container "${name ?? ""}" not found in pod for resourceFieldRef`,
        );
      value = resourceFieldValue(item.resourceFieldRef, container, context.nodeAllocatable);
    } else {
      continue;
    }
    const file: FileProjection = { data: Buffer.from(value), mode: item.mode ?? mode };
    payload.set(item.path, file);
  }
}
