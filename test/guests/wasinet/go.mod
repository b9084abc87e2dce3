module wasmlet.test/wasinet

go 1.24
