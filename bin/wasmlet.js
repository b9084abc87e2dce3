#!/usr/bin/env node
// The installed entry point runs the compiled CLI from dist/ (Node does not strip types under
// node_modules). In a checkout, `npm run wasmlet -- …` runs src/ directly.
//
// wasmlet needs Node 26, the Node it is built and tested on (WebAssembly JSPI without flags,
// process.threadCpuUsage, @kubernetes/client-node 2.x): say so plainly instead of failing
// somewhere deep inside on an older Node.
const major = Number(process.versions.node.split(".")[0]);
if (!(major >= 26)) {
  console.error(
    `wasmlet needs Node.js 26 or later; this is Node.js ${process.versions.node} (${process.execPath}).\n` +
      "Install Node 26 from your usual source, or from a checkout run `npm ci && npm run wasmlet -- …`, which brings it.",
  );
  process.exit(1);
}
const { main } = await import("../dist/cli/main.js");
process.exitCode = await main(process.argv.slice(2));
