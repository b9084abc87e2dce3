// Faults under a node, each end to end with nothing lost:
//   - wasmlet SIGKILLed mid-pull and mid-run, then started again on its data directory: a pull
//     starts over (nothing half-written kept), each container is adopted as the kubelet would
//     (restarted, or reported lost per its restartPolicy), never run twice, its log kept;
//   - the registry gone mid-pull: ErrImagePull, then ImagePullBackOff, naming the registry; the
//     image store keeps nothing of the broken download; Running once the registry is back;
//   - the data directory's filesystem full (a dedicated small tmpfs, filled by the test): pods keep
//     running, guests get ENOSPC, the node reports DiskPressure, nothing crashes, and everything
//     resumes once there is space again.
// (wasmlet SIGKILLed with pods that run with restartPolicy Always is test/e2e/pods/restart.test.ts;
// the API server, etcd and node loss are control-plane-faults.test.ts.)
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, openSync, writeSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, stat, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import type { V1Pod } from "@kubernetes/client-node";
import { LocalRegistry } from "../../../src/devcluster/registry.ts";
import { pushWasmArtifact, RegistryClient } from "../../../src/images/index.ts";
import { eventually, kubectl, kubectlOk } from "../../support/cluster.ts";
import { buildGuest } from "../../support/guests.ts";
import { GatedProxy } from "../../support/tcp-proxy.ts";
import { getNode, sample, Wasmlet, waitForReady } from "../../support/wasmlet.ts";
import {
  applyJson,
  getPod,
  logsOf,
  type PodTestBed,
  phaseIs,
  podManifest,
  runtimeClassManifest,
  startPodTestBed,
  waitForLogs,
  waitForPod,
} from "../pods/support.ts";

const run = promisify(execFile);
const MiB = 1024 * 1024;

/** The guest with a custom section of `bytes` random bytes appended: valid, runnable, unique. */
async function padded(guest: "ticker", bytes: number): Promise<Buffer> {
  const module = await readFile(await buildGuest(guest));
  const name = Buffer.from("e2e.padding");
  const leb = (n: number) => {
    const out: number[] = [];
    do {
      let byte = n & 0x7f;
      n >>>= 7;
      if (n !== 0) byte |= 0x80;
      out.push(byte);
    } while (n !== 0);
    return Buffer.from(out);
  };
  const body = Buffer.concat([leb(name.length), name, randomBytes(bytes)]);
  return Buffer.concat([module, Buffer.from([0]), leb(body.length), body]);
}

const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

let bed: PodTestBed;
let registry: LocalRegistry;
let proxy: GatedProxy;
let scratch: string;

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "wasmlet-faults-"));
  [bed, registry] = await Promise.all([
    startPodTestBed("faults"),
    LocalRegistry.start({ dir: join(scratch, "registry") }),
  ]);
  proxy = new GatedProxy(registry.address);
  await proxy.up();
});
after(async () => {
  await bed?.cleanup();
  await proxy?.down();
  await registry?.stop();
  await rm(scratch, { recursive: true, force: true });
});

/** Pushes a 4 MiB module as `repository:v1` to the private registry; the reference goes through the proxy. */
async function pushLarge(
  repository: string,
): Promise<{ reference: string; moduleHex: string; size: number }> {
  const module = await padded("ticker", 4 * MiB);
  await pushWasmArtifact(module, `${registry.address}/${repository}:v1`, {
    client: new RegistryClient(),
  });
  return {
    reference: `${proxy.address}/${repository}:v1`,
    moduleHex: sha256(module),
    size: module.length,
  };
}

const images = () => join(bed.wasmlet.dataDir, "images");

/** Waits until a download of the blob is in the node's ingest directory, part written; returns its size. */
function partialDownload(moduleHex: string): Promise<number> {
  return eventually(
    async () => {
      const dir = join(images(), "ingest");
      for (const name of await readdir(dir)) {
        if (!name.startsWith(moduleHex)) continue;
        const { size } = await stat(join(dir, name));
        if (size > 0) return size;
      }
      return undefined;
    },
    "a partial download in the image store",
    30_000,
    100,
  );
}

/** What the image store holds: the downloads in progress, whether the blob is there, the references recorded. */
async function store(moduleHex: string) {
  const ingest = await readdir(join(images(), "ingest"));
  const blob = await readFile(join(images(), "blobs", "sha256", moduleHex)).catch(() => undefined);
  const records = JSON.parse(
    await readFile(join(images(), "images.json"), "utf8").catch(() => "[]"),
  ) as {
    reference: string;
    blobs: string[];
  }[];
  return { ingest, blob, records };
}

const waiting = (pod: V1Pod | undefined) => pod?.status?.containerStatuses?.[0]?.state?.waiting;
const mainStatus = (pod: V1Pod | undefined) => pod?.status?.containerStatuses?.[0];

function ticks(log: string): number[] {
  return [...log.matchAll(/^tick (\d+)$/gm)].map((m) => Number(m[1]));
}
const oneToN = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const lastTick = async (pod: string, args: string[] = []) =>
  Math.max(0, ...ticks(await logsOf(bed.namespace, pod, args)));

describe("wasmlet SIGKILLed", () => {
  it("mid-pull: started again, it pulls afresh, keeps nothing half-written, and runs the pod once", async () => {
    const { reference, moduleHex, size } = await pushLarge("faults/midpull");
    proxy.holdAfter = MiB;
    proxy.held = 0;
    await applyJson(
      bed.namespace,
      podManifest(bed, "midpull", { image: reference }, { restartPolicy: "Always" }),
    );
    await eventually(async () => proxy.held === 1, "the module's download to be held");
    const partial = await partialDownload(moduleHex);
    assert.ok(partial < size, `${partial} of ${size} bytes when the node is killed`);
    const pending = await getPod(bed.namespace, "midpull");
    assert.equal(pending?.status?.phase, "Pending");
    assert.equal(waiting(pending)?.reason, "ContainerCreating");

    proxy.holdAfter = undefined;
    const restarted = await bed.restartWasmlet();
    await waitForReady(restarted.nodeName);
    const running = await waitForPod(
      bed.namespace,
      "midpull",
      "running",
      (p) => mainStatus(p)?.state?.running !== undefined,
      60_000,
    );
    const status = mainStatus(running);
    assert.equal(status?.restartCount, 0, "it had never run: nothing to restart");
    assert.deepEqual(status?.lastState ?? {}, {});
    // The pull started over: the restarted node downloaded the image itself.
    assert.equal(
      sample(await restarted.metrics(), 'wasmlet_image_pulls_total{result="pulled"}'),
      1,
    );
    const after = await store(moduleHex);
    assert.deepEqual(after.ingest, [], "no download left in progress");
    assert.equal(after.blob && sha256(after.blob), moduleHex, "the stored module is whole");
    assert.ok(after.records.some((r) => r.reference === reference));
    // One instance: its ticks count up from 1 without a repeat, under one container ID.
    const log = await waitForLogs(bed.namespace, "midpull", /^tick 10$/m);
    assert.deepEqual(ticks(log), oneToN(ticks(log).length), log);
    assert.equal(
      mainStatus(await getPod(bed.namespace, "midpull"))?.containerID,
      status?.containerID,
    );
    await kubectlOk(["-n", bed.namespace, "delete", "pod", "midpull", "--wait=false"]);
  });

  it("mid-run: restartPolicy Never ends Failed with its log, OnFailure and an init container run again, each once, the previous log kept", async () => {
    const ticker = await bed.image("ticker");
    await applyJson(bed.namespace, podManifest(bed, "never", { image: ticker }));
    await applyJson(
      bed.namespace,
      podManifest(bed, "onfailure", { image: ticker }, { restartPolicy: "OnFailure" }),
    );
    await applyJson(
      bed.namespace,
      podManifest(
        bed,
        "init",
        { image: ticker, env: [{ name: "TICK_MS", value: "500" }] },
        {
          restartPolicy: "Always",
          initContainers: [
            {
              name: "setup",
              image: ticker,
              env: [
                { name: "COUNT", value: "100" },
                { name: "TICK_MS", value: "100" },
              ],
            },
          ],
        },
      ),
    );
    await waitForLogs(bed.namespace, "never", /^tick 5$/m);
    await waitForLogs(bed.namespace, "onfailure", /^tick 5$/m);
    await waitForLogs(bed.namespace, "init", /^tick 3$/m, ["-c", "setup"]);
    const before = {
      never: await getPod(bed.namespace, "never"),
      onfailure: await getPod(bed.namespace, "onfailure"),
      init: await getPod(bed.namespace, "init"),
    };
    assert.equal(
      before.init?.status?.initContainerStatuses?.[0]?.state?.running !== undefined,
      true,
    );
    // What `kubectl logs` showed last before the kill must all be there afterwards.
    const seen = {
      never: await lastTick("never"),
      onfailure: await lastTick("onfailure"),
      setup: await lastTick("init", ["-c", "setup"]),
    };

    const killedAt = Date.now();
    const restarted = await bed.restartWasmlet();
    await waitForReady(restarted.nodeName);

    // Never: the lost instance is reported as kubelet does, the pod Failed, nothing run again.
    const never = await waitForPod(bed.namespace, "never", "Failed", phaseIs("Failed"));
    const lostNever = mainStatus(never);
    assert.equal(lostNever?.restartCount, 0);
    assert.equal(lostNever?.state?.terminated?.reason, "ContainerStatusUnknown");
    assert.equal(lostNever?.state?.terminated?.exitCode, 137);
    assert.equal(
      lostNever?.containerID,
      mainStatus(before.never)?.containerID,
      "the same instance",
    );
    const neverLog = ticks(await logsOf(bed.namespace, "never"));
    assert.deepEqual(neverLog, oneToN(neverLog.length), "the log of the one instance");
    assert.ok(
      neverLog.length >= seen.never,
      `${neverLog.length} ticks kept, ${seen.never} seen before the kill`,
    );

    // OnFailure: 137 is a failure, so it runs again, once; --previous is the lost instance's log.
    const onfailure = await waitForPod(
      bed.namespace,
      "onfailure",
      "running again",
      (p) =>
        mainStatus(p)?.state?.running !== undefined &&
        mainStatus(p)?.containerID !== mainStatus(before.onfailure)?.containerID,
    );
    const again = mainStatus(onfailure);
    assert.equal(again?.restartCount, 1);
    assert.equal(again?.lastState?.terminated?.reason, "ContainerStatusUnknown");
    assert.equal(again?.lastState?.terminated?.exitCode, 137);
    assert.ok(new Date(String(again?.state?.running?.startedAt)).getTime() >= killedAt - 1000);
    const previous = ticks(await logsOf(bed.namespace, "onfailure", ["--previous"]));
    assert.deepEqual(previous, oneToN(previous.length));
    assert.ok(
      previous.length >= seen.onfailure,
      `${previous.length} ticks kept, ${seen.onfailure} seen`,
    );

    // The init container that was running is run again (its lost instance counts as a failure),
    // to completion, before the app container starts.
    const init = await waitForPod(
      bed.namespace,
      "init",
      "initialized and running",
      (p) => mainStatus(p)?.state?.running !== undefined,
      40_000,
    );
    const setup = init.status?.initContainerStatuses?.[0];
    assert.equal(setup?.restartCount, 1);
    assert.equal(setup?.lastState?.terminated?.reason, "ContainerStatusUnknown");
    assert.equal(setup?.state?.terminated?.exitCode, 0);
    assert.equal(mainStatus(init)?.restartCount, 0);
    assert.deepEqual(ticks(await logsOf(bed.namespace, "init", ["-c", "setup"])), oneToN(100));
    const setupBefore = ticks(await logsOf(bed.namespace, "init", ["-c", "setup", "--previous"]));
    assert.deepEqual(setupBefore, oneToN(setupBefore.length));
    assert.ok(
      setupBefore.length >= seen.setup,
      `${setupBefore.length} ticks kept, ${seen.setup} seen`,
    );

    // Proof the node runs guests again (the OnFailure pod's new instance has ticked 10 times):
    // the Never pod's instance did not come back. Its log directory holds one instance's file,
    // unchanged, and the pod stays Failed.
    const oneLog = join(
      restarted.dataDir,
      "logs",
      `${bed.namespace}_never_${never.metadata?.uid}`,
      "main",
    );
    const sizeBefore = (await stat(join(oneLog, "0.log"))).size;
    await waitForLogs(bed.namespace, "onfailure", /^tick 10$/m);
    assert.deepEqual(await readdir(oneLog), ["0.log"]);
    assert.equal((await stat(join(oneLog, "0.log"))).size, sizeBefore);
    assert.equal((await getPod(bed.namespace, "never"))?.status?.phase, "Failed");
    const current = ticks(await logsOf(bed.namespace, "onfailure"));
    assert.deepEqual(current, oneToN(current.length), "one writer in the new instance's log");
    await kubectlOk([
      "-n",
      bed.namespace,
      "delete",
      "pod",
      "never",
      "onfailure",
      "init",
      "--wait=false",
    ]);
  });
});

describe("the registry goes away mid-pull", () => {
  it("shows ErrImagePull, then ImagePullBackOff naming the registry, keeps nothing of the broken download, and runs the pod once the registry is back", async (t) => {
    const { reference, moduleHex } = await pushLarge("faults/gone");
    proxy.holdAfter = MiB;
    proxy.held = 0;
    await applyJson(
      bed.namespace,
      podManifest(bed, "fetching", { image: reference }, { restartPolicy: "Always" }),
    );
    await eventually(async () => proxy.held === 1, "the module's download to be held");
    await partialDownload(moduleHex);
    const gone = Date.now();
    await proxy.down();
    await registry.suspend();

    const failed = await waitForPod(
      bed.namespace,
      "fetching",
      "ErrImagePull",
      (p) => waiting(p)?.reason === "ErrImagePull",
    );
    const message = waiting(failed)?.message ?? "";
    t.diagnostic(`ErrImagePull after ${Date.now() - gone} ms: ${message}`);
    assert.ok(message.includes(proxy.address), `the message names the registry: ${message}`);
    assert.match(message, /unreachable|ECONNREFUSED|broke off/);
    const broken = await store(moduleHex);
    assert.deepEqual(broken.ingest, [], "the partial download was removed");
    assert.equal(broken.blob, undefined, "no part of the module is stored as a blob");
    assert.ok(!broken.records.some((r) => r.reference === reference), "no image record");

    const backoff = await waitForPod(
      bed.namespace,
      "fetching",
      "ImagePullBackOff",
      (p) => waiting(p)?.reason === "ImagePullBackOff",
      60_000,
    );
    assert.ok(
      waiting(backoff)?.message?.startsWith(
        `Back-off pulling image "${reference}": ErrImagePull: `,
      ),
      waiting(backoff)?.message,
    );
    assert.ok(waiting(backoff)?.message?.includes(proxy.address));
    assert.equal(backoff.status?.phase, "Pending");
    const events = await kubectlOk([
      "-n",
      bed.namespace,
      "get",
      "events",
      "--field-selector",
      "involvedObject.name=fetching",
      "-o",
      "json",
    ]);
    const messages = (JSON.parse(events).items as { message: string }[]).map((e) => e.message);
    assert.ok(
      messages.some((m) => m.startsWith(`Failed to pull image "${reference}": `)),
      messages.join("\n"),
    );
    assert.deepEqual((await store(moduleHex)).ingest, []);

    const back = Date.now();
    await registry.resume();
    proxy.holdAfter = undefined;
    await proxy.up();
    const running = await waitForPod(
      bed.namespace,
      "fetching",
      "Running",
      (p) => mainStatus(p)?.state?.running !== undefined,
      60_000,
    );
    t.diagnostic(`Running ${Date.now() - back} ms after the registry returned`);
    assert.equal(mainStatus(running)?.restartCount, 0);
    assert.equal(running.status?.phase, "Running");
    const after = await store(moduleHex);
    assert.deepEqual(after.ingest, []);
    assert.equal(after.blob && sha256(after.blob), moduleHex, "the stored module is whole");
    assert.ok(after.records.some((r) => r.reference === reference));
    await waitForLogs(bed.namespace, "fetching", /^tick 3$/m);
    const ready = await waitForPod(bed.namespace, "fetching", "Ready", (p) =>
      Boolean(p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")),
    );
    await t.test("Ready carries nothing of the waiting time", () => {
      for (const type of ["Ready", "ContainersReady"]) {
        const c = ready.status?.conditions?.find((x) => x.type === type);
        assert.deepEqual(
          { status: c?.status, reason: c?.reason, message: c?.message },
          { status: "True", reason: undefined, message: undefined },
          type,
        );
      }
    });
    await kubectlOk(["-n", bed.namespace, "delete", "pod", "fetching", "--wait=false"]);
  });
});

describe("the data directory's filesystem is full", () => {
  let mount: string;
  let mounted = false;
  let node: Wasmlet;
  let namespace: string;
  let runtimeClass: string;

  before(async () => {
    // A dedicated 32 MiB tmpfs holds the node's data directory; the test fills it (never the
    // machine's disk).
    mount = await mkdtemp(join(tmpdir(), "wasmlet-full-"));
    await run("mount", ["-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs", mount]);
    mounted = true;
    await mkdir(join(mount, "data"));
    namespace = bed.namespace;
    node = await Wasmlet.start({
      nodeIP: "127.0.0.1",
      dataDir: join(mount, "data"),
      args: ["--allow-self-signed", "--no-tls-bootstrap"],
    });
    await waitForReady(node.nodeName);
    runtimeClass = `${bed.runtimeClass}-full`;
    await kubectlOk(["apply", "-f", "-"], {
      input: runtimeClassManifest(runtimeClass, node.nodeName),
    });
  });
  after(async () => {
    await kubectl(["delete", "runtimeclass", runtimeClass, "--wait=false"]);
    await node?.cleanup();
    if (mounted) await run("umount", ["-l", mount]);
    await rmdir(mount).catch(() => {});
  });

  /** Writes a file until the filesystem has no space left; returns the bytes written. */
  function fill(path: string): number {
    const fd = openSync(path, "w");
    let written = 0;
    try {
      for (const chunk of [Buffer.alloc(MiB, 1), Buffer.alloc(4096, 1), Buffer.alloc(1, 1)]) {
        for (;;) {
          try {
            const n = writeSync(fd, chunk);
            written += n;
            if (n < chunk.length) break;
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === "ENOSPC") break;
            throw error;
          }
        }
      }
    } finally {
      closeSync(fd);
    }
    return written;
  }

  const diskPressure = async () =>
    (await getNode(node.nodeName))?.status?.conditions?.find((c) => c.type === "DiskPressure");
  const taints = async () => (await getNode(node.nodeName))?.spec?.taints ?? [];
  const exec = (pod: string, args: string[]) =>
    kubectl(["-n", namespace, "exec", pod, "--", "fsprobe", ...args]);

  it("pods keep running, guests get ENOSPC, the node reports DiskPressure, turns new pods away but critical ones, and stays up; all resumes once space is back", async (t) => {
    const ticker = await bed.image("ticker");
    const fsprobe = await bed.image("fsprobe");
    const pin = { runtimeClass };
    await applyJson(
      namespace,
      podManifest(pin, "steady", { image: ticker }, { restartPolicy: "Always" }),
    );
    await applyJson(
      namespace,
      podManifest(
        pin,
        "writer",
        {
          image: fsprobe,
          args: ["wait"],
          stdin: true,
          volumeMounts: [{ name: "scratch", mountPath: "/data" }],
        },
        { restartPolicy: "Always", volumes: [{ name: "scratch", emptyDir: {} }] },
      ),
    );
    await waitForPod(namespace, "writer", "Running", phaseIs("Running"));
    const steady = await waitForPod(namespace, "steady", "Running", phaseIs("Running"));
    await waitForLogs(namespace, "steady", /^tick 3$/m);
    const wrote = await exec("writer", ["append", "/data/before", "hello"]);
    assert.match(wrote.stdout, /^append \/data\/before: ok$/m, wrote.stderr);
    assert.equal((await diskPressure())?.status, "False");

    const mark = node.output.length;
    const filledAt = Date.now();
    const filler = join(mount, "filler");
    const bytes = fill(filler);
    t.diagnostic(`filled the data directory's filesystem with ${bytes} bytes`);
    try {
      const pressure = await eventually(
        async () => {
          const c = await diskPressure();
          return c?.status === "True" ? c : undefined;
        },
        "DiskPressure",
        20_000,
        250,
      );
      assert.equal(pressure.reason, "KubeletHasDiskPressure");
      // The real controller-manager taints the node for it.
      await eventually(
        async () =>
          (await taints()).some(
            (x) => x.key === "node.kubernetes.io/disk-pressure" && x.effect === "NoSchedule",
          ),
        "the disk-pressure taint",
        20_000,
        250,
      );
      // A guest writing to its emptyDir is told ENOSPC, as by any full disk.
      const refused = await exec("writer", ["append", "/data/after", "x".repeat(8192)]);
      assert.match(
        refused.stdout,
        /^append \/data\/after: error \d+ No space left on device$/m,
        refused.stderr,
      );
      // The log writes fail too: the node says so, and goes on.
      await node.waitForLog(/cannot write log file[^"]*no space left on device/i, 20_000);
      // A pod that tolerates the taint is still turned away, as the kubelet's eviction manager
      // does under DiskPressure.
      const tolerations = [
        { key: "node.kubernetes.io/disk-pressure", operator: "Exists", effect: "NoSchedule" },
      ];
      await applyJson(
        namespace,
        podManifest(
          pin,
          "turned-away",
          { image: fsprobe, args: ["read", "/"] },
          { automountServiceAccountToken: false, tolerations },
        ),
      );
      const turnedAway = await waitForPod(namespace, "turned-away", "Failed", phaseIs("Failed"));
      assert.equal(turnedAway.status?.reason, "Evicted");
      assert.equal(
        turnedAway.status?.message,
        "Pod was rejected: The node had condition: [DiskPressure]. ",
      );
      // A critical pod is admitted, but its configMap volume cannot be written: it waits with
      // FailedMount, and gets it once there is space.
      await kubectlOk([
        "-n",
        namespace,
        "create",
        "configmap",
        "settings",
        "--from-literal=key=value-1234",
      ]);
      await applyJson(
        namespace,
        podManifest(
          pin,
          "configured",
          {
            image: fsprobe,
            args: ["read", "/settings/key"],
            volumeMounts: [{ name: "settings", mountPath: "/settings" }],
          },
          {
            volumes: [{ name: "settings", configMap: { name: "settings" } }],
            automountServiceAccountToken: false,
            priorityClassName: "system-node-critical",
            tolerations,
          },
        ),
      );
      const failedMount = await eventually(
        async () => {
          const out = await kubectlOk([
            "-n",
            namespace,
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=configured,reason=FailedMount",
            "-o",
            "json",
          ]);
          return (JSON.parse(out).items as { message: string }[])[0]?.message;
        },
        "a FailedMount event",
        20_000,
        250,
      );
      assert.match(
        failedMount,
        /MountVolume\.SetUp failed for volume "settings" : .*(ENOSPC|no space left)/i,
      );
      assert.equal(waiting(await getPod(namespace, "configured"))?.reason, "ContainerCreating");
      // The node is up: Ready, its lease renewed while the disk is full, the running pods as
      // they were.
      assert.ok(node.running, node.output.slice(-3000));
      const ready = (await getNode(node.nodeName))?.status?.conditions?.find(
        (c) => c.type === "Ready",
      );
      assert.equal(ready?.status, "True");
      const lease = JSON.parse(
        await kubectlOk(["-n", "kube-node-lease", "get", "lease", node.nodeName, "-o", "json"]),
      );
      assert.ok(Date.parse(lease.spec.renewTime) > filledAt, "the lease is renewed");
      for (const name of ["steady", "writer"]) {
        const pod = await getPod(namespace, name);
        assert.equal(pod?.status?.phase, "Running", name);
        assert.equal(mainStatus(pod)?.restartCount, 0, name);
        assert.ok(mainStatus(pod)?.state?.running, name);
      }
    } finally {
      await unlink(filler);
    }

    // Space again: the pressure goes, the waiting pod gets its volume, the logs resume.
    await eventually(
      async () => (await diskPressure())?.status === "False",
      "DiskPressure to end",
      20_000,
      250,
    );
    assert.equal((await diskPressure())?.reason, "KubeletHasNoDiskPressure");
    await eventually(
      async () => !(await taints()).some((x) => x.key === "node.kubernetes.io/disk-pressure"),
      "the disk-pressure taint to be removed",
      20_000,
      250,
    );
    await waitForPod(namespace, "configured", "Succeeded", phaseIs("Succeeded"), 30_000);
    assert.match(await logsOf(namespace, "configured"), /^read \/settings\/key: ok value-1234$/m);
    const wroteAgain = await exec("writer", ["append", "/data/after", "again"]);
    assert.match(wroteAgain.stdout, /^append \/data\/after: ok$/m);
    const resumed = await lastTick("steady");
    await eventually(
      async () => (await lastTick("steady")) >= resumed + 10,
      "the log to resume",
      20_000,
      250,
    );
    const log = await logsOf(namespace, "steady");
    // The guest ran on through the full disk (one instance, its count never restarting); only the
    // lines it wrote while there was no space are missing. Every line kept is whole.
    const kept = ticks(log);
    assert.ok(
      kept.every((n, i) => i === 0 || n > kept[i - 1]!),
      "ticks only increase",
    );
    const gaps = kept.filter((n, i) => i > 0 && n !== kept[i - 1]! + 1).length;
    t.diagnostic(`${kept.length} ticks kept up to tick ${kept.at(-1)}, ${gaps} gap(s)`);
    const lines = log.trimEnd().split("\n");
    assert.deepEqual(
      lines.filter((l) => !/^tick \d+$/.test(l)),
      [],
      "no torn or merged lines in the log",
    );
    // On disk, every record of the log file is whole (a reader skips what is not).
    const raw = await readFile(
      join(node.dataDir, "logs", `${namespace}_steady_${steady.metadata?.uid}`, "main", "0.log"),
      "utf8",
    );
    const record = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z stdout F tick \d+$/;
    const torn = raw
      .split("\n")
      .slice(0, -1)
      .filter((line) => !record.test(line));
    await t.test("every record of the log file is whole", () => {
      assert.ok(raw.endsWith("\n"));
      assert.deepEqual(torn, []);
    });
    const now = await getPod(namespace, "steady");
    assert.equal(mainStatus(now)?.restartCount, 0);
    assert.equal(mainStatus(now)?.containerID, mainStatus(steady)?.containerID);
    assert.ok(node.running);
    assert.doesNotMatch(node.output.slice(mark), /uncaught|unhandled|"level":60/i);
    await kubectlOk([
      "-n",
      namespace,
      "delete",
      "pod",
      "steady",
      "writer",
      "configured",
      "turned-away",
      "--wait=false",
    ]);
  });
});
