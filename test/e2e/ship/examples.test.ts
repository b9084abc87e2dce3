// Every example in examples/ works as its README line says: its build.sh builds the guest and
// pushes it (here to the test registry instead of localhost:5000), and its manifest, applied as
// written, runs on a wasmlet node and prints what the example promises. The only edits to the
// manifests are the registry and a RuntimeClass that pins the pods to this file's own node (other
// test files run wasmlet nodes at the same time).
import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  createNamespace,
  eventually,
  kubectl,
  kubectlOk,
  testCluster,
} from "../../support/cluster.ts";
import { Wasmlet, waitForReady } from "../../support/wasmlet.ts";
import { runtimeClassManifest } from "../pods/support.ts";
import { ROOT, run } from "./support.ts";

let namespace: Awaited<ReturnType<typeof createNamespace>>;
let node: Wasmlet;
let runtimeClass: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  namespace = await createNamespace("ship-examples");
  // Pods get loopback addresses of their own, as in `wasmlet dev`: replicas can share a port.
  node = await Wasmlet.start({
    nodeIP: "127.0.0.1",
    args: [
      "--allow-self-signed",
      "--no-tls-bootstrap",
      "--pod-network=pod-cidr",
      `--pod-cidr=127.${randomInt(100, 150)}.0.0/24`,
    ],
  });
  await waitForReady(node.nodeName);
  runtimeClass = `wasm-${namespace.name}`;
  await kubectlOk(["apply", "-f", "-"], {
    input: runtimeClassManifest(runtimeClass, node.nodeName),
  });
  env = { ...process.env, PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.PATH}` };
});

after(async () => {
  await kubectl(["delete", "namespace", namespace.name, "--wait=false"]);
  await kubectl(["delete", "runtimeclass", runtimeClass, "--ignore-not-found"]);
  await node?.cleanup();
});

/** Runs examples/NAME/build.sh against the test registry. */
async function build(name: string): Promise<void> {
  const result = await run(
    "bash",
    [join(ROOT, "examples", name, "build.sh"), testCluster().registry],
    {
      env,
      timeoutMs: 120_000,
    },
  );
  assert.equal(result.code, 0, `examples/${name}/build.sh: ${result.stdout}${result.stderr}`);
  assert.match(result.stdout, /pushed \S+\.wasm/);
}

/** Applies an example manifest as written, but for the registry and the RuntimeClass. */
async function apply(file: string): Promise<void> {
  const text = (await readFile(join(ROOT, file), "utf8"))
    .replaceAll("localhost:5000/", `${testCluster().registry}/`)
    .replaceAll("runtimeClassName: wasm\n", `runtimeClassName: ${runtimeClass}\n`);
  assert.ok(text.includes(runtimeClass), `${file} has no runtimeClassName: wasm`);
  await kubectlOk(["apply", "-n", namespace.name, "-f", "-"], { input: text });
}

async function phase(pod: string): Promise<string | undefined> {
  const result = await kubectl(["-n", namespace.name, "get", "pod", pod, "-o", "json"]);
  return result.code === 0 ? JSON.parse(result.stdout).status?.phase : undefined;
}

async function logsOf(target: string, expected: RegExp, timeoutMs = 30_000): Promise<string> {
  return eventually(
    async () => {
      const result = await kubectl(["-n", namespace.name, "logs", target]);
      return result.code === 0 && expected.test(result.stdout) && result.stdout;
    },
    `${target}'s logs to match ${expected}`,
    timeoutMs,
    250,
  );
}

describe("examples/", () => {
  it("hello-go: greets with its pod and node names and its args, then Succeeds", async () => {
    await build("hello-go");
    await apply("examples/hello-go/pod.yaml");
    await eventually(async () => (await phase("hello-go")) === "Succeeded", "hello-go to succeed");
    const logs = await logsOf("hello-go", /arg 2: wasmlet/);
    assert.match(
      logs,
      new RegExp(`^Hello from WebAssembly! pod=hello-go node=${node.nodeName}$`, "m"),
    );
    assert.match(logs, /^arg 1: from$/m);
  });

  it("manifests/examples/hello-pod.yaml runs the same image with the downward API", async () => {
    await apply("manifests/examples/hello-pod.yaml");
    await eventually(
      async () => (await phase("hello-wasm")) === "Succeeded",
      "hello-wasm to succeed",
    );
    const logs = await logsOf("hello-wasm", /Hello from WebAssembly!/);
    assert.match(
      logs,
      new RegExp(`^Hello from WebAssembly! pod=hello-wasm node=${node.nodeName}$`, "m"),
    );
  });

  it("hello-c: greets and lists its environment, then Succeeds", async () => {
    await build("hello-c");
    await apply("examples/hello-c/pod.yaml");
    await eventually(async () => (await phase("hello-c")) === "Succeeded", "hello-c to succeed");
    const logs = await logsOf("hello-c", /GREETING=hi there/);
    assert.match(logs, /^Hello from C compiled to WebAssembly!$/m);
  });

  it("file-reader: prints the files of its configMap volume", async () => {
    await build("file-reader");
    await apply("examples/file-reader/pod.yaml");
    const logs = await logsOf("file-reader", /greeting = Hello from a ConfigMap/);
    assert.match(logs, /^color = teal$/m);
    assert.equal(await phase("file-reader"), "Running");
  });

  it("ticker: a Deployment of three loggers, all Ready, ticking", async () => {
    await build("ticker");
    await apply("examples/ticker/deployment.yaml");
    await eventually(
      async () => {
        const deployment = JSON.parse(
          await kubectlOk(["-n", namespace.name, "get", "deployment", "ticker", "-o", "json"]),
        );
        return deployment.status?.readyReplicas === 3;
      },
      "3 ticker replicas to be ready",
      60_000,
      250,
    );
    const logs = await logsOf("deployment/ticker", /^tick 2 at \d{4}-\d\d-\d\dT/m);
    assert.match(logs, /^tick 1 at /m);
  });

  it("job: three pods count the primes below 5,000,000 and the Job completes", async () => {
    await build("job");
    await apply("examples/job/job.yaml");
    await eventually(
      async () => {
        const job = JSON.parse(
          await kubectlOk(["-n", namespace.name, "get", "job", "primes", "-o", "json"]),
        );
        return job.status?.succeeded === 3;
      },
      "the primes Job to complete",
      90_000,
      500,
    );
    const logs = await logsOf("job/primes", /primes below/);
    assert.match(logs, /^348513 primes below 5000000$/m);
  });

  it("web-server: two replicas serve port 8080, each at its own pod IP, Ready by their httpGet probe", async () => {
    await build("web-server");
    await apply("examples/web-server/web-server.yaml");
    const pods = await eventually(
      async () => {
        const list = JSON.parse(
          await kubectlOk([
            "-n",
            namespace.name,
            "get",
            "pods",
            "-l",
            "app=web-server",
            "-o",
            "json",
          ]),
        ).items as {
          metadata: { name: string };
          status?: { podIP?: string; conditions?: { type: string; status: string }[] };
        }[];
        const ready = list.filter((p) =>
          p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
        );
        return ready.length === 2 ? ready : undefined;
      },
      "2 web-server replicas to be Ready",
      60_000,
      250,
    );
    for (const pod of pods) {
      const response = await fetch(`http://${pod.status!.podIP}:8080/`);
      assert.equal(await response.text(), `Hello from ${pod.metadata.name}, a WebAssembly pod!\n`);
    }
  });
});
