module wasmlet.example/hello-go

go 1.24
