// docs/errors.md lists every WASMLET_ERR_* code that a module registers in its errors.ts, with
// its description and hint. Run with UPDATE_ERRORS_DOC=1 to rewrite the file after adding codes.
import assert from "node:assert/strict";
import { glob, readFile, writeFile } from "node:fs/promises";
import { test } from "node:test";
import { registeredErrors } from "../../src/errors.ts";

const root = new URL("../../", import.meta.url);

async function render(): Promise<string> {
  for await (const file of glob("src/**/errors.ts", { cwd: root.pathname })) {
    await import(new URL(file, root).href);
  }
  const rows = [...registeredErrors()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([code, d]) => `| \`${code}\` | ${d.description} | ${d.hint ?? ""} |`);
  return [
    "# wasmlet error codes",
    "",
    "Every error wasmlet reports carries one of these stable codes (match on the code, not the",
    "message). Codes are never reused. This file is checked by `test/unit/errors-doc.test.ts`;",
    "regenerate it with `UPDATE_ERRORS_DOC=1 node --test test/unit/errors-doc.test.ts`.",
    "",
    "| code | meaning | hint |",
    "|---|---|---|",
    ...rows,
    "",
  ].join("\n");
}

test("docs/errors.md lists every registered error code", async () => {
  const expected = await render();
  const docPath = new URL("docs/errors.md", root);
  if (process.env.UPDATE_ERRORS_DOC) await writeFile(docPath, expected);
  const actual = await readFile(docPath, "utf8").catch(() => "");
  assert.equal(actual, expected, "docs/errors.md is out of date: run with UPDATE_ERRORS_DOC=1");
});
