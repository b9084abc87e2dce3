import assert from "node:assert/strict";
import { once } from "node:events";
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  realpath,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, test } from "node:test";
import { Worker } from "node:worker_threads";
import type { V1Pod, V1Volume } from "@kubernetes/client-node";
import { hostPathAllowed } from "../../../src/volumes/host-path.ts";
import { VolumeManager } from "../../../src/volumes/volume-manager.ts";
import { FakeKube } from "../pods/fakes.ts";

const root = await mkdtemp(join(tmpdir(), "wasmlet-volumes-"));
after(() => rm(root, { recursive: true, force: true }));
const context = {
  podIPs: ["10.1.1.1"],
  hostIPs: ["10.1.1.1"],
  nodeAllocatable: { cpu: "2", memory: "4Gi" },
};
let n = 0;

function podWith(volumes: V1Volume[], extra: Partial<V1Pod["metadata"]> = {}): V1Pod {
  n++;
  return {
    metadata: {
      name: `p${n}`,
      namespace: "ns",
      uid: `vol-uid-${n}`,
      labels: { app: "x" },
      ...extra,
    },
    spec: {
      serviceAccountName: "sa",
      containers: [{ name: "app", resources: { limits: { memory: "32Mi" } } }],
      volumes,
    },
  };
}

function setup(hostPath: boolean | string[] = false) {
  const kube = new FakeKube();
  const manager = new VolumeManager({ podsDir: join(root, `pods-${n}`), source: kube, hostPath });
  return { kube, manager };
}

test("configMap: all keys, binaryData, items with modes, defaultMode, optional", async () => {
  const { kube, manager } = setup();
  kube.setConfigMap(
    "ns",
    "cfg",
    { "app.conf": "x=1", other: "o" },
    { "blob.bin": Buffer.from([1, 2, 3]).toString("base64") },
  );
  const pod = podWith([
    { name: "all", configMap: { name: "cfg", defaultMode: 0o600 } },
    {
      name: "some",
      configMap: { name: "cfg", items: [{ key: "app.conf", path: "conf/app.conf", mode: 0o400 }] },
    },
    { name: "opt", configMap: { name: "absent", optional: true } },
  ]);
  const { volumes, failures } = await manager.setUp(pod, context);
  assert.deepEqual(failures, []);
  const all = volumes.get("all")!.hostPath;
  assert.equal(await readFile(join(all, "app.conf"), "utf8"), "x=1");
  assert.deepEqual([...(await readFile(join(all, "blob.bin")))], [1, 2, 3]);
  assert.equal((await stat(join(all, "other"))).mode & 0o777, 0o600);
  const some = volumes.get("some")!.hostPath;
  assert.equal(await readFile(join(some, "conf/app.conf"), "utf8"), "x=1");
  assert.equal((await stat(join(some, "conf/app.conf"))).mode & 0o777, 0o400);
  await assert.rejects(stat(join(some, "other")));
  assert.equal(volumes.get("opt")!.alwaysReadOnly, true);
  assert.match(all, /kubernetes\.io~configmap\/all$/);
});

test("missing required sources fail with the kubelet's messages; retry succeeds once they exist", async () => {
  const { kube, manager } = setup();
  const pod = podWith([
    { name: "cm", configMap: { name: "later" } },
    { name: "sec", secret: { secretName: "creds", items: [{ key: "user", path: "u" }] } },
  ]);
  const first = await manager.setUp(pod, context);
  assert.deepEqual(first.failures, [
    { volume: "cm", message: 'configmap "later" not found' },
    { volume: "sec", message: 'secret "creds" not found' },
  ]);
  kube.setConfigMap("ns", "later", { k: "v" });
  kube.setSecret("ns", "creds", { pass: "p" });
  const second = await manager.setUp(pod, context);
  assert.deepEqual(second.failures, [
    { volume: "sec", message: "secret references non-existent secret key: user" },
  ]);
  kube.setSecret("ns", "creds", { user: "admin" });
  const third = await manager.setUp(pod, context);
  assert.deepEqual(third.failures, []);
  assert.equal(await readFile(join(third.volumes.get("sec")!.hostPath, "u"), "utf8"), "admin");
});

test("updates propagate through refresh; deleted sources keep their last content", async () => {
  const { kube, manager } = setup();
  kube.setConfigMap("ns", "live", { greeting: "hello" });
  const pod = podWith([
    { name: "live", configMap: { name: "live" } },
    {
      name: "labels",
      downwardAPI: { items: [{ path: "labels", fieldRef: { fieldPath: "metadata.labels" } }] },
    },
  ]);
  const { volumes } = await manager.setUp(pod, context);
  const dir = volumes.get("live")!.hostPath;
  assert.deepEqual((await manager.refresh(pod, context)).changed, []);
  kube.setConfigMap("ns", "live", { greeting: "bonjour" });
  pod.metadata!.labels = { app: "y" };
  assert.deepEqual((await manager.refresh(pod, context)).changed.sort(), ["labels", "live"]);
  assert.equal(await readFile(join(dir, "greeting"), "utf8"), "bonjour");
  assert.equal(await readFile(join(volumes.get("labels")!.hostPath, "labels"), "utf8"), 'app="y"');
  kube.configMaps.clear();
  const result = await manager.refresh(pod, context);
  assert.equal(result.failures.length, 1);
  assert.equal(await readFile(join(dir, "greeting"), "utf8"), "bonjour");
});

test("projected: configMap + secret + downwardAPI + serviceAccountToken, token reused until 80% of its life", async () => {
  const { kube, manager } = setup();
  kube.setConfigMap("ns", "kube-root-ca.crt", { "ca.crt": "CERT" });
  const pod = podWith([
    {
      name: "kube-api-access",
      projected: {
        defaultMode: 0o644,
        sources: [
          { serviceAccountToken: { path: "token", expirationSeconds: 3607 } },
          { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
          {
            downwardAPI: {
              items: [{ path: "namespace", fieldRef: { fieldPath: "metadata.namespace" } }],
            },
          },
          { secret: { name: "nope", optional: true } },
        ],
      },
    },
  ]);
  const { volumes, failures } = await manager.setUp(pod, context);
  assert.deepEqual(failures, []);
  const dir = volumes.get("kube-api-access")!.hostPath;
  assert.equal(await readFile(join(dir, "token"), "utf8"), "token-sa-1");
  assert.equal(await readFile(join(dir, "ca.crt"), "utf8"), "CERT");
  assert.equal(await readFile(join(dir, "namespace"), "utf8"), "ns");
  assert.deepEqual(kube.tokens[0], {
    audiences: [],
    expirationSeconds: 3607,
    boundPod: { name: pod.metadata!.name, uid: pod.metadata!.uid },
  });
  await manager.refresh(pod, context);
  assert.equal(kube.tokens.length, 1, "a fresh token is reused");

  // A token past 80% of its life is renewed.
  kube.tokenSeconds = 0;
  const short = podWith([
    {
      name: "t",
      projected: { sources: [{ serviceAccountToken: { path: "token", audience: "vault" } }] },
    },
  ]);
  await manager.setUp(short, context);
  await manager.refresh(short, context);
  assert.equal(kube.tokens.length, 3);
  assert.deepEqual(kube.tokens[2]!.audiences, ["vault"]);
});

test("downwardAPI resourceFieldRef needs a container; unsupported projected sources fail", async () => {
  const { manager } = setup();
  const pod = podWith([
    {
      name: "res",
      downwardAPI: {
        items: [
          {
            path: "mem",
            resourceFieldRef: { containerName: "app", resource: "limits.memory", divisor: "1Mi" },
          },
        ],
      },
    },
    { name: "bad", projected: { sources: [{ clusterTrustBundle: { path: "x" } }] } },
  ]);
  const { volumes, failures } = await manager.setUp(pod, context);
  assert.equal(await readFile(join(volumes.get("res")!.hostPath, "mem"), "utf8"), "32");
  assert.deepEqual(failures, [
    { volume: "bad", message: "projected source clusterTrustBundle is not supported by wasmlet" },
  ]);
});

test("emptyDir: created, survives setUp again, usage checked against sizeLimit", async () => {
  const { manager } = setup();
  const pod = podWith([{ name: "scratch", emptyDir: { sizeLimit: "64Ki" } }]);
  const { volumes } = await manager.setUp(pod, context);
  const dir = volumes.get("scratch")!.hostPath;
  await writeFile(join(dir, "small"), "x");
  assert.equal(await manager.emptyDirOverLimit(pod), undefined);
  await manager.setUp(pod, context);
  assert.equal(await readFile(join(dir, "small"), "utf8"), "x");
  await writeFile(join(dir, "big"), Buffer.alloc(256 * 1024, 1));
  const over = await manager.emptyDirOverLimit(pod);
  assert.equal(over?.volume, "scratch");
  assert.equal(over?.message, 'Usage of EmptyDir volume "scratch" exceeds the limit "64Ki". ');
});

test("hostPath: policy, type checks, DirectoryOrCreate", async () => {
  const allowedRoot = join(root, "host");
  await mkdir(allowedRoot, { recursive: true });
  assert.equal(hostPathAllowed(false, "/tmp"), false);
  assert.equal(hostPathAllowed(true, "/anything"), true);
  assert.equal(hostPathAllowed([allowedRoot], join(allowedRoot, "a/b")), true);
  assert.equal(hostPathAllowed([allowedRoot], `${allowedRoot}-evil`), false);
  assert.equal(hostPathAllowed([allowedRoot], join(allowedRoot, "../etc")), false);

  const { manager } = setup([allowedRoot]);
  await writeFile(join(allowedRoot, "file"), "f");
  const pod = podWith([
    { name: "made", hostPath: { path: join(allowedRoot, "made"), type: "DirectoryOrCreate" } },
    { name: "notdir", hostPath: { path: join(allowedRoot, "file"), type: "Directory" } },
    { name: "outside", hostPath: { path: "/etc" } },
  ]);
  const { volumes, failures } = await manager.setUp(pod, context);
  assert.equal((await stat(join(allowedRoot, "made"))).isDirectory(), true);
  assert.equal(volumes.get("made")!.alwaysReadOnly, false);
  assert.deepEqual(failures, [
    {
      volume: "notdir",
      message: `hostPath type check failed: ${join(allowedRoot, "file")} is not a directory`,
    },
    { volume: "outside", message: "hostPath /etc is not allowed by this node's configuration" },
  ]);
});

test("container mounts: readOnly, subPath into emptyDir is live, subPath into a configMap is a copy", async () => {
  const { kube, manager } = setup();
  kube.setConfigMap("ns", "cfg", { "app.conf": "v1" });
  const pod = podWith([
    { name: "cfg", configMap: { name: "cfg" } },
    { name: "data", emptyDir: {} },
  ]);
  const { volumes } = await manager.setUp(pod, context);
  const mounts = await manager.containerMounts(
    pod,
    { name: "app" },
    [
      { name: "cfg", mountPath: "/etc/app" },
      { name: "cfg", mountPath: "/etc/app.conf", subPath: "app.conf" },
      { name: "data", mountPath: "/data" },
      { name: "data", mountPath: "/logs", subPath: "logs/app", readOnly: true },
    ],
    volumes,
  );
  assert.deepEqual(
    mounts.map((m) => [m.guestPath, m.readOnly, m.kind]),
    [
      ["/etc/app", true, "directory"],
      ["/etc/app.conf", true, "file"],
      ["/data", false, "directory"],
      ["/logs", true, "directory"],
    ],
  );
  assert.equal(await readFile(mounts[1]!.hostPath, "utf8"), "v1");
  assert.equal(mounts[3]!.hostPath, join(volumes.get("data")!.hostPath, "logs/app"));
  kube.setConfigMap("ns", "cfg", { "app.conf": "v2" });
  await manager.refresh(pod, context);
  assert.equal(
    await readFile(join(mounts[0]!.hostPath, "app.conf"), "utf8"),
    "v2",
    "whole-volume mounts see updates",
  );
  assert.equal(
    await readFile(mounts[1]!.hostPath, "utf8"),
    "v1",
    "subPath mounts do not (kubelet behaviour)",
  );

  await assert.rejects(
    manager.containerMounts(
      pod,
      { name: "app" },
      [{ name: "data", mountPath: "/x", subPath: "../../etc" }],
      volumes,
    ),
    /failed to prepare subPath for volumeMount "data" of container "app"/,
  );
  await assert.rejects(
    manager.containerMounts(
      pod,
      { name: "app" },
      [{ name: "cfg", mountPath: "/x", subPath: "nope" }],
      volumes,
    ),
    /nope does not exist in the volume/,
  );
});

test("tearDown and removeOrphans delete only wasmlet's directories", async () => {
  const { manager } = setup();
  const keep = podWith([{ name: "d", emptyDir: {} }]);
  const gone = podWith([{ name: "d", emptyDir: {} }]);
  await manager.setUp(keep, context);
  await manager.setUp(gone, context);
  assert.deepEqual(await manager.removeOrphans(new Set([keep.metadata!.uid!])), [
    gone.metadata!.uid,
  ]);
  await stat(manager.podDir(keep.metadata!.uid!));
  await assert.rejects(stat(manager.podDir(gone.metadata!.uid!)));
  await manager.tearDown(keep.metadata!.uid!);
  await assert.rejects(stat(manager.podDir(keep.metadata!.uid!)));
  assert.throws(() => manager.podDir("../etc"), { code: "WASMLET_ERR_VOLUME_PATH" });
});

/** An emptyDir pod set up, with the emptyDir's host directory and a host directory outside it. */
async function emptyDirWithOutside() {
  const { manager } = setup();
  const pod = podWith([{ name: "data", emptyDir: {} }]);
  const { volumes } = await manager.setUp(pod, context);
  const data = volumes.get("data")!.hostPath;
  const outside = join(root, `outside-${n}`);
  await mkdir(outside);
  const mount = (subPath: string) =>
    manager.containerMounts(
      pod,
      { name: "app" },
      [{ name: "data", mountPath: "/m", subPath }],
      volumes,
    );
  return { data, outside, mount };
}

test("subPath through a guest's symlink out of an emptyDir is refused, and nothing is made outside", async () => {
  const { data, outside, mount } = await emptyDirWithOutside();
  await symlink(relative(data, outside), join(data, "a"));
  const error = await mount("a/b/c").then(
    () => assert.fail("the mount was prepared"),
    (error: Error & { code?: string }) => error,
  );
  assert.deepEqual(await readdir(outside), [], "nothing was created outside the volume");
  assert.equal(error.code, "WASMLET_ERR_VOLUME_PATH");
  assert.equal(
    error.message,
    `failed to prepare subPath for volumeMount "data" of container "app": a/b/c is outside the volume: symlink a -> ${relative(data, outside)} leads out of it`,
  );
  await symlink(outside, join(data, "abs"));
  await assert.rejects(
    mount("abs/b"),
    /abs\/b is outside the volume: symlink abs -> .* is absolute/,
  );
  await mkdir(join(data, "dir"));
  await symlink("../..", join(data, "dir", "up"));
  await assert.rejects(
    mount("dir/up/x"),
    /dir\/up\/x is outside the volume: symlink dir\/up -> \.\.\/\.\. leads out of it/,
  );
  assert.deepEqual(await readdir(outside), [], "nothing was created outside the volume");
});

test("subPath through a symlink that stays inside the volume is followed to its real directory", async () => {
  const { data, mount } = await emptyDirWithOutside();
  await mkdir(join(data, "v1"));
  await symlink("v1", join(data, "current"));
  await mkdir(join(data, "dir"));
  await symlink("..", join(data, "dir", "up"));
  const [current] = await mount("current/logs");
  assert.equal(current!.hostPath, join(await realpath(data), "v1/logs"));
  assert.equal((await stat(current!.hostPath)).isDirectory(), true);
  const [up] = await mount("dir/up/x");
  assert.equal(up!.hostPath, join(await realpath(data), "x"));
  await writeFile(join(data, "v1", "file"), "f");
  assert.equal((await mount("current/file"))[0]!.kind, "file");
});

test("subPath creation is race-free against a guest swapping a directory for a symlink", async () => {
  const { data, outside, mount } = await emptyDirWithOutside();
  const stop = new Int32Array(new SharedArrayBuffer(4));
  // The guest's side, on another thread: `a` flips between a real directory and a symlink out.
  const guest = new Worker(
    `const { workerData: { a, target, stop } } = require("node:worker_threads");
     const fs = require("node:fs");
     while (Atomics.load(stop, 0) === 0) {
       try { fs.rmSync(a, { recursive: true, force: true }); fs.mkdirSync(a); } catch {}
       try { fs.rmSync(a, { recursive: true, force: true }); fs.symlinkSync(target, a); } catch {}
     }`,
    { eval: true, workerData: { a: join(data, "a"), target: relative(data, outside), stop } },
  );
  const exited = once(guest, "exit");
  await once(guest, "online");
  const real = await realpath(data);
  let mounted = 0;
  let refused = 0;
  // Until both outcomes have been seen often (a bound, not a synchronisation).
  const deadline = Date.now() + 10_000;
  try {
    while ((mounted < 50 || refused < 50) && Date.now() < deadline) {
      const result = await mount("a/b/c").catch(() => undefined);
      if (result === undefined) {
        refused++;
        continue;
      }
      mounted++;
      assert.ok(result[0]!.hostPath.startsWith(`${real}/`), result[0]!.hostPath);
    }
  } finally {
    Atomics.store(stop, 0, 1);
    await exited;
  }
  assert.deepEqual(await readdir(outside), [], "nothing was created outside the volume");
  assert.ok(
    mounted > 0 && refused > 0,
    `both outcomes seen: ${mounted} mounted, ${refused} refused`,
  );
});

test("hostPath policy is checked on the real path: a symlink in an allowed directory cannot lead out", async () => {
  const allowed = join(root, "allowed");
  const outside = join(root, "outside-host");
  await mkdir(join(allowed, "inner"), { recursive: true });
  await mkdir(outside, { recursive: true });
  await symlink(relative(allowed, outside), join(allowed, "escape"));
  await symlink(outside, join(allowed, "escape-abs"));
  await symlink("inner", join(allowed, "alias"));
  await symlink("nowhere", join(allowed, "dangling"));
  assert.equal(hostPathAllowed([allowed], join(allowed, "escape")), false);
  assert.equal(hostPathAllowed([allowed], join(allowed, "escape-abs/sub")), false);
  assert.equal(hostPathAllowed([allowed], join(allowed, "alias")), true);
  assert.equal(hostPathAllowed([allowed], join(allowed, "not-yet/made")), true);

  const { manager } = setup([allowed]);
  const pod = podWith([
    { name: "escape", hostPath: { path: join(allowed, "escape") } },
    { name: "made", hostPath: { path: join(allowed, "escape/new"), type: "DirectoryOrCreate" } },
    { name: "dangling", hostPath: { path: join(allowed, "dangling"), type: "DirectoryOrCreate" } },
    { name: "alias", hostPath: { path: join(allowed, "alias"), type: "Directory" } },
    { name: "file", hostPath: { path: join(allowed, "alias/d/f"), type: "FileOrCreate" } },
  ]);
  const { volumes, failures } = await manager.setUp(pod, context);
  const realOutside = await realpath(outside);
  assert.deepEqual(failures, [
    {
      volume: "escape",
      message: `hostPath ${join(allowed, "escape")} is not allowed by this node's configuration: it resolves to ${realOutside}, outside every allowed directory`,
    },
    {
      volume: "made",
      message: `hostPath ${join(allowed, "escape/new")} is not allowed by this node's configuration: it resolves to ${join(realOutside, "new")}, outside every allowed directory`,
    },
    {
      volume: "dangling",
      message: `hostPath ${join(allowed, "dangling")} is not allowed by this node's configuration: it goes through a dangling symlink or a symlink loop`,
    },
  ]);
  assert.deepEqual(await readdir(outside), [], "DirectoryOrCreate made nothing outside");
  assert.equal(volumes.get("alias")!.hostPath, join(await realpath(allowed), "inner"));
  assert.equal(volumes.get("file")!.hostPath, join(await realpath(allowed), "inner/d/f"));
  assert.equal((await stat(join(allowed, "inner/d/f"))).isFile(), true);
});
