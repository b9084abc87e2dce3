import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LinuxHostProbe } from "../../../src/node/host.ts";

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), "wasmlet-host-"));
});
after(() => rm(root, { recursive: true, force: true }));

async function fakeHost(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(root, "h-"));
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(dir, path, ".."), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  return dir;
}

describe("LinuxHostProbe", () => {
  it("measures this host for real", async () => {
    const probe = new LinuxHostProbe({ dataDir: root });
    const m = await probe.measure();
    assert.ok(m.cpuMillis >= 1000);
    assert.ok(
      m.memoryTotalBytes > 0 &&
        m.memoryAvailableBytes > 0 &&
        m.memoryAvailableBytes <= m.memoryTotalBytes,
    );
    assert.ok(m.diskTotalBytes > 0 && m.diskAvailableBytes <= m.diskTotalBytes);
    const identity = await probe.identity();
    assert.ok(identity.kernelVersion.length > 0);
    assert.ok(identity.hostOS.length > 0);
  });

  it("reads /proc and caps by wasmlet's own cgroup v2 limits", async () => {
    const dir = await fakeHost({
      "proc/meminfo":
        "MemTotal:       16384000 kB\nMemFree:         1000 kB\nMemAvailable:    8192000 kB\n",
      "proc/loadavg": "0.10 0.20 0.30 2/456 1234\n",
      "proc/sys/kernel/pid_max": "32768\n",
      "proc/self/cgroup": "0::/kubepods/pod1/wasmlet\n",
      "sys/fs/cgroup/kubepods/pod1/wasmlet/cpu.max": "150000 100000\n",
      "sys/fs/cgroup/kubepods/pod1/wasmlet/memory.max": `${4 * 2 ** 30}\n`,
      "sys/fs/cgroup/kubepods/pod1/wasmlet/memory.current": `${3 * 2 ** 30}\n`,
      "sys/fs/cgroup/kubepods/pod1/wasmlet/pids.max": "1000\n",
      "sys/fs/cgroup/kubepods/pod1/wasmlet/pids.current": "950\n",
      "sys/class/dmi/id/product_uuid": "UUID-1\n",
      "etc/machine-id": "abc123\n",
      "etc/os-release": 'NAME="Test"\nPRETTY_NAME="Test Linux 1.0"\n',
      "proc/sys/kernel/random/boot_id": "boot-1\n",
    });
    const probe = new LinuxHostProbe({
      dataDir: root,
      procDir: join(dir, "proc"),
      sysDir: join(dir, "sys"),
      etcDir: join(dir, "etc"),
    });
    const m = await probe.measure();
    assert.ok(m.cpuMillis <= 1500, `cpu capped by cpu.max (${m.cpuMillis})`);
    assert.equal(m.memoryTotalBytes, 4 * 2 ** 30);
    assert.equal(m.memoryAvailableBytes, 2 ** 30);
    assert.equal(m.pidLimit, 1000);
    assert.equal(m.pidsInUse, 950);
    assert.deepEqual(await probe.identity(), {
      hostname: (await import("node:os")).hostname().toLowerCase(),
      machineID: "abc123",
      systemUUID: "UUID-1",
      bootID: "boot-1",
      kernelVersion: (await import("node:os")).release(),
      hostOS: "Test Linux 1.0",
    });
  });

  it("uses the host's figures when the cgroup sets no limits", async () => {
    const dir = await fakeHost({
      "proc/meminfo": "MemTotal:       2048 kB\nMemAvailable:    1024 kB\n",
      "proc/loadavg": "0.10 0.20 0.30 2/456 1234\n",
      "proc/sys/kernel/pid_max": "4096\n",
      "proc/self/cgroup": "0::/\n",
      "sys/fs/cgroup/cpu.max": "max 100000\n",
      "sys/fs/cgroup/memory.max": "max\n",
    });
    const m = await new LinuxHostProbe({
      dataDir: root,
      procDir: join(dir, "proc"),
      sysDir: join(dir, "sys"),
    }).measure();
    assert.equal(m.memoryTotalBytes, 2048 * 1024);
    assert.equal(m.memoryAvailableBytes, 1024 * 1024);
    assert.equal(m.pidLimit, 4096);
    assert.equal(m.pidsInUse, 456);
  });

  it("names the data directory when it cannot be measured", async () => {
    const probe = new LinuxHostProbe({ dataDir: join(root, "missing") });
    await assert.rejects(probe.measure(), (error: Error & { code?: string }) => {
      assert.equal(error.code, "WASMLET_ERR_HOST_MEASUREMENT");
      assert.match(error.message, /data directory .*missing/);
      return true;
    });
  });
});
