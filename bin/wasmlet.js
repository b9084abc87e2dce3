#!/usr/bin/env node
// The installed entry point runs the compiled CLI from dist/ (Node does not strip types under
// node_modules). In a checkout, `npm run wasmlet -- …` runs src/ directly.
import { main } from "../dist/cli/main.js";

process.exitCode = await main(process.argv.slice(2));
