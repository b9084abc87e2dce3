// Who may read what on a wasm node's kubelet API, asked directly over HTTPS at the node's port:
// each read endpoint refuses anonymous and unknown callers (401) and callers the cluster does not
// authorize (403), and serves a caller granted exactly the `nodes/<subresource>` that guards its
// path (200) — the kubelet's mapping: /containerLogs → proxy, /metrics… → metrics, /stats… →
// stats, /pods → pods or proxy, /healthz → healthz or proxy. exec and attach need `create` on
// nodes/proxy even though a WebSocket upgrade is a GET: `get` alone must not open a shell.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { eventually, kubectl, kubectlOk, testCluster } from "../../support/cluster.ts";
import { serviceAccountToken } from "../../support/wasmlet.ts";
import {
  createTestCA,
  httpsRequest,
  type IssuedCert,
  issue,
  loadCA,
} from "../../unit/server/test-pki.ts";
import {
  applyJson,
  type PodTestBed,
  phaseIs,
  startPodTestBed,
  waitForPod,
} from "../pods/support.ts";

const SUBRESOURCES = ["proxy", "metrics", "stats", "pods", "healthz", "log"] as const;
type Subresource = (typeof SUBRESOURCES)[number];

interface Endpoint {
  path: string;
  /** The subresources that open it, as the kubelet maps paths. */
  allowedBy: Subresource[];
  /** What a granted caller gets. */
  body: RegExp;
}

describe("authorization of the kubelet API", () => {
  let bed: PodTestBed;
  let base: string;
  let endpoints: Endpoint[];
  const granted = new Map<Subresource, IssuedCert>();
  let nobody: IssuedCert;
  let operator: IssuedCert;
  let stranger: IssuedCert;
  const suffix = Math.random().toString(16).slice(2, 8);
  const roleOf = (sub: Subresource) => `e2e-authz-${suffix}-${sub}`;

  before(async () => {
    const cluster = testCluster();
    const ca = await loadCA(
      await readFile(cluster.caCertFile, "utf8"),
      await readFile(cluster.caKeyFile, "utf8"),
    );
    bed = await startPodTestBed("authz");
    base = `https://127.0.0.1:${bed.wasmlet.port}`;
    await applyJson(bed.namespace, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "hello" },
      spec: {
        runtimeClassName: bed.runtimeClass,
        restartPolicy: "Never",
        containers: [{ name: "main", image: await bed.image("hello") }],
      },
    });
    // One identity per subresource, each granted `get` on exactly that one.
    for (const sub of SUBRESOURCES) {
      const user = `${roleOf(sub)}-user`;
      await kubectlOk([
        "create",
        "clusterrole",
        roleOf(sub),
        "--verb=get",
        `--resource=nodes/${sub}`,
      ]);
      await kubectlOk([
        "create",
        "clusterrolebinding",
        roleOf(sub),
        `--clusterrole=${roleOf(sub)}`,
        `--user=${user}`,
      ]);
      granted.set(sub, await issue(ca, user));
    }
    nobody = await issue(ca, `e2e-authz-${suffix}-nobody`);
    const operatorRole = `e2e-authz-${suffix}-operator`;
    await kubectlOk([
      "create",
      "clusterrole",
      operatorRole,
      "--verb=create",
      "--resource=nodes/proxy",
    ]);
    await kubectlOk([
      "create",
      "clusterrolebinding",
      operatorRole,
      `--clusterrole=${operatorRole}`,
      `--user=${operatorRole}-user`,
    ]);
    operator = await issue(ca, `${operatorRole}-user`);
    await applyJson(bed.namespace, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "shell" },
      spec: {
        runtimeClassName: bed.runtimeClass,
        containers: [{ name: "main", image: await bed.image("toolbox"), stdin: true }],
      },
    });
    // A well-formed certificate from a CA the cluster does not know.
    stranger = await issue(await createTestCA("e2e-stranger-ca"), "e2e-stranger", {
      groups: ["system:masters"],
    });
    // Denials are cached for 30 s: ask only once RBAC has every binding.
    for (const sub of SUBRESOURCES) {
      await eventually(
        async () =>
          (
            await kubectl([
              "auth",
              "can-i",
              "get",
              "nodes",
              `--subresource=${sub}`,
              `--as=${roleOf(sub)}-user`,
            ])
          ).stdout.trim() === "yes",
        `RBAC to grant nodes/${sub}`,
      );
    }
    await eventually(
      async () =>
        (
          await kubectl([
            "auth",
            "can-i",
            "create",
            "nodes",
            "--subresource=proxy",
            `--as=${operatorRole}-user`,
          ])
        ).stdout.trim() === "yes",
      "RBAC to grant create on nodes/proxy",
    );
    await waitForPod(bed.namespace, "hello", "Succeeded", phaseIs("Succeeded"));
    await waitForPod(bed.namespace, "shell", "Running", phaseIs("Running"));
    endpoints = [
      {
        path: `/containerLogs/${bed.namespace}/hello/main`,
        allowedBy: ["proxy"],
        body: /^hello from wasm$/m,
      },
      {
        path: `/containerLogs/${bed.namespace}/hello/main?tailLines=1&timestamps=true`,
        allowedBy: ["proxy"],
        body: /^\d{4}-\d\d-\d\dT[\d:.]+Z [^\n]+\n$/,
      },
      {
        path: "/metrics/resource",
        allowedBy: ["metrics"],
        body: /^node_cpu_usage_seconds_total /m,
      },
      { path: "/metrics", allowedBy: ["metrics"], body: /^wasmlet_pods/m },
      {
        path: "/stats/summary",
        allowedBy: ["stats"],
        body: new RegExp(`"nodeName":"${bed.wasmlet.nodeName}"`),
      },
      { path: "/pods", allowedBy: ["pods", "proxy"], body: /"kind":"PodList"/ },
      { path: "/healthz", allowedBy: ["healthz", "proxy"], body: /^ok$/ },
    ];
  });
  after(async () => {
    for (const role of [...SUBRESOURCES.map(roleOf), `e2e-authz-${suffix}-operator`])
      await kubectl(["delete", "clusterrole,clusterrolebinding", role, "--ignore-not-found"]);
    await bed?.cleanup();
  });

  it("answers 401 to callers without credentials, with unknown tokens or certificates", async () => {
    for (const { path } of endpoints) {
      const anonymous = await httpsRequest(`${base}${path}`);
      assert.equal(anonymous.status, 401, `anonymous ${path}`);
      assert.equal(anonymous.body, "Unauthorized");
      const badToken = await httpsRequest(`${base}${path}`, { token: "not-a-real-token" });
      assert.equal(badToken.status, 401, `unknown token ${path}`);
    }
    // An untrusted certificate fails the handshake or is not taken as an identity; never 2xx.
    const foreign = await httpsRequest(`${base}/healthz`, { client: stranger }).catch(
      (error: Error) => ({ status: 0, body: error.message }),
    );
    assert.ok(foreign.status === 0 || foreign.status === 401, `${foreign.status} ${foreign.body}`);
  });

  it("answers 403 to authenticated callers the cluster does not authorize", async () => {
    const token = await serviceAccountToken(bed.namespace, "reader");
    for (const { path, allowedBy } of endpoints) {
      const byCert = await httpsRequest(`${base}${path}`, { client: nobody });
      assert.equal(byCert.status, 403, `${path} by certificate`);
      const named = allowedBy.join(",");
      assert.match(
        byCert.body,
        new RegExp(
          `^Forbidden \\(user=e2e-authz-${suffix}-nobody, verb=get, resource=nodes, subresource\\(s\\)=\\[${named}\\]\\)`,
        ),
        path,
      );
      const byToken = await httpsRequest(`${base}${path}`, { token });
      assert.equal(byToken.status, 403, `${path} by service-account token`);
      assert.match(byToken.body, new RegExp(`user=system:serviceaccount:${bed.namespace}:reader`));
    }
  });

  it("serves each endpoint to the callers granted its subresource, and only to them", async () => {
    for (const { path, allowedBy, body } of endpoints) {
      for (const sub of SUBRESOURCES) {
        const answer = await httpsRequest(`${base}${path}`, { client: granted.get(sub)! });
        if (allowedBy.includes(sub)) {
          assert.equal(answer.status, 200, `nodes/${sub} opens ${path}: ${answer.body}`);
          assert.match(answer.body, body, `${path} for nodes/${sub}`);
        } else {
          assert.equal(answer.status, 403, `nodes/${sub} does not open ${path}`);
        }
      }
    }
  });

  it("opens exec and attach only to callers who may create nodes/proxy", async () => {
    const streams = [
      `/exec/${bed.namespace}/shell/main?command=toolbox&command=echo&command=hi&stdout=1`,
      `/attach/${bed.namespace}/shell/main?stdin=1&stdout=1`,
    ];
    const token = await serviceAccountToken(bed.namespace, "reader");
    for (const path of streams) {
      const url = `${base}${path}`;
      const anonymous = await httpsRequest(url, { websocket: true });
      assert.equal(anonymous.status, 401, `anonymous ${path}`);
      const badToken = await httpsRequest(url, { websocket: true, token: "not-a-real-token" });
      assert.equal(badToken.status, 401, `unknown token ${path}`);
      const byToken = await httpsRequest(url, { websocket: true, token });
      assert.equal(byToken.status, 403, `service account without RBAC ${path}`);
      // `get nodes/proxy` reads logs, but a WebSocket upgrade (a GET) to exec or attach is `create`.
      const reader = await httpsRequest(url, { websocket: true, client: granted.get("proxy")! });
      assert.equal(reader.status, 403, `get-only nodes/proxy ${path}`);
      assert.match(
        reader.body,
        new RegExp(
          `^Forbidden \\(user=${roleOf("proxy")}-user, verb=create, resource=nodes, subresource\\(s\\)=\\[proxy\\]\\)`,
        ),
      );
      const allowed = await httpsRequest(url, { websocket: true, client: operator });
      assert.equal(allowed.status, 101, `create nodes/proxy ${path}: ${allowed.body}`);
      assert.equal(allowed.headers["sec-websocket-protocol"], "v5.channel.k8s.io");
      // An API server that translates to SPDY (ExtendWebSocketsToKubelet off) is told what to enable.
      const spdy = await httpsRequest(url, {
        method: "POST",
        client: operator,
        headers: {
          connection: "Upgrade",
          upgrade: "SPDY/3.1",
          "x-stream-protocol-version": "v4.channel.k8s.io",
        },
      });
      assert.equal(spdy.status, 400, spdy.body);
      assert.match(
        spdy.body,
        /asks to upgrade to SPDY\/3\.1.*ExtendWebSocketsToKubelet feature gate/,
      );
    }
  });

  it("takes bearer tokens of service accounts granted a subresource", async () => {
    await kubectlOk([
      "create",
      "clusterrolebinding",
      `${roleOf("metrics")}-sa`,
      `--clusterrole=${roleOf("metrics")}`,
      `--serviceaccount=${bed.namespace}:scraper`,
    ]);
    try {
      const token = await serviceAccountToken(bed.namespace, "scraper");
      await eventually(
        async () =>
          (
            await kubectl([
              "auth",
              "can-i",
              "get",
              "nodes",
              "--subresource=metrics",
              `--as=system:serviceaccount:${bed.namespace}:scraper`,
            ])
          ).stdout.trim() === "yes",
        "RBAC to grant the service account nodes/metrics",
      );
      const metrics = await httpsRequest(`${base}/metrics/resource`, { token });
      assert.equal(metrics.status, 200, metrics.body);
      assert.match(metrics.body, /^node_memory_working_set_bytes /m);
      const stats = await httpsRequest(`${base}/stats/summary`, { token });
      assert.equal(stats.status, 403);
    } finally {
      await kubectl([
        "delete",
        "clusterrolebinding",
        `${roleOf("metrics")}-sa`,
        "--ignore-not-found",
      ]);
    }
  });
});
