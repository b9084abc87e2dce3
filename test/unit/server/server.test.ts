import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { getCACertificates, setDefaultCACertificates } from "node:tls";
import type { V1SubjectAccessReview, V1TokenReview } from "@kubernetes/client-node";
import { pino } from "pino";
import { certificateUser, RequestAuthenticator } from "../../../src/server/authn.ts";
import { NodeAuthorizer } from "../../../src/server/authz.ts";
import { serverError } from "../../../src/server/errors.ts";
import { HealthChecks, healthzRoutes } from "../../../src/server/healthz.ts";
import { KubeletServer } from "../../../src/server/server.ts";
import { ServingCertificates } from "../../../src/server/serving-certificates.ts";
import { untilAsync } from "../../support/until.ts";
import { createTestCA, httpsRequest, type IssuedCert, issue, type TestCA } from "./test-pki.ts";

const logger = pino({ level: "silent" });

describe("KubeletServer", () => {
  let dir: string;
  let ca: TestCA;
  let admin: IssuedCert;
  let nobody: IssuedCert;
  let stranger: IssuedCert;
  let server: KubeletServer;
  let certificates: ServingCertificates;
  let base: string;
  const reviews: V1SubjectAccessReview[] = [];
  const tokenReviews: string[] = [];
  let healthy = true;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "wasmlet-server-"));
    ca = await createTestCA();
    admin = await issue(ca, "kube-apiserver-kubelet-client", { groups: ["system:masters"] });
    nobody = await issue(ca, "nobody");
    stranger = await issue(await createTestCA("another-ca"), "kube-apiserver-kubelet-client", {
      groups: ["system:masters"],
    });
    const serving = await issue(ca, "n1", { server: { dns: ["n1"], ips: ["127.0.0.1"] } });
    await writeFile(join(dir, "tls.crt"), serving.cert);
    await writeFile(join(dir, "tls.key"), serving.key);

    certificates = new ServingCertificates({
      config: {
        tlsCertFile: join(dir, "tls.crt"),
        tlsPrivateKeyFile: join(dir, "tls.key"),
        tlsBootstrap: true,
        allowSelfSigned: false,
        dataDir: dir,
      },
      identity: { nodeName: "n1", dnsNames: ["n1"], ipAddresses: ["127.0.0.1"] },
      logger,
      fileCheckIntervalMs: 50,
    });
    await certificates.load();
    certificates.start();
    const health = new HealthChecks();
    health.add("heartbeat", () =>
      healthy ? undefined : "the node lease was last renewed 99 s ago",
    );
    server = new KubeletServer({
      config: { address: "127.0.0.1", port: 0, nodeName: "n1" },
      logger,
      clientCA: ca.cert,
      certificates,
      authenticator: new RequestAuthenticator({
        clientCertificates: true,
        tokens: {
          review: async (token): Promise<V1TokenReview> => {
            tokenReviews.push(token);
            return token === "good-token"
              ? {
                  spec: { token },
                  status: {
                    authenticated: true,
                    user: {
                      username: "system:serviceaccount:ns:metrics",
                      groups: ["system:serviceaccounts"],
                    },
                  },
                }
              : { spec: { token }, status: { authenticated: false, error: "invalid token" } };
          },
        },
      }),
      authorizer: new NodeAuthorizer({
        nodeName: "n1",
        reviewer: {
          review: async (review) => {
            reviews.push(review);
            const user = review.spec.user;
            return (
              user === "kube-apiserver-kubelet-client" ||
              (user === "system:serviceaccount:ns:metrics" &&
                review.spec.resourceAttributes?.subresource !== "proxy")
            );
          },
        },
      }),
    });
    for (const route of healthzRoutes(health)) server.route(route);
    server.route({
      method: "GET",
      url: "/containerLogs/:namespace/:pod/:container",
      handler: async (request, _reply, context) => {
        const { pod } = request.params as { pod: string };
        if (pod === "missing")
          throw serverError("WASMLET_ERR_NOT_FOUND", `pod ns/${pod} is not on this node`);
        if (pod === "broken") throw new Error("a bug with secrets in its message");
        return `logs of ${pod} for ${context.user.username} via ${context.subresource}`;
      },
    });
    server.route({
      method: ["GET", "POST"],
      url: "/exec/:namespace/:pod/:container",
      access: { verb: "create" },
      declares: "ExtendWebSocketsToKubelet",
      handler: async () => "exec",
    });
    await server.start();
    base = `https://127.0.0.1:${server.port}`;
  });

  after(async () => {
    await server?.close();
    await certificates?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("refuses anonymous and unverifiable callers with 401", async () => {
    const anonymous = await httpsRequest(`${base}/healthz`);
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.body, "Unauthorized");
    assert.match(String(anonymous.headers["www-authenticate"]), /^Bearer/);
    assert.equal(
      (await httpsRequest(`${base}/healthz`, { client: stranger })).status,
      401,
      "a certificate from another CA",
    );
    assert.equal((await httpsRequest(`${base}/healthz`, { token: "bad-token" })).status, 401);
    assert.equal((await httpsRequest(`${base}/healthz`, { token: "bad-token" })).status, 401);
    assert.equal(
      tokenReviews.filter((t) => t === "bad-token").length,
      1,
      "a rejected token is remembered briefly",
    );
    assert.equal(reviews.length, 0, "nothing is authorized for unauthenticated callers");
  });

  it("refuses authenticated but unauthorized callers with 403, naming what was asked", async () => {
    const answer = await httpsRequest(`${base}/healthz`, { client: nobody });
    assert.equal(answer.status, 403);
    assert.equal(
      answer.body,
      "Forbidden (user=nobody, verb=get, resource=nodes, subresource(s)=[healthz,proxy])",
    );
    const logs = await httpsRequest(`${base}/containerLogs/ns/p1/c1`, { token: "good-token" });
    assert.equal(logs.status, 403, "the token's user lacks nodes/proxy");
  });

  it("serves authorized callers, by client certificate or bearer token", async () => {
    const cert = await httpsRequest(`${base}/healthz`, { client: admin });
    assert.equal(cert.status, 200);
    assert.equal(cert.body, "ok");
    const token = await httpsRequest(`${base}/healthz`, { token: "good-token" });
    assert.equal(token.status, 200, "nodes/healthz is enough for /healthz");
    const logs = await httpsRequest(`${base}/containerLogs/ns/p1/c1`, { client: admin });
    assert.equal(logs.status, 200);
    assert.equal(logs.body, "logs of p1 for kube-apiserver-kubelet-client via proxy");
    const attrs = reviews
      .filter((r) => r.spec.user === "kube-apiserver-kubelet-client")
      .map((r) => r.spec.resourceAttributes);
    assert.ok(attrs.every((a) => a?.resource === "nodes" && a.name === "n1"));
  });

  it("maps errors to HTTP in one place and hides internal details", async () => {
    const missing = await httpsRequest(`${base}/containerLogs/ns/missing/c1`, { client: admin });
    assert.equal(missing.status, 404);
    assert.equal(missing.body, "pod ns/missing is not on this node");
    const broken = await httpsRequest(`${base}/containerLogs/ns/broken/c1`, { client: admin });
    assert.equal(broken.status, 500);
    assert.equal(broken.body, "Internal Server Error");
    const unknown = await httpsRequest(`${base}/nothing/here`, { client: admin });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body, "404 page not found\n");
    assert.equal(
      (await httpsRequest(`${base}/nothing/here`)).status,
      401,
      "unknown paths are authenticated too",
    );
  });

  it("authorizes exec-like routes with verb create even on GET, and reports their features", async () => {
    const before = reviews.length;
    assert.equal((await httpsRequest(`${base}/exec/ns/p1/c1`, { client: admin })).status, 200);
    assert.equal(reviews[before]?.spec.resourceAttributes?.verb, "create");
    assert.equal(reviews[before]?.spec.resourceAttributes?.subresource, "proxy");
    assert.deepEqual(server.features(), ["ExtendWebSocketsToKubelet"]);
    assert.throws(
      () => server.route({ method: "GET", url: "/late", handler: () => "" }),
      /registered after the kubelet API started/,
    );
  });

  it("reports failing health checks", async () => {
    healthy = false;
    const failing = await httpsRequest(`${base}/healthz`, { client: admin });
    healthy = true;
    assert.equal(failing.status, 500);
    assert.equal(
      failing.body,
      "[+]ping ok\n[-]heartbeat failed: the node lease was last renewed 99 s ago\nhealthz check failed\n",
    );
    const one = await httpsRequest(`${base}/healthz/ping`, { client: admin });
    assert.equal(one.body, "ok");
    assert.equal((await httpsRequest(`${base}/healthz/nope`, { client: admin })).status, 404);
    const verbose = await httpsRequest(`${base}/healthz?verbose`, { client: admin });
    assert.equal(verbose.body, "[+]ping ok\n[+]heartbeat ok\nhealthz check passed\n");
  });

  it("swaps in a renewed certificate without a restart", async () => {
    const first = await httpsRequest(`${base}/healthz`, { client: admin, ca: ca.cert });
    assert.equal(first.status, 200, "the served certificate verifies against the CA");
    const renewed = await issue(ca, "n1", { server: { dns: ["n1"], ips: ["127.0.0.1"] } });
    await writeFile(join(dir, "tls.key"), renewed.key);
    await writeFile(join(dir, "tls.crt"), renewed.cert);
    const wanted = new X509Certificate(renewed.cert).serialNumber;
    await untilAsync(async () => {
      const answer = await httpsRequest(`${base}/healthz`, { client: admin });
      return new X509Certificate(answer.peerCert).serialNumber === wanted;
    }, "the renewed certificate to be served");
  });

  it("without a client CA, trusts no certificate that Node's default roots vouch for", async () => {
    // What NODE_EXTRA_CA_CERTS or a public CA would do: a CA among Node's default roots.
    const publicCA = await createTestCA("a-public-ca");
    const vouched = await issue(publicCA, "kube-apiserver-kubelet-client", {
      groups: ["system:masters"],
    });
    const defaults = getCACertificates("default");
    setDefaultCACertificates([...defaults, publicCA.cert]);
    try {
      for (const clientCA of [undefined, "", "# no certificates here\n"]) {
        const bare = new KubeletServer({
          config: { address: "127.0.0.1", port: 0, nodeName: "n1" },
          logger,
          clientCA,
          certificates,
          // Takes whatever the TLS layer verified: the server must verify no certificate.
          authenticator: {
            authenticate: async (request) =>
              certificateUser(request.socket) ??
              (request.headers.authorization === "Bearer good-token"
                ? { username: "robot", groups: [], via: "token" }
                : undefined),
          },
          authorizer: { authorize: async () => "proxy" },
        });
        bare.route({ method: "GET", url: "/whoami", handler: (_q, _r, context) => context.user });
        await bare.start();
        try {
          const url = `https://127.0.0.1:${bare.port}/whoami`;
          const answer = await httpsRequest(url, { client: vouched });
          assert.equal(answer.status, 401, `clientCA ${JSON.stringify(clientCA)}: ${answer.body}`);
          const token = await httpsRequest(url, { client: vouched, token: "good-token" });
          assert.equal(token.status, 200, "bearer tokens still work");
          assert.equal(JSON.parse(token.body).via, "token");
          // And after the serving certificate is renewed (a new secure context).
          const renewed = await issue(ca, "n1", { server: { dns: ["n1"], ips: ["127.0.0.1"] } });
          await writeFile(join(dir, "tls.key"), renewed.key);
          await writeFile(join(dir, "tls.crt"), renewed.cert);
          const wanted = new X509Certificate(renewed.cert).serialNumber;
          await untilAsync(async () => {
            const served = await httpsRequest(url, { token: "good-token" });
            return new X509Certificate(served.peerCert).serialNumber === wanted;
          }, "the renewed certificate to be served");
          assert.equal((await httpsRequest(url, { client: vouched })).status, 401, "renewed");
        } finally {
          await bare.close();
        }
      }
    } finally {
      setDefaultCACertificates(defaults);
    }
  });

  it("says so when its port is taken", async () => {
    const second = new KubeletServer({
      config: { address: "127.0.0.1", port: server.port, nodeName: "n1" },
      logger,
      clientCA: ca.cert,
      certificates,
      authenticator: { authenticate: async () => undefined },
      authorizer: { authorize: async () => undefined },
    });
    await assert.rejects(second.start(), (error: Error & { code?: string }) => {
      assert.equal(error.code, "WASMLET_ERR_SERVER_ADDRESS_IN_USE");
      assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${server.port}: the port is in use`));
      return true;
    });
  });
});
