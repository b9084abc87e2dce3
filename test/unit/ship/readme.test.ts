// README.md stays true: the two commands sit near the top (the test command exactly `npm test`),
// its configuration reference is generated from the same option table as `wasmlet run --help`
// (rewrite it with `UPDATE_README=1 node --test test/unit/ship/readme.test.ts`), every relative
// link points at a file, every `wasmlet <command>` it shows exists, every example is listed, and
// every WASMLET_* variable it names is a real option.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { usage } from "../../../src/cli/main.ts";
import { OPTIONS } from "../../../src/config/config.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;
const README = join(ROOT, "README.md");
const BEGIN = "<!-- configuration reference: generated from `wasmlet run --help`; do not edit -->";
const END = "<!-- end of configuration reference -->";

function cell(text: string): string {
  return text.replaceAll("|", "\\|");
}

/** The options of `wasmlet run`, grouped as its --help groups them, as Markdown tables. */
export function renderConfiguration(): string {
  const out: string[] = [];
  let group = "";
  for (const spec of OPTIONS) {
    if (spec.group !== group) {
      group = spec.group;
      out.push(
        "",
        `**${group}**`,
        "",
        "| flag | environment | default | meaning |",
        "|---|---|---|---|",
      );
    }
    const flag = `\`--${spec.flag}${spec.placeholder ? ` ${spec.placeholder}` : ""}\``;
    out.push(
      `| ${flag} | \`${spec.env}\` | ${cell(spec.defaultText)} | ${cell(spec.description)} |`,
    );
  }
  return [BEGIN, ...out, "", END].join("\n");
}

let text = readFileSync(README, "utf8");
if (process.env.UPDATE_README) {
  const start = text.indexOf(BEGIN);
  const stop = text.indexOf(END);
  assert.ok(start >= 0 && stop > start, "README.md has no configuration reference markers");
  text = text.slice(0, start) + renderConfiguration() + text.slice(stop + END.length);
  writeFileSync(README, text);
}

describe("README.md", () => {
  it("shows the two commands near the top, the test command exactly `npm test`", () => {
    const top = text.split("\n").slice(0, 40).join("\n");
    assert.match(top, /^## Two commands$/m);
    assert.match(top, /^```sh\nnpm ci && npm run wasmlet -- dev\n```$/m);
    assert.match(top, /^```sh\nnpm test\n```$/m);
  });

  it("has the configuration reference of `wasmlet run --help` (UPDATE_README=1 regenerates it)", () => {
    const start = text.indexOf(BEGIN);
    const stop = text.indexOf(END);
    assert.ok(start >= 0 && stop > start, "the configuration reference markers are missing");
    assert.equal(
      text.slice(start, stop + END.length),
      renderConfiguration(),
      "the configuration reference is out of date: run with UPDATE_README=1",
    );
  });

  it("names only real WASMLET_* variables", () => {
    const known = new Set([
      ...OPTIONS.map((o) => o.env),
      "WASMLET_CONFIG",
      "WASMLET_DEBUG",
      "WASMLET_DATA_DIR",
      "WASMLET_KUBE_BIN_DIR",
      "WASMLET_KEEP_E2E",
    ]);
    const named = new Set(text.match(/\bWASMLET_[A-Z_]+[A-Z]\b/g) ?? []);
    for (const name of named) {
      if (name.startsWith("WASMLET_ERR_")) continue;
      assert.ok(known.has(name), `${name} is not a wasmlet variable`);
    }
  });

  it("links only to files that exist", () => {
    const links = [...text.matchAll(/\]\((?!https?:|#)([^)#\s]+)(#[^)]*)?\)/g)].map((m) => m[1]!);
    assert.ok(links.length > 5, links.join(", "));
    for (const link of links) assert.ok(existsSync(join(ROOT, link)), `broken link: ${link}`);
  });

  it("shows only wasmlet commands that exist", () => {
    const commands = new Set(
      [...usage().matchAll(/^ {2}(\w+) {2,}/gm)].map((m) => m[1]!).concat(["help"]),
    );
    // Lines of code blocks and inline code spans that run wasmlet.
    const code = [
      ...[...text.matchAll(/^```[a-z]*\n([\s\S]*?)^```$/gm)].flatMap((m) => m[1]!.split("\n")),
      ...[...text.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!),
    ];
    const shown = code
      .map((line) => /^(?:\$ )?(?:wasmlet|npm run wasmlet --) ([a-z]+)\b/.exec(line.trim())?.[1])
      .filter((c): c is string => c !== undefined);
    assert.ok(shown.length > 5);
    for (const command of shown) assert.ok(commands.has(command), `wasmlet ${command}`);
  });

  it("lists every example with a line of its own", () => {
    const examples = readdirSync(join(ROOT, "examples"), { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
    for (const name of examples) {
      assert.match(text, new RegExp(`^- \\[\`${name}\`\\]\\(examples/${name}/\\)`, "m"));
    }
  });
});
