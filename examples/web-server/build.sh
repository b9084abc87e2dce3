#!/usr/bin/env bash
# Builds web-server for WASI preview1 and pushes it as a CNCF wasm artifact.
# Usage: ./build.sh [REGISTRY]   (default localhost:5000, the registry `wasmlet dev` starts)
set -euo pipefail
cd "$(dirname "$0")"
registry=${1:-localhost:5000}
GOOS=wasip1 GOARCH=wasm go build -o web-server.wasm .
../../node_modules/.bin/node ../../src/cli/main.ts push web-server.wasm "$registry/examples/web-server:v1"
