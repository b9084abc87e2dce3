// Real measurements of the host wasmlet runs on: CPU, memory, the data directory's filesystem and
// process IDs, each capped by wasmlet's own cgroup (v2) when it runs under limits, since every pod
// runs inside wasmlet's process and shares them. Nothing here is hard-coded.
import { readFile, statfs } from "node:fs/promises";
import { availableParallelism, freemem, hostname, release, totalmem } from "node:os";
import { join } from "node:path";
import { nodeError } from "./errors.ts";

export interface HostSnapshot {
  /** When measured (ms since the epoch). */
  at: number;
  cpuMillis: number;
  memoryTotalBytes: number;
  memoryAvailableBytes: number;
  diskTotalBytes: number;
  diskAvailableBytes: number;
  /** Most process IDs the host (or wasmlet's cgroup) allows; 0 when unknown. */
  pidLimit: number;
  pidsInUse: number;
}

export interface HostIdentity {
  hostname: string;
  machineID: string;
  systemUUID: string;
  bootID: string;
  kernelVersion: string;
  /** The host's distribution, e.g. `Debian GNU/Linux 12 (bookworm)`. */
  hostOS: string;
}

export interface HostProbe {
  measure(): Promise<HostSnapshot>;
  identity(): Promise<HostIdentity>;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, "utf8")).trim();
  } catch {
    return undefined;
  }
}

function kib(meminfo: string, field: string): number | undefined {
  const match = new RegExp(`^${field}:\\s+(\\d+)\\s*kB`, "m").exec(meminfo);
  return match ? Number(match[1]) * 1024 : undefined;
}

/** A cgroup v2 value file: a number, or undefined for `max`/absent. */
async function cgroupNumber(dir: string | undefined, file: string): Promise<number | undefined> {
  if (!dir) return undefined;
  const text = await readText(join(dir, file));
  if (text === undefined || text === "max") return undefined;
  const n = Number(text.split(/\s+/)[0]);
  return Number.isFinite(n) ? n : undefined;
}

export interface LinuxHostProbeOptions {
  dataDir: string;
  /** Root of procfs and sysfs, for tests. */
  procDir?: string;
  sysDir?: string;
  etcDir?: string;
}

export class LinuxHostProbe implements HostProbe {
  readonly #dataDir: string;
  readonly #proc: string;
  readonly #sys: string;
  readonly #etc: string;
  #cgroupDir: string | undefined | null = null;

  constructor(options: LinuxHostProbeOptions) {
    this.#dataDir = options.dataDir;
    this.#proc = options.procDir ?? "/proc";
    this.#sys = options.sysDir ?? "/sys";
    this.#etc = options.etcDir ?? "/etc";
  }

  /** wasmlet's own cgroup v2 directory, if it has one. */
  async #cgroup(): Promise<string | undefined> {
    if (this.#cgroupDir !== null) return this.#cgroupDir;
    const text = await readText(join(this.#proc, "self/cgroup"));
    const line = text?.split("\n").find((l) => l.startsWith("0::"));
    this.#cgroupDir = line ? join(this.#sys, "fs/cgroup", line.slice(3)) : undefined;
    return this.#cgroupDir;
  }

  async measure(): Promise<HostSnapshot> {
    const cgroup = await this.#cgroup();
    const [meminfo, loadavg, pidMax, cpuMax, memMax, memCurrent, pidsMax, pidsCurrent] =
      await Promise.all([
        readText(join(this.#proc, "meminfo")),
        readText(join(this.#proc, "loadavg")),
        readText(join(this.#proc, "sys/kernel/pid_max")),
        cgroup ? readText(join(cgroup, "cpu.max")) : undefined,
        cgroupNumber(cgroup, "memory.max"),
        cgroupNumber(cgroup, "memory.current"),
        cgroupNumber(cgroup, "pids.max"),
        cgroupNumber(cgroup, "pids.current"),
      ]);

    let cpuMillis = availableParallelism() * 1000;
    const [quota, period] = cpuMax?.split(/\s+/) ?? [];
    if (quota && quota !== "max" && Number(period) > 0)
      cpuMillis = Math.min(cpuMillis, Math.floor((Number(quota) / Number(period)) * 1000));

    let memoryTotal = (meminfo && kib(meminfo, "MemTotal")) || totalmem();
    let memoryAvailable = (meminfo && kib(meminfo, "MemAvailable")) || freemem();
    if (memMax !== undefined && memMax < memoryTotal) {
      memoryTotal = memMax;
      memoryAvailable = Math.min(memoryAvailable, Math.max(0, memMax - (memCurrent ?? 0)));
    }

    let disk: { bsize: number; blocks: number; bavail: number };
    try {
      disk = await statfs(this.#dataDir);
    } catch (error) {
      throw nodeError(
        "WASMLET_ERR_HOST_MEASUREMENT",
        `cannot measure the filesystem of the data directory ${this.#dataDir}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }

    let pidLimit = Number(pidMax ?? 0) || 0;
    // /proc/loadavg's fourth field is running/total scheduling entities (every thread has an ID).
    let pidsInUse = Number(loadavg?.split(/\s+/)[3]?.split("/")[1] ?? 0) || 0;
    if (pidsMax !== undefined && (pidLimit === 0 || pidsMax < pidLimit)) {
      pidLimit = pidsMax;
      pidsInUse = pidsCurrent ?? pidsInUse;
    }

    return {
      at: Date.now(),
      cpuMillis,
      memoryTotalBytes: memoryTotal,
      memoryAvailableBytes: memoryAvailable,
      diskTotalBytes: disk.blocks * disk.bsize,
      diskAvailableBytes: disk.bavail * disk.bsize,
      pidLimit,
      pidsInUse,
    };
  }

  async identity(): Promise<HostIdentity> {
    const [machineID, dbusMachineID, productUUID, bootID, osRelease] = await Promise.all([
      readText(join(this.#etc, "machine-id")),
      readText("/var/lib/dbus/machine-id"),
      readText(join(this.#sys, "class/dmi/id/product_uuid")),
      readText(join(this.#proc, "sys/kernel/random/boot_id")),
      readText(join(this.#etc, "os-release")),
    ]);
    const pretty = osRelease && /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(osRelease)?.[1];
    const machine = machineID || dbusMachineID || "";
    return {
      hostname: hostname().toLowerCase(),
      machineID: machine,
      systemUUID: productUUID || machine,
      bootID: bootID ?? "",
      kernelVersion: release(),
      hostOS: pretty || `${process.platform} ${release()}`,
    };
  }
}
