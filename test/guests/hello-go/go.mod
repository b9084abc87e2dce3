module wasmlet.test/hello-go

go 1.24
