module wasmlet.example/primes

go 1.24
