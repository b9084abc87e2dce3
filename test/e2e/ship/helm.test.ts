// charts/wasmlet with the real helm v4 (built from the Go module proxy and cached; CI prepares it
// with `prepare.ts --helm`): `helm lint --strict` in each mode; the default values render exactly
// what `kubectl kustomize manifests/` builds (and `mode: daemonset` what manifests/daemonset.yaml
// does instead of the Deployment), Helm's release labels aside — the one source of truth; each
// mode's `helm template` is accepted whole by the test control plane (`kubectl apply
// --dry-run=server`); the schema refuses what wasmlet would; and `helm install` as the README
// shows installs a release that grants what manifests/rbac.yaml grants, and uninstalls cleanly.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse, parseAllDocuments } from "yaml";
import { OPTIONS } from "../../../src/config/config.ts";
import { HELM_VERSION, obtainHelm } from "../../../src/devcluster/helm.ts";
import {
  createNamespace,
  eventually,
  kubectl,
  kubectlOk,
  testCluster,
} from "../../support/cluster.ts";
import { ROOT, type RunResult, run } from "./support.ts";

const CHART = join(ROOT, "charts/wasmlet");
const MANIFESTS = join(ROOT, "manifests");
const id = randomBytes(3).toString("hex");

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects read from YAML
type Obj = any;

/** The labels Helm adds to every object of a release, which manifests/ does not carry. */
const HELM_LABELS = [
  "helm.sh/chart",
  "app.kubernetes.io/managed-by",
  "app.kubernetes.io/instance",
  "app.kubernetes.io/version",
];

let helm: string;
let helmHome: string;
let chart: { version: string; appVersion: string };

/** `helm ARGS` with a throw-away config/cache/data home, never the user's. */
function helmRun(args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return run(helm, args, {
    env: {
      ...process.env,
      HELM_CONFIG_HOME: join(helmHome, "config"),
      HELM_CACHE_HOME: join(helmHome, "cache"),
      HELM_DATA_HOME: join(helmHome, "data"),
      KUBECONFIG: testCluster().kubeconfig,
    },
    timeoutMs,
  });
}

async function helmOk(args: string[]): Promise<string> {
  const result = await helmRun(args);
  assert.equal(result.code, 0, `helm ${args.join(" ")}: ${result.stderr}${result.stdout}`);
  return result.stdout;
}

function objectsOf(yaml: string): Obj[] {
  return parseAllDocuments(yaml)
    .map((doc) => doc.toJS())
    .filter(Boolean);
}

/** `helm template` of the chart: the objects, by `Kind namespace/name`. */
async function template(release: string, namespace: string, set: string[] = []): Promise<Obj[]> {
  return objectsOf(await helmOk(["template", release, CHART, "--namespace", namespace, ...set]));
}

const keyOf = (o: Obj) => `${o.kind} ${o.metadata.namespace ?? ""}/${o.metadata.name}`;
const byKey = (objects: Obj[]) => new Map(objects.map((o) => [keyOf(o), o]));

/** Strips Helm's release labels after checking their values. */
function withoutHelmLabels(objects: Obj[], release: string): Obj[] {
  return objects.map((object) => {
    const copy = structuredClone(object);
    const labels = copy.metadata.labels ?? {};
    assert.deepEqual(
      Object.fromEntries(HELM_LABELS.map((k) => [k, labels[k]])),
      {
        "helm.sh/chart": `wasmlet-${chart.version}`,
        "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/version": chart.appVersion,
      },
      keyOf(object),
    );
    for (const key of HELM_LABELS) delete labels[key];
    return copy;
  });
}

/** `kubectl kustomize` of manifests/, the Deployment replaced by the DaemonSet when asked. */
async function kustomize(workload: "deployment.yaml" | "daemonset.yaml"): Promise<Obj[]> {
  const dir = await mkdtemp(join(tmpdir(), "wasmlet-helm-kustomize-"));
  try {
    for (const file of ["namespace.yaml", "rbac.yaml", "runtimeclass.yaml", workload]) {
      await copyFile(join(MANIFESTS, file), join(dir, file));
    }
    const kustomization = await readFile(join(MANIFESTS, "kustomization.yaml"), "utf8");
    // The README's way to pick the DaemonSet: replace deployment.yaml with daemonset.yaml.
    const edited = kustomization.replace(/^ {2}- deployment\.yaml$/m, `  - ${workload}`);
    assert.match(edited, new RegExp(`^  - ${workload.replace(".", "\\.")}$`, "m"));
    await writeFile(join(dir, "kustomization.yaml"), edited);
    return objectsOf(await kubectlOk(["kustomize", dir]));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The objects a `kubectl apply` output reports, e.g. `clusterrole.rbac.authorization.k8s.io/x`. */
function appliedObjects(stdout: string, suffix: string): string[] {
  return stdout
    .split("\n")
    .filter((line) => line.endsWith(suffix))
    .map((line) => line.split(" ")[0] as string)
    .sort();
}

const workloadOf = (objects: Obj[]) =>
  objects.find((o) => o.kind === "Deployment" || o.kind === "DaemonSet");
const wasmletContainer = (workload: Obj) =>
  workload.spec.template.spec.containers.find((c: Obj) => c.name === "wasmlet");

before(async () => {
  helmHome = await mkdtemp(join(tmpdir(), "wasmlet-helm-home-"));
  const started = Date.now();
  const obtained = await obtainHelm({
    onProgress: (line) =>
      process.stderr.write(`# helm [${((Date.now() - started) / 1000).toFixed(0)} s] ${line}\n`),
  });
  helm = obtained.binary;
  chart = parse(await readFile(join(CHART, "Chart.yaml"), "utf8"));
});

after(async () => {
  if (helmHome) await rm(helmHome, { recursive: true, force: true });
});

describe("charts/wasmlet", () => {
  it(`is checked by helm ${HELM_VERSION}, versioned with wasmlet`, async () => {
    assert.equal((await helmOk(["version", "--template={{.Version}}"])).trim(), HELM_VERSION);
    const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8"));
    assert.equal(chart.appVersion, pkg.version);
    assert.equal(chart.version, pkg.version);
  });

  for (const [what, set] of [
    ["default values", []],
    ["mode=daemonset", ["--set", "mode=daemonset"]],
    ["bootstrap.enabled", ["--set", "bootstrap.enabled=true"]],
    ["mode=daemonset with bootstrap.enabled", ["--set", "mode=daemonset,bootstrap.enabled=true"]],
  ] as const) {
    it(`helm lint --strict passes with ${what}`, async () => {
      const out = await helmOk(["lint", "--strict", CHART, ...set]);
      assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    });
  }

  it("the default values render what `kubectl kustomize manifests/` builds (the Namespace is --create-namespace's)", async () => {
    const rendered = withoutHelmLabels(await template("wasmlet", "wasmlet-system"), "wasmlet");
    const built = (await kustomize("deployment.yaml")).filter((o) => o.kind !== "Namespace");
    assert.deepEqual([...byKey(rendered).keys()].sort(), [...byKey(built).keys()].sort());
    assert.deepEqual(byKey(rendered), byKey(built));
  });

  it("mode=daemonset renders manifests/daemonset.yaml in place of the Deployment", async () => {
    const rendered = withoutHelmLabels(
      await template("wasmlet", "wasmlet-system", ["--set", "mode=daemonset"]),
      "wasmlet",
    );
    const built = (await kustomize("daemonset.yaml")).filter((o) => o.kind !== "Namespace");
    assert.deepEqual([...byKey(rendered).keys()].sort(), [...byKey(built).keys()].sort());
    assert.deepEqual(byKey(rendered), byKey(built));
  });

  it("bootstrap.enabled: no ServiceAccount or RBAC; the bootstrap kubeconfig mounted from its Secret and passed with --kubeconfig in the data volume", async () => {
    for (const mode of ["deployment", "daemonset"]) {
      const objects = await template("wasmlet", "wasmlet-system", [
        "--set",
        `mode=${mode},bootstrap.enabled=true,bootstrap.secretName=join-token,bootstrap.secretKey=bootstrap.conf`,
      ]);
      assert.deepEqual(objects.map((o) => o.kind).sort(), [
        mode === "deployment" ? "Deployment" : "DaemonSet",
        "RuntimeClass",
      ]);
      const pod = workloadOf(objects).spec.template.spec;
      assert.equal(pod.serviceAccountName, undefined);
      assert.equal(pod.automountServiceAccountToken, false);
      const container = wasmletContainer(workloadOf(objects));
      const flag = (name: string) =>
        (container.args as string[]).find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
      for (const name of ["bootstrap-kubeconfig", "kubeconfig"]) {
        assert.ok(
          OPTIONS.some((o) => o.flag === name),
          `--${name} is a wasmlet flag`,
        );
      }
      assert.equal(container.args[0], "run");
      const bootstrapPath = flag("bootstrap-kubeconfig")!;
      const kubeconfigPath = flag("kubeconfig")!;
      const mountOf = (path: string) =>
        container.volumeMounts.find((m: Obj) => path.startsWith(`${m.mountPath}/`));
      const bootstrapMount = mountOf(bootstrapPath);
      assert.equal(bootstrapMount?.readOnly, true);
      const volume = pod.volumes.find((v: Obj) => v.name === bootstrapMount.name);
      assert.deepEqual(volume.secret, {
        secretName: "join-token",
        items: [
          { key: "bootstrap.conf", path: bootstrapPath.slice(bootstrapMount.mountPath.length + 1) },
        ],
      });
      // wasmlet writes its own kubeconfig into the writable data volume (--data-dir).
      const dataDir = container.env.find((e: Obj) => e.name === "WASMLET_DATA_DIR").value;
      assert.equal(mountOf(kubeconfigPath)?.mountPath, dataDir);
    }
  });

  it("image, pull policy, node selector, tolerations, resources, extra flags and the RuntimeClass follow the values", async () => {
    const objects = await template("edge", "nodes", [
      "--set",
      "image.repository=registry.example.com/wasmlet,image.tag=dev,image.pullPolicy=Always",
      "--set-json",
      'nodeSelector={"pool":"wasm"}',
      "--set-json",
      'tolerations=[{"key":"dedicated","operator":"Exists","effect":"NoSchedule"}]',
      "--set-json",
      'resources={"requests":{"cpu":"1","memory":"512Mi"},"limits":{"memory":"1Gi"}}',
      "--set-json",
      'extraArgs=["--max-pods=50","--log-level=debug"]',
      "--set",
      "runtimeClass.name=wasi",
    ]);
    const workload = workloadOf(objects);
    assert.equal(workload.metadata.name, "edge-wasmlet");
    const pod = workload.spec.template.spec;
    const container = wasmletContainer(workload);
    assert.equal(container.image, "registry.example.com/wasmlet:dev");
    assert.equal(container.imagePullPolicy, "Always");
    assert.deepEqual(container.args, ["run", "--max-pods=50", "--log-level=debug"]);
    assert.deepEqual(container.resources, {
      requests: { cpu: "1", memory: "512Mi" },
      limits: { memory: "1Gi" },
    });
    // Maps merge with the defaults, as always in Helm (`--set nodeSelector.kubernetes\.io/os=null` drops one).
    assert.deepEqual(pod.nodeSelector, { "kubernetes.io/os": "linux", pool: "wasm" });
    assert.deepEqual(pod.tolerations, [
      { key: "dedicated", operator: "Exists", effect: "NoSchedule" },
    ]);
    assert.equal(pod.serviceAccountName, "edge-wasmlet");
    assert.equal(
      container.env.find((e: Obj) => e.name === "WASMLET_NODE_NAME").value,
      "edge-wasmlet",
    );
    const binding = objects.find((o) => o.kind === "ClusterRoleBinding");
    assert.equal(binding.roleRef.name, "edge-wasmlet-node");
    assert.deepEqual(binding.subjects, [
      { kind: "ServiceAccount", name: "edge-wasmlet", namespace: "nodes" },
    ]);
    assert.equal(objects.find((o) => o.kind === "RuntimeClass").metadata.name, "wasi");

    const off = await template("wasmlet", "wasmlet-system", [
      "--set",
      "rbac.create=false,rbac.serviceAccountName=node-agent,runtimeClass.create=false",
    ]);
    assert.deepEqual(
      off.map((o) => o.kind),
      ["Deployment"],
    );
    assert.equal(workloadOf(off).spec.template.spec.serviceAccountName, "node-agent");
  });

  it("the schema refuses an unknown mode, a misspelt value and bootstrapping without a Secret", async () => {
    for (const [set, pattern] of [
      ["mode=pod", /mode/],
      ["imgae.tag=dev", /imgae/],
      ["extraArgs={max-pods=50}", /extraArgs/],
      ["bootstrap.enabled=true,bootstrap.secretName=", /secretName/],
    ] as const) {
      const result = await helmRun(["template", "wasmlet", CHART, "--set", set]);
      assert.notEqual(result.code, 0, `${set} was accepted`);
      assert.match(result.stderr, pattern, set);
    }
  });
});

describe("charts/wasmlet against the test control plane", () => {
  let namespace: Awaited<ReturnType<typeof createNamespace>>;
  before(async () => {
    namespace = await createNamespace("ship-helm");
  });
  after(async () => {
    await namespace?.remove();
  });

  for (const [what, set] of [
    ["mode=deployment", ["--set", "mode=deployment"]],
    ["mode=daemonset", ["--set", "mode=daemonset"]],
    ["mode=deployment, bootstrap.enabled", ["--set", "mode=deployment,bootstrap.enabled=true"]],
    ["mode=daemonset, bootstrap.enabled", ["--set", "mode=daemonset,bootstrap.enabled=true"]],
  ] as const) {
    it(`helm template (${what}) | kubectl apply --dry-run=server -f - is accepted whole`, async () => {
      // Names of this test only (release, RuntimeClass), so the dry run creates every object.
      const release = `e2e-${id}`;
      const rendered = await helmOk([
        "template",
        release,
        CHART,
        "--namespace",
        namespace.name,
        ...set,
        "--set",
        `runtimeClass.name=e2e-helm-${id}`,
      ]);
      const dry = await kubectl(["apply", "--dry-run=server", "-f", "-"], { input: rendered });
      assert.equal(dry.code, 0, dry.stderr);
      const workload = set[1].includes("daemonset") ? "daemonset.apps" : "deployment.apps";
      const rbac = set[1].includes("bootstrap")
        ? []
        : [
            `clusterrole.rbac.authorization.k8s.io/${release}-wasmlet-node`,
            `clusterrolebinding.rbac.authorization.k8s.io/${release}-wasmlet-node`,
            `serviceaccount/${release}-wasmlet`,
          ];
      assert.deepEqual(
        appliedObjects(dry.stdout, "created (server dry run)"),
        [
          ...rbac,
          `${workload}/${release}-wasmlet`,
          `runtimeclass.node.k8s.io/e2e-helm-${id}`,
        ].sort(),
      );
    });
  }

  it("`helm install … --create-namespace` as the README shows: the release grants a node's rights, its pod is admitted, `helm uninstall` removes it", async () => {
    // The RuntimeClass `wasm` may exist already (wasmlet nodes of other test files create it) and
    // Helm adopts no existing object: this release leaves it out, as the values say to.
    const release = `e2e-${id}`;
    const ns = `e2e-helm-${id}`;
    const installed = await helmRun([
      "install",
      release,
      CHART,
      "-n",
      ns,
      "--create-namespace",
      "--set",
      "runtimeClass.create=false",
      "--set",
      "image.repository=registry.example.com/wasmlet",
    ]);
    try {
      assert.equal(installed.code, 0, installed.stderr);
      assert.match(installed.stdout, /STATUS: deployed/);
      assert.match(installed.stdout, /kubectl certificate approve/);
      const as = `system:serviceaccount:${ns}:${release}-wasmlet`;
      const can = async (...args: string[]) =>
        (await kubectl(["auth", "can-i", ...args, "--as", as])).stdout.trim();
      await eventually(
        async () => (await can("patch", "nodes", "--subresource=status")) === "yes",
        "the release's ClusterRoleBinding to take effect",
      );
      assert.equal(await can("create", "certificatesigningrequests"), "yes");
      assert.equal(await can("delete", "nodes"), "no");
      assert.equal(await can("update", "secrets", "-n", "default"), "no");
      const pod = await eventually(async () => {
        const list = JSON.parse(await kubectlOk(["-n", ns, "get", "pods", "-o", "json"]));
        return list.items[0];
      }, "the Deployment's pod to be created");
      assert.equal(pod.spec.serviceAccountName, `${release}-wasmlet`);
      assert.equal(
        pod.spec.containers[0].image,
        `registry.example.com/wasmlet:${chart.appVersion}`,
      );
      const manifest = objectsOf(await helmOk(["get", "manifest", release, "-n", ns]));
      assert.deepEqual(manifest.map((o) => o.kind).sort(), [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "ServiceAccount",
      ]);
    } finally {
      const uninstalled = await helmRun(["uninstall", release, "-n", ns, "--wait"]);
      await kubectl(["delete", "namespace", ns, "--wait=false"]);
      assert.equal(uninstalled.code, 0, uninstalled.stderr);
    }
    const role = await kubectl(["get", "clusterrole", `${release}-wasmlet-node`]);
    assert.notEqual(role.code, 0, "helm uninstall removes the ClusterRole");
  });
});
