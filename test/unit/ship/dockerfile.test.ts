// The Dockerfile cannot be built here (no Docker engine), so these tests read it and check what
// the image is made of: several stages on a Node 26 slim base, production dependencies only in
// the final stage, a non-root user, the bin as entry point, the kubelet port, a health check on
// wasmlet's /healthz, and COPY sources that exist and are not excluded by .dockerignore.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { OPTIONS } from "../../../src/config/config.ts";
import { hostDefaults } from "../../../src/config/host-defaults.ts";
import {
  execForm,
  type Instruction,
  parseDockerfile,
  readDockerfile,
  stages,
} from "./dockerfile-parse.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;
const all = readDockerfile(join(ROOT, "Dockerfile"));
const final = all.at(-1)!;
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  bin: Record<string, string>;
};

function defaultOf(key: string): unknown {
  const spec = OPTIONS.find((o) => o.key === key);
  assert.ok(spec, key);
  return spec.defaultValue({ host: hostDefaults, env: {} });
}

function only(stage: { instructions: Instruction[] }, keyword: string): Instruction {
  const found = stage.instructions.filter((i) => i.keyword === keyword);
  assert.equal(found.length, 1, `expected one ${keyword}, found ${found.length}`);
  return found[0]!;
}

describe("the reader itself", () => {
  it("joins continuations, drops comments and directives, reads flags and stages", () => {
    const parsed = parseDockerfile(
      "# syntax=docker/dockerfile:1\nFROM a:1 AS one\nRUN echo \\\n  two \\\n  three\n# note\nFROM b\nCOPY --from=one --chown=1:1 /x ./y\n",
    );
    assert.deepEqual(
      parsed.map((i) => [i.keyword, i.args, i.line]),
      [
        ["FROM", "a:1 AS one", 2],
        ["RUN", "echo two three", 3],
        ["FROM", "b", 7],
        ["COPY", "--from=one --chown=1:1 /x ./y", 8],
      ],
    );
    assert.deepEqual(parsed[3]?.flags, { from: "one", chown: "1:1" });
    assert.equal(parsed[3]?.rest, "/x ./y");
    const s = stages(parsed);
    assert.deepEqual(
      s.map((x) => [x.image, x.name, x.instructions.length]),
      [
        ["a:1", "one", 1],
        ["b", undefined, 1],
      ],
    );
    assert.throws(() => parseDockerfile("RUN a \\"), /continuation/);
    assert.throws(() => stages(parseDockerfile("RUN a\n")), /before FROM/);
  });
});

describe("Dockerfile", () => {
  it("is multi-stage, every stage on a Node 26 slim image, stage names unique", () => {
    assert.ok(all.length >= 2, `${all.length} stage(s)`);
    for (const stage of all) {
      assert.match(stage.image, /^node:26(\.\d+){0,2}-([a-z]+-)?slim(@sha256:[0-9a-f]{64})?$/);
    }
    const names = all.map((s) => s.name).filter(Boolean);
    assert.equal(new Set(names).size, names.length);
    assert.equal(final.name, undefined, "the final stage is the image: it needs no name");
  });

  it("runs as a non-root user from before its entry point to the end", () => {
    const users = final.instructions.filter((i) => i.keyword === "USER");
    assert.ok(users.length > 0, "no USER in the final stage");
    const last = users.at(-1)!;
    assert.doesNotMatch(last.rest, /^(root|0)(:|$)/);
    const entrypoint = only(final, "ENTRYPOINT");
    assert.ok(last.line < entrypoint.line, "USER must come before ENTRYPOINT");
    // uid 1000 is `node` in the official images; the manifests run as 1000.
    assert.match(last.rest, /^(node|1000)(:(node|1000))?$/);
  });

  it("ships production dependencies only, and no sources or build tools", () => {
    const env = final.instructions.filter((i) => i.keyword === "ENV").map((i) => i.rest);
    assert.ok(
      env.some((e) => /\bNODE_ENV=production\b/.test(e)),
      env.join("; "),
    );
    for (const run of final.instructions.filter((i) => i.keyword === "RUN")) {
      assert.doesNotMatch(run.rest, /\bnpm (ci|install|i)\b/, "install in the final stage");
    }
    const copies = final.instructions.filter((i) => i.keyword === "COPY");
    const modules = copies.filter((c) => /(^|\/)node_modules\b/.test(c.rest));
    assert.equal(modules.length, 1, "node_modules must come from exactly one stage");
    const from = all.find((s) => s.name === modules[0]?.flags.from);
    assert.ok(from, "node_modules must be copied from an earlier stage");
    const installs = from.instructions
      .filter((i) => i.keyword === "RUN")
      .map((i) => i.rest)
      .join(" && ");
    assert.match(installs, /\bnpm (ci|install)\b/);
    assert.match(installs, /\bnpm (ci|install|prune)\b[^&]*--omit=dev/, installs);
    for (const copy of copies.filter((c) => c.flags.from === undefined)) {
      for (const source of copy.rest.split(/\s+/).slice(0, -1)) {
        assert.doesNotMatch(
          source,
          /^(src|test|tsconfig.*\.json)\b/,
          `final stage copies ${source}`,
        );
      }
    }
  });

  it("holds what the bin needs: dist/, node_modules/, package.json (the version) and bin/", () => {
    const targets = final.instructions
      .filter((i) => i.keyword === "COPY")
      .flatMap((c) => {
        const parts = c.rest.split(/\s+/);
        const dest = parts.at(-1)!;
        return dest.endsWith("/")
          ? parts.slice(0, -1).map((s) => s.split("/").filter(Boolean).at(-1))
          : [dest.replace(/^\.\//, "")];
      });
    for (const needed of ["dist", "node_modules", "package.json", "bin"]) {
      assert.ok(targets.includes(needed), `${needed} is not copied: ${targets.join(", ")}`);
    }
    assert.equal(only(final, "WORKDIR").rest, "/app");
  });

  it("starts the package's bin with `run`, in exec form", () => {
    const entrypoint = execForm(only(final, "ENTRYPOINT").rest);
    assert.deepEqual(entrypoint, ["node", pkg.bin.wasmlet]);
    assert.ok(existsSync(join(ROOT, pkg.bin.wasmlet!)));
    assert.deepEqual(execForm(only(final, "CMD").rest), ["run"]);
  });

  it("exposes the kubelet API port, wasmlet's default --port", () => {
    const exposed = final.instructions
      .filter((i) => i.keyword === "EXPOSE")
      .flatMap((i) => i.rest.split(/\s+/));
    assert.ok(exposed.includes(String(defaultOf("port"))), exposed.join(" "));
    assert.equal(defaultOf("port"), 10250);
  });

  it("checks its health on wasmlet's /healthz at the default --healthz-port", () => {
    const check = only(final, "HEALTHCHECK");
    assert.match(check.rest, /^CMD \[/);
    const command = execForm(check.rest.slice("CMD ".length));
    assert.equal(command[0], "node");
    const script = command.at(-1)!;
    assert.match(script, /\/healthz/);
    assert.match(script, new RegExp(`\\|\\| ${defaultOf("healthzPort")}\\b`));
    assert.match(script, /WASMLET_HEALTHZ_PORT/);
    for (const flag of ["interval", "timeout", "start-period"]) {
      assert.match(check.flags[flag] ?? "", /^\d+s$/, `--${flag}`);
    }
  });

  it("copies from the build context only files that exist and .dockerignore lets through", () => {
    const ignored = readFileSync(join(ROOT, ".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#"));
    const names = new Set(all.map((s) => s.name));
    let checked = 0;
    for (const stage of all) {
      for (const copy of stage.instructions.filter((i) => ["COPY", "ADD"].includes(i.keyword))) {
        if (copy.flags.from !== undefined) {
          assert.ok(names.has(copy.flags.from), `COPY --from=${copy.flags.from}: no such stage`);
          continue;
        }
        for (const source of copy.rest.split(/\s+/).slice(0, -1)) {
          assert.ok(existsSync(join(ROOT, source)), `COPY source ${source} does not exist`);
          const top = source.replace(/^\.\//, "").split("/")[0]!;
          assert.ok(!ignored.includes(top), `COPY source ${source} is excluded by .dockerignore`);
          checked++;
        }
      }
    }
    assert.ok(checked >= 5, `${checked} sources checked`);
    for (const heavy of ["node_modules", "dist", ".git"]) {
      assert.ok(ignored.includes(heavy), `.dockerignore should exclude ${heavy}`);
    }
  });

  it("builds dist/ with what `npm run build` reads", () => {
    const build = all.find((s) =>
      s.instructions.some((i) => i.keyword === "RUN" && /\bnpm run build\b/.test(i.rest)),
    );
    assert.ok(build, "no stage runs npm run build");
    const copied = build.instructions
      .filter((i) => i.keyword === "COPY")
      .flatMap((c) => c.rest.split(/\s+/).slice(0, -1));
    for (const needed of [
      "package.json",
      "package-lock.json",
      "tsconfig.json",
      "tsconfig.build.json",
      "src",
    ]) {
      assert.ok(copied.includes(needed), `the build stage does not copy ${needed}`);
    }
    const final_ = all.at(-1)!;
    const dist = final_.instructions.find((i) => i.keyword === "COPY" && /\/dist\b/.test(i.rest));
    assert.equal(dist?.flags.from, build.name);
  });
});
