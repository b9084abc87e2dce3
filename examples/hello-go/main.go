// hello-go: the smallest useful wasmlet guest in Go. It greets, shows where it runs (the
// downward API puts the pod and node names in its environment) and exits.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Hello from WebAssembly! pod=%s node=%s\n", os.Getenv("POD_NAME"), os.Getenv("NODE_NAME"))
	for i, arg := range os.Args[1:] {
		fmt.Printf("arg %d: %s\n", i+1, arg)
	}
}
