#!/usr/bin/env bash
# Builds the primes job for WASI preview1 and pushes it as a CNCF wasm artifact.
# Usage: ./build.sh [REGISTRY]   (default localhost:5000, the registry `wasmlet dev` starts)
set -euo pipefail
cd "$(dirname "$0")"
registry=${1:-localhost:5000}
GOOS=wasip1 GOARCH=wasm go build -o primes.wasm .
../../node_modules/.bin/node ../../src/cli/main.ts push primes.wasm "$registry/examples/primes:v1"
