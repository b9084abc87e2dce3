// `kubectl debug <pod> --image=<toolbox> --target=<container>`: the API server adds an ephemeral
// container through the ephemeralcontainers subresource; wasmlet runs it once, with the target's
// environment and volume mounts, reports it in ephemeralContainerStatuses, lets kubectl attach to
// it (`-i`) and leaves the pod's other containers alone.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, test } from "node:test";
import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import { eventually, kubectlOk, testCluster } from "../../support/cluster.ts";
import {
  applyJson,
  getPod,
  type PodTestBed,
  podManifest,
  startPodTestBed,
  waitForLogs,
  waitForPod,
} from "./support.ts";

let bed: PodTestBed;
before(async () => {
  bed = await startPodTestBed("debug");
});
after(async () => {
  await bed?.cleanup();
});

const ephemeral = (pod: V1Pod, name: string): V1ContainerStatus | undefined =>
  pod.status?.ephemeralContainerStatuses?.find((s) => s.name === name);

const appStatus = (pod: V1Pod) => pod.status?.containerStatuses?.find((s) => s.name === "main");

test("kubectl debug --target runs a toolbox with the target's env and mounts, attachable, reported, the app untouched", async () => {
  const toolbox = await bed.image("toolbox");
  await applyJson(bed.namespace, {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "settings" },
    data: { "mode.txt": "debugging\n" },
  });
  await applyJson(
    bed.namespace,
    podManifest(
      bed,
      "target",
      {
        image: toolbox,
        env: [{ name: "GREETING", value: "hello from the target" }],
        volumeMounts: [
          { name: "settings", mountPath: "/etc/settings" },
          { name: "scratch", mountPath: "/scratch" },
        ],
      },
      {
        restartPolicy: "Always",
        volumes: [
          { name: "settings", configMap: { name: "settings" } },
          { name: "scratch", emptyDir: {} },
        ],
      },
    ),
  );
  const running = await waitForPod(
    bed.namespace,
    "target",
    "running",
    (pod) => appStatus(pod)?.state?.running !== undefined,
    60_000,
  );
  const appStartedAt = appStatus(running)?.state?.running?.startedAt;
  const appID = appStatus(running)?.containerID;

  // Non-interactive: the debugger prints the target's variable and exits.
  await kubectlOk([
    "-n",
    bed.namespace,
    "debug",
    "target",
    `--image=${toolbox}`,
    "--target=main",
    "--container=printer",
    "--",
    "toolbox",
    "env",
    "GREETING",
  ]);
  const printed = await waitForLogs(bed.namespace, "target", /hello from the target/, [
    "-c",
    "printer",
  ]);
  assert.equal(printed.trim(), "hello from the target");
  const done = await waitForPod(
    bed.namespace,
    "target",
    "reports the printer terminated",
    (pod) => ephemeral(pod, "printer")?.state?.terminated !== undefined,
  );
  const printer = ephemeral(done, "printer")!;
  assert.equal(printer.state?.terminated?.exitCode, 0);
  assert.equal(printer.state?.terminated?.reason, "Completed");
  assert.equal(printer.ready, false);
  assert.equal(printer.restartCount, 0);
  assert.match(printer.image, /e2e\/toolbox:v1$/);
  assert.match(printer.imageID, /sha256:/);
  assert.match(printer.containerID ?? "", /^wasmlet:\/\//);

  // The target's mounts: the ConfigMap file is there for a debugger too.
  await kubectlOk([
    "-n",
    bed.namespace,
    "debug",
    "target",
    `--image=${toolbox}`,
    "--target=main",
    "--container=checker",
    "--",
    "toolbox",
    "exists",
    "/etc/settings/mode.txt",
  ]);
  const checked = await waitForPod(
    bed.namespace,
    "target",
    "reports the checker terminated",
    (pod) => ephemeral(pod, "checker")?.state?.terminated !== undefined,
  );
  assert.equal(ephemeral(checked, "checker")?.state?.terminated?.exitCode, 0);

  // Interactive: kubectl waits for it to run, attaches, and stdin reaches it.
  const child = spawn(
    process.env.KUBECTL ?? "kubectl",
    [
      "--kubeconfig",
      testCluster().kubeconfig,
      "-n",
      bed.namespace,
      "debug",
      "-i",
      "target",
      `--image=${toolbox}`,
      "--target=main",
      "--container=shell",
    ],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  let output = "";
  let errors = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    errors += chunk.toString();
  });
  try {
    child.stdin.write("ping one\n");
    const deadline = Date.now() + 60_000;
    while (!output.includes("got: ping") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      if (!output.includes("got: ping")) child.stdin.write("ping again\n");
    }
    assert.match(output, /got: ping/, `kubectl debug -i printed ${output}; stderr: ${errors}`);
  } finally {
    child.kill("SIGINT");
  }
  const attached = await waitForPod(
    bed.namespace,
    "target",
    "reports the shell running",
    (pod) => ephemeral(pod, "shell")?.state?.running !== undefined,
  );
  const shell = ephemeral(attached, "shell")!;
  assert.equal(shell.ready, false);
  assert.equal(shell.restartCount, 0);

  // The pod's own container was not restarted, and the finished debuggers were not either.
  const after = (await getPod(bed.namespace, "target"))!;
  assert.equal(appStatus(after)?.restartCount, 0);
  assert.equal(appStatus(after)?.containerID, appID);
  assert.equal(appStatus(after)?.state?.running?.startedAt, appStartedAt);
  assert.equal(ephemeral(after, "printer")?.state?.terminated?.exitCode, 0);
  assert.equal(ephemeral(after, "printer")?.restartCount, 0);
  assert.equal(after.status?.phase, "Running");

  const events = await kubectlOk([
    "-n",
    bed.namespace,
    "get",
    "events",
    "--field-selector",
    "involvedObject.name=target",
    "-o",
    "jsonpath={range .items[*]}{.reason} {.involvedObject.fieldPath}{'\\n'}{end}",
  ]);
  for (const reason of ["Pulled", "Created", "Started"])
    assert.match(events, new RegExp(`^${reason} spec.ephemeralContainers\\{printer\\}$`, "m"));

  // It stops with the pod: the still-attachable shell is reported terminated before the pod goes.
  const watch = spawn(
    process.env.KUBECTL ?? "kubectl",
    [
      "--kubeconfig",
      testCluster().kubeconfig,
      "get",
      "--raw",
      `/api/v1/namespaces/${bed.namespace}/pods?watch=1&fieldSelector=metadata.name%3Dtarget`,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let watched = "";
  watch.stdout.on("data", (chunk: Buffer) => {
    watched += chunk.toString();
  });
  /** The shell's states, in the order the watch saw them. */
  const shellStates = () =>
    watched
      .split("\n")
      .slice(0, -1) // complete events only
      .filter((line) => line.trim() !== "")
      .map((line) => {
        const pod = (JSON.parse(line) as { object: V1Pod }).object;
        return Object.keys(ephemeral(pod, "shell")?.state ?? {})[0];
      });
  try {
    await eventually(async () => watched.includes("\n"), "the watch to start", 20_000, 100);
    await kubectlOk(["-n", bed.namespace, "delete", "pod", "target", "--wait=true"]);
    await eventually(
      async () => shellStates().includes("terminated"),
      "the shell reported terminated",
      10_000,
      100,
    );
  } finally {
    watch.kill("SIGINT");
  }
  assert.equal(shellStates()[0], "running");
  assert.equal(shellStates().at(-1), "terminated");
});
