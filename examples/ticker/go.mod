module wasmlet.example/ticker

go 1.24
