// `npm pack` (run in a copy of the checkout) makes the package users install: the tarball holds the compiled CLI and the runtime's
// worker (dist/), the bin, the manifests and the README, and nothing of src/ or test/. Installed
// into an empty directory from that tarball, the `wasmlet` bin runs, and the installed runtime runs
// a WebAssembly guest in a worker thread (the worker file must load from dist/, not from src/).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ROOT, run } from "./support.ts";

const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as {
  name: string;
  version: string;
  files: string[];
};

let dir: string;
let env: NodeJS.ProcessEnv;
let packed: { filename: string; files: Array<{ path: string }> };
let prefix: string;
let bin: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wasmlet-ship-pack-"));
  // Node 26 first on PATH, so npm, its scripts (prepack builds dist/) and the bin run on it.
  env = { ...process.env, PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.PATH}` };
  // Pack a copy of the checkout (what package.json's `files` ships, and what the build reads), so
  // that prepack's rebuild of dist/ never races a developer's own build or another test run.
  const checkout = join(dir, "checkout");
  const entries = new Set([
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "tsconfig.build.json",
    "src",
    ...pkg.files.map((f) => f.replace(/\/$/, "")),
  ]);
  for (const entry of entries) {
    if (entry === "dist") continue;
    await cp(join(ROOT, entry), join(checkout, entry), { recursive: true });
  }
  await symlink(join(ROOT, "node_modules"), join(checkout, "node_modules"));
  const result = await run("npm", ["pack", "--json", "--pack-destination", dir], {
    env,
    cwd: checkout,
    timeoutMs: 120_000,
  });
  assert.equal(result.code, 0, result.stderr);
  // npm prints the prepack script's output before the JSON.
  packed = JSON.parse(result.stdout.slice(result.stdout.indexOf("\n[") + 1))[0];
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the npm package", () => {
  it("holds dist/ (CLI and runtime worker), the bin, manifests and README, not src/ or tests", () => {
    assert.equal(packed.filename, `${pkg.name}-${pkg.version}.tgz`);
    const files = new Set(packed.files.map((f) => f.path));
    for (const needed of [
      "package.json",
      "README.md",
      "LICENSE",
      "bin/wasmlet.js",
      "dist/cli/main.js",
      "dist/cli/dev.js",
      "dist/cli/run.js",
      "dist/runtime/worker.js",
      "dist/runtime/worker-entry.js",
      "manifests/kustomization.yaml",
      "manifests/rbac.yaml",
      "manifests/runtimeclass.yaml",
    ]) {
      assert.ok(files.has(needed), `${needed} is missing from the tarball`);
    }
    const stray = [...files].filter(
      (f) => f.startsWith("src/") || f.startsWith("test/") || f.endsWith(".ts") || f === ".ci/run",
    );
    assert.deepEqual(stray, []);
    // Every compiled module comes from a source file that exists today (no stale build output).
    for (const file of files) {
      if (!file.startsWith("dist/") || !file.endsWith(".js")) continue;
      const source = join(ROOT, "src", `${file.slice("dist/".length, -".js".length)}.ts`);
      assert.ok(existsSync(source), `${file} is stale: ${source} does not exist`);
      assert.ok(files.has(`${file}.map`), `${file} has no source map in the tarball`);
    }
  });

  it("installs from the tarball into an empty directory; its bin prints help and version", async () => {
    prefix = join(dir, "install");
    await mkdir(prefix);
    const installed = await run(
      "npm",
      [
        "install",
        "--prefix",
        prefix,
        "--no-audit",
        "--no-fund",
        "--prefer-offline",
        join(dir, packed.filename),
      ],
      { env, cwd: prefix, timeoutMs: 120_000 },
    );
    assert.equal(installed.code, 0, installed.stderr);
    bin = join(prefix, "node_modules/.bin/wasmlet");

    const help = await run(bin, ["--help"], { env, cwd: prefix });
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^wasmlet — a Kubernetes node that runs WebAssembly/);
    for (const command of ["dev", "run", "push", "pull", "inspect", "version"]) {
      assert.match(help.stdout, new RegExp(`^  ${command} `, "m"));
    }
    const version = await run(bin, ["version"], { env, cwd: prefix });
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, new RegExp(`^wasmlet ${pkg.version} \\(node 26\\.`));
    // A subcommand loaded on demand from dist/ (with its dependencies from the install).
    const runHelp = await run(bin, ["run", "--help"], { env, cwd: prefix });
    assert.equal(runHelp.code, 0, runHelp.stderr);
    assert.match(runHelp.stdout, /--kubeconfig PATH/);
    const unknown = await run(bin, ["frobnicate"], { env, cwd: prefix });
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
  });

  it("the installed runtime runs a wasm guest in a worker thread loaded from dist/", async () => {
    assert.ok(prefix, "needs the install of the previous test");
    const script = join(prefix, "run-guest.mjs");
    await writeFile(
      script,
      `import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { Runtime } from "wasmlet/dist/runtime/index.js";
import { demoModule } from "wasmlet/dist/devcluster/demo-module.js";
import { workerEntry } from "wasmlet/dist/runtime/worker-entry.js";
const runtime = new Runtime({ workers: 1 });
await runtime.start();
const logPath = process.argv[2];
const container = runtime.run({ id: "demo", module: demoModule("hello from the package", 50), args: ["demo"], env: {}, mounts: [], logPath });
await container.started;
let log = "";
for (let i = 0; i < 100 && !log.includes("hello from the package"); i++) {
  await sleep(50);
  log = await readFile(logPath, "utf8").catch(() => "");
}
const status = await container.stop(1000);
await runtime.close();
console.log(JSON.stringify({ worker: workerEntry().href, log, exitCode: status.exitCode }));
`,
    );
    const result = await run(
      join(ROOT, "node_modules/.bin/node"),
      [script, join(prefix, "demo.log")],
      {
        env,
        cwd: prefix,
        timeoutMs: 30_000,
      },
    );
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as { worker: string; log: string; exitCode: number };
    assert.equal(
      report.worker,
      `file://${join(prefix, "node_modules/wasmlet/dist/runtime/worker.js")}`,
    );
    assert.match(report.log, /stdout F hello from the package/);
    assert.equal(report.exitCode, 143);
  });

  it("on a Node older than 26 the bin says what it needs instead of failing inside", async () => {
    assert.ok(bin, "needs the install of the previous test");
    const node = join(ROOT, "node_modules/.bin/node");
    const pretend =
      'data:text/javascript,Object.defineProperty(process.versions,"node",{value:"24.21.0"})';
    const old = await run(node, ["--import", pretend, bin, "--help"], { env, cwd: prefix });
    assert.equal(old.code, 1);
    assert.match(old.stderr, /^wasmlet needs Node\.js 26 or later; this is Node\.js 24\.21\.0/);
    assert.equal(old.stdout, "");
  });
});
