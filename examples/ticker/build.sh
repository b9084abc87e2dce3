#!/usr/bin/env bash
# Builds the ticker for WASI preview1 and pushes it as a CNCF wasm artifact.
# Usage: ./build.sh [REGISTRY]   (default localhost:5000, the registry `wasmlet dev` starts)
set -euo pipefail
cd "$(dirname "$0")"
registry=${1:-localhost:5000}
GOOS=wasip1 GOARCH=wasm go build -o ticker.wasm .
../../node_modules/.bin/node ../../src/cli/main.ts push ticker.wasm "$registry/examples/ticker:v1"
