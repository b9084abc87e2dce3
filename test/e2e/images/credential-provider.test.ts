// The kubelet's credential-provider plugins, end to end: a node configured with a
// CredentialProviderConfig pulls from a registry that requires credentials, which a plugin (a
// small script written here) hands out; answers are cached by the plugin's cacheKeyType; a plugin
// that fails is named in the pull's error.
import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { LocalRegistry } from "../../../src/devcluster/registry.ts";
import { pushWasmArtifact, RegistryClient } from "../../../src/images/index.ts";
import { buildGuest } from "../../support/guests.ts";
import { applyJson, type PodTestBed, startPodTestBed, waitForPod } from "../pods/support.ts";

const alice = { username: "alice", password: "s3cret plugin pass" };
let dir: string;
let registry: LocalRegistry;
let bed: PodTestBed;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wasmlet-credprov-"));
  registry = await LocalRegistry.start({ basicAuth: alice });
  const ticker = await readFile(await buildGuest("ticker"));
  const client = new RegistryClient();
  for (const repository of ["private/app", "other/app"]) {
    await pushWasmArtifact(ticker, `${registry.address}/${repository}:1`, {
      client,
      credentials: [{ ...alice, source: "test" }],
    });
  }
  const bin = join(dir, "bin");
  const requests = join(dir, "requests");
  await Promise.all([mkdir(bin), mkdir(requests)]);
  // A plugin: records each request, answers with alice's credentials for the registry.
  await writeFile(
    join(bin, "test-provider"),
    `#!/usr/bin/env bash
cat > "$REQUESTS/$(date +%s%N).json"
cat <<JSON
{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse",
 "cacheKeyType":"Registry","cacheDuration":"1h",
 "auth":{"${registry.address}":{"username":"${alice.username}","password":"${alice.password}"}}}
JSON
`,
  );
  await writeFile(
    join(bin, "broken-provider"),
    "#!/usr/bin/env bash\necho 'no credentials for you' >&2\nexit 3\n",
  );
  for (const name of ["test-provider", "broken-provider"]) await chmod(join(bin, name), 0o755);
  const config = join(dir, "credential-providers.yaml");
  await writeFile(
    config,
    `apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: test-provider
    matchImages: ["${registry.address}/private"]
    defaultCacheDuration: 10m
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    env:
      - name: REQUESTS
        value: ${requests}
  - name: broken-provider
    matchImages: ["${registry.address}/other"]
    defaultCacheDuration: 10m
    apiVersion: credentialprovider.kubelet.k8s.io/v1
`,
  );
  bed = await startPodTestBed("credprov", [
    "--image-credential-provider-config",
    config,
    "--image-credential-provider-bin-dir",
    bin,
  ]);
});
after(async () => {
  await bed?.cleanup();
  await registry?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function pod(name: string, image: string): object {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name },
    spec: { runtimeClassName: bed.runtimeClass, containers: [{ name: "main", image }] },
  };
}

const running = (p: V1Pod) => p.status?.phase === "Running";

test("a plugin's credentials pull a private image; its answer is cached by registry", async () => {
  const image = `${registry.address}/private/app:1`;
  await applyJson(bed.namespace, pod("first", image));
  await waitForPod(bed.namespace, "first", "Running", running, 60_000);
  const requests = await readdir(join(dir, "requests"));
  assert.equal(requests.length, 1);
  const request = JSON.parse(await readFile(join(dir, "requests", requests[0]!), "utf8"));
  assert.deepEqual(request, {
    apiVersion: "credentialprovider.kubelet.k8s.io/v1",
    kind: "CredentialProviderRequest",
    image,
  });
  await applyJson(bed.namespace, pod("second", image));
  await waitForPod(bed.namespace, "second", "Running", running, 60_000);
  assert.equal((await readdir(join(dir, "requests"))).length, 1, "the cached answer was used");
});

test("a plugin that fails is named in the pull's error", async () => {
  await applyJson(bed.namespace, pod("refused", `${registry.address}/other/app:1`));
  const failed = await waitForPod(bed.namespace, "refused", "ErrImagePull", (p) =>
    /ErrImagePull|ImagePullBackOff/.test(
      p.status?.containerStatuses?.[0]?.state?.waiting?.reason ?? "",
    ),
  );
  const message = failed.status?.containerStatuses?.[0]?.state?.waiting?.message ?? "";
  assert.match(message, /credential provider broken-provider: failed: no credentials for you/);
});
