// The API client over TLS with client certificates, against a local HTTPS server: requests share
// keep-alive connections, and a rotated client certificate is used from the next request on.
// Failed calls are reported to the client's failure listeners (wasmlet_kube_api_errors_total).
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { TLSSocket } from "node:tls";
import { generateClusterPki } from "../../../src/devcluster/pki.ts";
import { type ApiFailure, KubeClient } from "../../../src/kube/client.ts";
import { FakeApiServer } from "./fake-api-server.ts";

const dir = await mkdtemp(join(tmpdir(), "wasmlet-kube-client-"));
after(() => rm(dir, { recursive: true, force: true }));

test("requests reuse one TLS connection; a rotated client certificate gets a new one", async () => {
  const pki = await generateClusterPki(join(dir, "pki"));
  const server = createServer(
    {
      cert: await readFile(pki.apiserverCert),
      key: await readFile(pki.apiserverKey),
      ca: await readFile(pki.caCert),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (request, response) => {
      const peer = (request.socket as TLSSocket).getPeerX509Certificate();
      response.writeHead(200, { "content-type": "application/json" });
      response.end(
        JSON.stringify({
          apiVersion: "v1",
          kind: "Namespace",
          metadata: { name: "default", labels: { user: peer?.subject.split("CN=")[1] ?? "" } },
        }),
      );
    },
  );
  let connections = 0;
  server.on("secureConnection", () => connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  after(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as { port: number }).port;

  const clientCert = join(dir, "client.crt");
  const clientKey = join(dir, "client.key");
  await copyFile(pki.adminCert, clientCert);
  await copyFile(pki.adminKey, clientKey);
  const kubeconfig = join(dir, "kubeconfig");
  await writeFile(
    kubeconfig,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "c",
          cluster: { server: `https://127.0.0.1:${port}`, "certificate-authority": pki.caCert },
        },
      ],
      users: [{ name: "u", user: { "client-certificate": clientCert, "client-key": clientKey } }],
      contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
      "current-context": "c",
    }),
  );
  const client = KubeClient.create({ kubeconfig, apiRequestTimeoutMs: 5000 });
  const userOf = async () =>
    (await client.core.readNamespace({ name: "default" })).metadata?.labels?.user;
  const admin = new X509Certificate(await readFile(pki.adminCert)).subject.split("CN=")[1];

  // undici frees a connection a moment after the response is read, so the next request may open
  // a second one; without a shared pool every request would make its own.
  for (let i = 0; i < 10; i++) assert.equal(await userOf(), admin);
  assert.ok(connections <= 2, `${connections} TLS connections for 10 requests`);

  // Rotation writes the new pair over the files the kubeconfig names.
  await copyFile(pki.kubeletClientCert, clientCert);
  await copyFile(pki.kubeletClientKey, clientKey);
  const before = connections;
  const kubelet = new X509Certificate(await readFile(pki.kubeletClientCert)).subject.split(
    "CN=",
  )[1];
  assert.notEqual(kubelet, admin);
  for (let i = 0; i < 10; i++) assert.equal(await userOf(), kubelet);
  assert.ok(connections - before <= 2, `${connections - before} TLS connections for 10 requests`);
});

test("failed calls reach the failure listeners with their operation and status; expected answers do not", async () => {
  const api = new FakeApiServer();
  await api.start();
  after(() => api.stop());
  api.handler = (request, response) => {
    const status = request.path.endsWith("/broken")
      ? 500
      : request.path.endsWith("/taken")
        ? 409
        : 404;
    response.writeHead(status, { "content-type": "application/json" });
    response.end(
      JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", code: status }),
    );
  };
  const failures: ApiFailure[] = [];
  const client = new KubeClient(api.kubeConfig());
  client.onFailure((failure) => failures.push(failure));
  await assert.rejects(client.core.readNamespace({ name: "broken" }));
  await assert.rejects(client.coordination.readNamespacedLease({ namespace: "x", name: "broken" }));
  await assert.rejects(client.core.readNamespace({ name: "absent" }));
  await assert.rejects(client.core.createNamespace({ body: { metadata: { name: "taken" } } }));
  await api.stop();
  await assert.rejects(client.core.readNamespace({ name: "unreachable" }));
  assert.deepEqual(failures, [
    { operation: "readNamespace", code: "500" },
    { operation: "readNamespacedLease", code: "500" },
    { operation: "readNamespace", code: "network" },
  ]);
});
