// manifests/ and the example manifests as a platform engineer applies them, against the real test
// control plane: `kubectl apply -k manifests/ --dry-run=server` is accepted whole (strict field
// validation, admission); the cluster-scoped parts really apply and really work (a copy renamed by
// a kustomize overlay, so concurrent tests that use wasmlet-system are never disturbed, and removed
// afterwards); the RuntimeClass `wasm` that wasmlet nodes create is the one the manifest declares;
// every example manifest is accepted by the server.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { glob, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { createNamespace, eventually, kubectl, kubectlOk } from "../../support/cluster.ts";
import { ROOT } from "./support.ts";

const MANIFESTS = join(ROOT, "manifests");
const id = randomBytes(3).toString("hex");
const overlayNamespace = `e2e-ship-${id}`;
const prefix = `e2e-ship-${id}-`;
let overlay: string;

/** The objects a `kubectl apply` output line reports, e.g. `clusterrole.rbac.authorization.k8s.io/x`. */
function appliedObjects(stdout: string, suffix: string): string[] {
  return stdout
    .split("\n")
    .filter((line) => line.endsWith(suffix))
    .map((line) => line.split(" ")[0] as string)
    .sort();
}

before(async () => {
  overlay = await mkdtemp(join(tmpdir(), "wasmlet-ship-manifests-"));
  await writeFile(
    join(overlay, "kustomization.yaml"),
    [
      "apiVersion: kustomize.config.k8s.io/v1beta1",
      "kind: Kustomization",
      `namespace: ${overlayNamespace}`,
      `namePrefix: ${prefix}`,
      "resources:",
      `  - ${relative(overlay, MANIFESTS)}`,
      // The README's way to run an image built from this checkout.
      "images:",
      "  - name: ghcr.io/wasmlet/wasmlet",
      "    newName: registry.example.com/wasmlet",
      "    newTag: 0.1.0-e2e",
      "",
    ].join("\n"),
  );
});

after(async () => {
  await kubectl(["delete", "-k", overlay, "--ignore-not-found", "--wait=false"]);
  await rm(overlay, { recursive: true, force: true });
});

describe("manifests/", () => {
  it("`kubectl apply -k manifests/ --dry-run=server` is accepted, and persists nothing", async () => {
    // Namespaced objects are refused in a namespace that does not exist yet, and a dry run does
    // not create it: create it for real first (as the first line of a real apply would). It is
    // left in place, as test/e2e/node/rbac.test.ts leaves it: other test files use it meanwhile.
    await kubectlOk(["apply", "-f", join(MANIFESTS, "namespace.yaml")]);
    const dry = await kubectl(["apply", "-k", MANIFESTS, "--dry-run=server"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(appliedObjects(dry.stdout, "(server dry run)"), [
      "clusterrole.rbac.authorization.k8s.io/wasmlet-node",
      "clusterrolebinding.rbac.authorization.k8s.io/wasmlet-node",
      "deployment.apps/wasmlet",
      "namespace/wasmlet-system",
      "runtimeclass.node.k8s.io/wasm",
      "serviceaccount/wasmlet",
    ]);
    const deployment = await kubectl(["-n", "wasmlet-system", "get", "deployment", "wasmlet"]);
    assert.notEqual(deployment.code, 0, "a server dry run must not create the Deployment");
    assert.match(deployment.stderr, /NotFound|not found/);
  });

  it("the DaemonSet variant, applied as the README shows, is accepted too (--dry-run=server)", async () => {
    const files = ["namespace.yaml", "rbac.yaml", "runtimeclass.yaml", "daemonset.yaml"];
    const dry = await kubectl([
      "apply",
      "-n",
      "wasmlet-system",
      ...files.flatMap((f) => ["-f", join(MANIFESTS, f)]),
      "--dry-run=server",
    ]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(appliedObjects(dry.stdout, "(server dry run)"), [
      "clusterrole.rbac.authorization.k8s.io/wasmlet-node",
      "clusterrolebinding.rbac.authorization.k8s.io/wasmlet-node",
      "daemonset.apps/wasmlet",
      "namespace/wasmlet-system",
      "runtimeclass.node.k8s.io/wasm",
      "serviceaccount/wasmlet",
    ]);
  });

  it("really applied (renamed), the RBAC grants a node's rights and no more, the RuntimeClass exists, the Deployment's pod is admitted", async () => {
    const applied = await kubectl(["apply", "-k", overlay]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.deepEqual(appliedObjects(applied.stdout, " created"), [
      `clusterrole.rbac.authorization.k8s.io/${prefix}wasmlet-node`,
      `clusterrolebinding.rbac.authorization.k8s.io/${prefix}wasmlet-node`,
      `deployment.apps/${prefix}wasmlet`,
      `namespace/${overlayNamespace}`,
      `runtimeclass.node.k8s.io/${prefix}wasm`,
      `serviceaccount/${prefix}wasmlet`,
    ]);

    const as = `system:serviceaccount:${overlayNamespace}:${prefix}wasmlet`;
    const can = async (...args: string[]) =>
      (await kubectl(["auth", "can-i", ...args, "--as", as])).stdout.trim();
    // The authorizer learns of new bindings through a watch: give it a moment.
    await eventually(
      async () => (await can("patch", "nodes", "--subresource=status")) === "yes",
      "the new ClusterRoleBinding to take effect",
    );
    assert.equal(await can("create", "nodes"), "yes");
    assert.equal(await can("watch", "pods", "--all-namespaces"), "yes");
    assert.equal(await can("patch", "pods", "--subresource=status", "-n", "default"), "yes");
    assert.equal(await can("update", "nodes", "--subresource=status"), "no");
    assert.equal(await can("update", "leases", "-n", "kube-node-lease"), "yes");
    assert.equal(await can("create", "certificatesigningrequests"), "yes");
    assert.equal(await can("create", "subjectaccessreviews"), "yes");
    assert.equal(await can("delete", "nodes"), "no");
    assert.equal(await can("create", "pods", "-n", "default"), "no");
    assert.equal(await can("create", "deployments", "-n", "default"), "no");
    assert.equal(await can("update", "secrets", "-n", "default"), "no");
    assert.equal(await can("approve", "certificatesigningrequests"), "no");

    const runtimeClass = JSON.parse(
      await kubectlOk(["get", "runtimeclass", `${prefix}wasm`, "-o", "json"]),
    );
    assert.equal(runtimeClass.handler, "wasmlet");

    // The ReplicaSet's pod passes admission (ServiceAccount, security context, probes) and waits
    // for a Linux node the test cluster does not have.
    const pod = await eventually(async () => {
      const list = JSON.parse(
        await kubectlOk(["-n", overlayNamespace, "get", "pods", "-o", "json"]),
      );
      return list.items[0];
    }, "the Deployment's pod to be created");
    assert.equal(pod.spec.serviceAccountName, `${prefix}wasmlet`);
    assert.equal(pod.spec.containers[0].image, "registry.example.com/wasmlet:0.1.0-e2e");
    assert.equal(pod.spec.securityContext.runAsNonRoot, true);
  });

  it("the RuntimeClass `wasm` applies server-side without conflict over what wasmlet nodes create", async () => {
    // wasmlet nodes of other test files create `wasm` when absent and rely on it: apply the
    // manifest's fields server-side (a conflict would mean the two disagree) and leave it.
    const file = join(MANIFESTS, "runtimeclass.yaml");
    const applied = await kubectl([
      "apply",
      "--server-side",
      "--field-manager=wasmlet-e2e-ship",
      "-f",
      file,
    ]);
    assert.equal(applied.code, 0, applied.stderr);
    const manifest = parse(await readFile(file, "utf8"));
    const live = JSON.parse(await kubectlOk(["get", "runtimeclass", "wasm", "-o", "json"]));
    assert.equal(live.handler, manifest.handler);
    assert.deepEqual(live.scheduling, manifest.scheduling);
  });
});

describe("example manifests", () => {
  let namespace: Awaited<ReturnType<typeof createNamespace>>;
  before(async () => {
    namespace = await createNamespace("ship-examples");
  });
  after(async () => {
    await namespace?.remove();
  });

  it("every manifest under examples/ and manifests/examples/ passes --dry-run=server", async () => {
    const files: string[] = [];
    for await (const file of glob(["examples/*/*.yaml", "manifests/examples/*.yaml"], {
      cwd: ROOT,
    })) {
      files.push(file);
    }
    assert.ok(files.length >= 7, files.join(", "));
    for (const file of files.sort()) {
      const objects = (await readFile(join(ROOT, file), "utf8"))
        .split(/^---$/m)
        .map((doc) => parse(doc))
        .filter(Boolean);
      const dry = await kubectl([
        "apply",
        "-n",
        namespace.name,
        "-f",
        join(ROOT, file),
        "--dry-run=server",
      ]);
      assert.equal(dry.code, 0, `${file}: ${dry.stderr}`);
      assert.equal(
        appliedObjects(dry.stdout, "(server dry run)").length,
        objects.length,
        `${file}: ${dry.stdout}`,
      );
    }
  });

  it("a wasm pod naming a RuntimeClass that does not exist is refused (the check above is real)", async () => {
    const pod = (await readFile(join(ROOT, "examples/hello-go/pod.yaml"), "utf8")).replace(
      "runtimeClassName: wasm",
      "runtimeClassName: no-such-class",
    );
    const dry = await kubectl(["apply", "-n", namespace.name, "-f", "-", "--dry-run=server"], {
      input: pod,
    });
    assert.notEqual(dry.code, 0);
    assert.match(dry.stderr, /RuntimeClass "no-such-class" not found/);
  });
});
