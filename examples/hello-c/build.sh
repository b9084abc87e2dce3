#!/usr/bin/env bash
# Builds hello-c with clang + wasi-libc (Debian: clang lld wasi-libc libclang-rt-14-dev-wasm32)
# and pushes it. Usage: ./build.sh [REGISTRY]   (default localhost:5000)
set -euo pipefail
cd "$(dirname "$0")"
registry=${1:-localhost:5000}
clang --target=wasm32-wasi -O2 -o hello-c.wasm hello.c
../../node_modules/.bin/node ../../src/cli/main.ts push hello-c.wasm "$registry/examples/hello-c:v1"
