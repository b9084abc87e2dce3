// manifests/ and examples/ agree with wasmlet and with each other, read without a cluster (the
// e2e test test/e2e/ship/manifests.test.ts has the API server judge them): every WASMLET_*
// variable is a real option with a valid value, probes reach /healthz where wasmlet serves it, the
// ports are the ones configured, the data directory is writable under a read-only root, the
// ServiceAccount is the one RBAC binds, the image is this version, RBAC holds no wildcard, and each
// example's manifest runs the image its build.sh pushes.
import assert from "node:assert/strict";
import { accessSync, constants, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import { OPTIONS } from "../../../src/config/config.ts";
import { hostDefaults } from "../../../src/config/host-defaults.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;
const MANIFESTS = join(ROOT, "manifests");

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects read from YAML
type Obj = any;

function load(path: string): Obj[] {
  return parseAllDocuments(readFileSync(path, "utf8"))
    .map((doc) => doc.toJS())
    .filter(Boolean);
}

const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
const kustomization = load(join(MANIFESTS, "kustomization.yaml"))[0];
const rbac = load(join(MANIFESTS, "rbac.yaml"));
const serviceAccount = rbac.find((o) => o.kind === "ServiceAccount");
const clusterRole = rbac.find((o) => o.kind === "ClusterRole");
const binding = rbac.find((o) => o.kind === "ClusterRoleBinding");
const workloads = ["deployment.yaml", "daemonset.yaml"].map((file) => ({
  file,
  object: load(join(MANIFESTS, file))[0],
}));

function defaultOf(key: string): unknown {
  const spec = OPTIONS.find((o) => o.key === key);
  assert.ok(spec, key);
  return spec.defaultValue({ host: hostDefaults, env: {} });
}

/** The container's WASMLET_* settings (literal values only; valueFrom entries map to undefined). */
function settings(container: Obj): Map<string, string | undefined> {
  return new Map(
    (container.env ?? []).map((e: Obj) => [e.name, e.valueFrom ? undefined : String(e.value)]),
  );
}

describe("manifests/", () => {
  it("kustomization.yaml lists files that exist; the only other file is the DaemonSet variant", () => {
    const listed: string[] = kustomization.resources;
    for (const file of listed) accessSync(join(MANIFESTS, file));
    const others = readdirSync(MANIFESTS).filter(
      (f) => f.endsWith(".yaml") && f !== "kustomization.yaml" && !listed.includes(f),
    );
    assert.deepEqual(others, ["daemonset.yaml"]);
    assert.equal(kustomization.namespace, load(join(MANIFESTS, "namespace.yaml"))[0].metadata.name);
  });

  it("RBAC binds the ServiceAccount the workloads use, with no wildcard and no escalation", () => {
    assert.equal(serviceAccount.metadata.namespace, kustomization.namespace);
    assert.deepEqual(binding.roleRef, {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: clusterRole.metadata.name,
    });
    assert.deepEqual(binding.subjects, [
      {
        kind: "ServiceAccount",
        name: serviceAccount.metadata.name,
        namespace: serviceAccount.metadata.namespace,
      },
    ]);
    for (const rule of clusterRole.rules) {
      for (const field of ["apiGroups", "resources", "verbs"]) {
        assert.ok(!rule[field].includes("*"), `wildcard in ${JSON.stringify(rule)}`);
      }
      for (const verb of ["escalate", "bind", "impersonate", "approve", "deletecollection"]) {
        assert.ok(!rule.verbs.includes(verb), `${verb} in ${JSON.stringify(rule)}`);
      }
      if (rule.resources.includes("secrets")) {
        assert.deepEqual(rule.verbs.sort(), ["get", "list", "watch"]);
      }
    }
    for (const { object } of workloads) {
      assert.equal(object.spec.template.spec.serviceAccountName, serviceAccount.metadata.name);
    }
  });

  for (const { file, object } of workloads) {
    describe(file, () => {
      const pod = object.spec.template.spec;
      const container = pod.containers.find((c: Obj) => c.name === "wasmlet");
      const env = settings(container);
      const setting = (key: string) => {
        const spec = OPTIONS.find((o) => o.key === key)!;
        const raw = env.get(spec.env);
        return raw === undefined ? defaultOf(key) : spec.parse(raw);
      };

      it("runs this version's image with `run`", () => {
        assert.equal(container.image, `ghcr.io/wasmlet/wasmlet:${pkg.version}`);
        assert.deepEqual(container.args, ["run"]);
      });

      it("sets only real WASMLET_* options, each to a value wasmlet accepts", () => {
        const byEnv = new Map(OPTIONS.map((o) => [o.env, o]));
        for (const [name, value] of env) {
          if (!name.startsWith("WASMLET_")) continue;
          const spec = byEnv.get(name);
          assert.ok(spec, `${name} is not a wasmlet option`);
          if (value !== undefined && !value.includes("$(")) {
            assert.doesNotThrow(() => spec.parse(value), `${name}=${value}`);
          }
        }
        // In a pod, wasmlet takes its API server from the ServiceAccount, and its node IP from
        // the downward API (the host-default guess would be wrong in a pod network).
        assert.equal(env.has("WASMLET_KUBECONFIG"), false);
        const nodeIP = container.env.find((e: Obj) => e.name === "WASMLET_NODE_IP");
        assert.match(nodeIP?.valueFrom?.fieldRef?.fieldPath ?? "", /^status\.(podIP|hostIP)$/);
      });

      it("declares the kubelet API port wasmlet listens on", () => {
        const port = container.ports.find((p: Obj) => p.name === "kubelet-api");
        assert.equal(port?.containerPort, setting("port"));
      });

      it("probes /healthz where wasmlet serves it", () => {
        const healthzPort = setting("healthzPort");
        assert.notEqual(healthzPort, 0, "the probes need /healthz");
        for (const kind of ["startupProbe", "livenessProbe"]) {
          const probe = container[kind]?.httpGet;
          assert.ok(probe, `${kind} is missing`);
          assert.equal(probe.path, "/healthz");
          const port =
            typeof probe.port === "number"
              ? probe.port
              : container.ports.find((p: Obj) => p.name === probe.port)?.containerPort;
          assert.equal(port, healthzPort, `${kind} port`);
          // The kubelet probes the pod IP unless told a host; on the host network 127.0.0.1 is
          // the node itself.
          const host = probe.host ?? (pod.hostNetwork ? undefined : "pod IP");
          if (host === "pod IP") assert.equal(setting("healthzBindAddress"), "0.0.0.0");
          else assert.equal(host, setting("healthzBindAddress"));
        }
      });

      it("runs as uid 1000 (the image's user) without privileges, writing only its data volume", () => {
        assert.equal(pod.securityContext.runAsNonRoot, true);
        assert.equal(pod.securityContext.runAsUser, 1000);
        assert.equal(container.securityContext.allowPrivilegeEscalation, false);
        assert.deepEqual(container.securityContext.capabilities.drop, ["ALL"]);
        assert.equal(container.securityContext.readOnlyRootFilesystem, true);
        const dataDir = setting("dataDir");
        const mount = container.volumeMounts.find((m: Obj) => m.mountPath === dataDir);
        assert.ok(mount, `--data-dir ${dataDir} is not a volume under a read-only root`);
        assert.ok(pod.volumes.some((v: Obj) => v.name === mount.name));
        assert.ok(container.resources.limits.memory, "a memory limit");
      });

      it("asks for a kubelet-serving certificate that RBAC lets it request", () => {
        assert.equal(setting("tlsBootstrap"), true);
        const csr = clusterRole.rules.find((r: Obj) =>
          r.resources.includes("certificatesigningrequests"),
        );
        assert.ok(csr?.verbs.includes("create"));
      });
    });
  }
});

describe("examples/", () => {
  const examples = readdirSync(join(ROOT, "examples"), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  /** What each build.sh pushes, as the image its manifest names (registry localhost:5000). */
  const pushed = new Map<string, string>();
  for (const name of examples) {
    const script = readFileSync(join(ROOT, "examples", name, "build.sh"), "utf8");
    const target = /push \S+ "\$registry\/([^"]+)"/.exec(script)?.[1];
    if (target) pushed.set(name, `localhost:5000/${target}`);
  }

  it("there are the six examples the README lists", () => {
    assert.deepEqual(examples, [
      "file-reader",
      "hello-c",
      "hello-go",
      "job",
      "ticker",
      "web-server",
    ]);
  });

  for (const name of examples) {
    it(`${name}: an executable build.sh that pushes, a source, and a manifest running that image with runtimeClassName: wasm`, () => {
      const dir = join(ROOT, "examples", name);
      accessSync(join(dir, "build.sh"), constants.X_OK);
      const script = readFileSync(join(dir, "build.sh"), "utf8");
      assert.match(script, /^#!\/usr\/bin\/env bash\n/);
      assert.match(script, /^set -euo pipefail$/m);
      assert.match(script, /^registry=\$\{1:-localhost:5000\}$/m);
      assert.ok(pushed.has(name), `examples/${name}/build.sh pushes nothing`);
      const files = readdirSync(dir);
      assert.ok(
        files.some((f) => f.endsWith(".go") || f.endsWith(".c")),
        `no source in ${files.join(", ")}`,
      );
      const manifests = files.filter((f) => f.endsWith(".yaml"));
      assert.equal(manifests.length, 1, manifests.join(", "));
      const objects = load(join(dir, manifests[0]!));
      const pods = objects
        .map((o) => (o.kind === "Pod" ? o.spec : o.spec?.template?.spec))
        .filter(Boolean);
      assert.ok(pods.length > 0, "no pod spec");
      for (const spec of pods) {
        assert.equal(spec.runtimeClassName, "wasm");
        for (const c of spec.containers) assert.equal(c.image, pushed.get(name));
      }
    });
  }

  it("manifests/examples/ run images that an example's build.sh pushes", () => {
    const images = new Set(pushed.values());
    for (const file of readdirSync(join(MANIFESTS, "examples"))) {
      for (const object of load(join(MANIFESTS, "examples", file))) {
        const spec = object.kind === "Pod" ? object.spec : object.spec?.template?.spec;
        assert.equal(spec.runtimeClassName, "wasm", file);
        for (const c of spec.containers) assert.ok(images.has(c.image), `${file}: ${c.image}`);
      }
    }
  });
});
