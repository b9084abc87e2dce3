// The image's HEALTHCHECK command, taken from the Dockerfile and run as Docker would run it inside
// the container, answers for a real wasmlet: healthy while it runs, unhealthy when nothing answers.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { freePort } from "../../../src/devcluster/ports.ts";
import { Wasmlet, waitForReady } from "../../support/wasmlet.ts";
import { execForm, readDockerfile } from "../../unit/ship/dockerfile-parse.ts";
import { NODE, ROOT, run } from "./support.ts";

let node: Wasmlet;
let command: string[];

before(async () => {
  const check = readDockerfile(join(ROOT, "Dockerfile"))
    .at(-1)
    ?.instructions.find((i) => i.keyword === "HEALTHCHECK");
  assert.ok(check, "no HEALTHCHECK in the final stage");
  command = execForm(check.rest.replace(/^CMD\s+/, ""));
  assert.equal(command[0], "node");
  node = await Wasmlet.start({ args: ["--allow-self-signed", "--no-tls-bootstrap"] });
  await waitForReady(node.nodeName);
});

after(async () => {
  await node?.cleanup();
});

/** Runs the HEALTHCHECK command with the image's `node` (Node 26) and the given environment. */
function healthcheck(env: NodeJS.ProcessEnv) {
  return run(NODE, command.slice(1), {
    env: { PATH: process.env.PATH, ...env },
    timeoutMs: 10_000,
  });
}

describe("the image's HEALTHCHECK", () => {
  it("passes against a running wasmlet's /healthz", async () => {
    const result = await healthcheck({ WASMLET_HEALTHZ_PORT: String(node.healthzPort) });
    assert.equal(result.code, 0, result.stderr);
  });

  it("fails when nothing answers on the port", async () => {
    const result = await healthcheck({ WASMLET_HEALTHZ_PORT: String(await freePort()) });
    assert.equal(result.code, 1, result.stderr);
  });

  it("fails once wasmlet has stopped", async () => {
    node.kill("SIGTERM");
    await node.exited;
    const result = await healthcheck({ WASMLET_HEALTHZ_PORT: String(node.healthzPort) });
    assert.equal(result.code, 1, result.stderr);
  });
});
