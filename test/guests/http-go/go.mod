module wasmlet.test/http-go

go 1.24

require wasmlet.test/wasinet v0.0.0

replace wasmlet.test/wasinet => ../wasinet
