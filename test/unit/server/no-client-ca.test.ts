// A node without --client-ca-file and without a CA in its kubeconfig accepts bearer tokens only,
// even when the process trusts extra CAs (NODE_EXTRA_CA_CERTS, read only at startup: hence a
// child process, no-client-ca-server.ts) that would verify a client certificate.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { createTestCA, httpsRequest, type IssuedCert, issue } from "./test-pki.ts";

describe("kubelet API without a client CA", () => {
  let dir: string;
  let child: ChildProcess | undefined;
  let vouched: IssuedCert;
  let started: { port: number; extraCAs: number };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "wasmlet-no-client-ca-"));
    const extraCA = await createTestCA("an-extra-ca");
    vouched = await issue(extraCA, "kube-apiserver-kubelet-client", {
      groups: ["system:masters"],
    });
    const serving = await issue(await createTestCA("serving-ca"), "n1", {
      server: { dns: ["n1"], ips: ["127.0.0.1"] },
    });
    await writeFile(join(dir, "extra-ca.crt"), extraCA.cert);
    await writeFile(join(dir, "tls.crt"), serving.cert);
    await writeFile(join(dir, "tls.key"), serving.key);
    const fixture = new URL("./no-client-ca-server.ts", import.meta.url).pathname;
    child = spawn(process.execPath, [fixture, dir], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, "extra-ca.crt") },
      stdio: ["pipe", "pipe", "inherit"],
    });
    const exited = once(child, "exit").then(([code]) => {
      throw new Error(`the server exited (${code}) before it listened`);
    });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const [line] = (await Promise.race([once(lines, "line"), exited])) as [string];
    started = JSON.parse(line);
  });

  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exit = once(child, "exit");
      child.stdin?.end();
      const timer = setTimeout(() => child?.kill(), 5000);
      await exit;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  });

  it("refuses a client certificate that NODE_EXTRA_CA_CERTS vouches for; tokens work", async () => {
    assert.equal(started.extraCAs, 1, "the server process trusts the extra CA");
    const url = `https://127.0.0.1:${started.port}/whoami`;
    const withCert = await httpsRequest(url, { client: vouched });
    assert.equal(withCert.status, 401, `not authenticated by its certificate: ${withCert.body}`);
    const withToken = await httpsRequest(url, { client: vouched, token: "good-token" });
    assert.equal(withToken.status, 200);
    assert.deepEqual(JSON.parse(withToken.body), {
      username: "robot",
      groups: ["robots"],
      via: "token",
    });
  });
});
