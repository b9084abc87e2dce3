module wasmlet.example/file-reader

go 1.24
