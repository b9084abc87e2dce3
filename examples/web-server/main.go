// A web server for wasmlet: net/http on the listening socket wasmlet opens for the pod's
// containerPort. WASI preview1 has no way to open a listener, so wasmlet opens one per
// containerPort and hands it over as a descriptor; LISTEN_FDS_START says which one.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
)

func main() {
	fd, err := strconv.Atoi(os.Getenv("LISTEN_FDS_START"))
	if err != nil || os.Getenv("LISTEN_FDS") == "" {
		fmt.Fprintln(os.Stderr, "no listening socket: declare a containerPort in the pod spec")
		os.Exit(1)
	}
	// Non-blocking first, so Go's network poller serves many connections at once.
	if err := syscall.SetNonblock(fd, true); err != nil {
		fmt.Fprintln(os.Stderr, "set non-blocking:", err)
		os.Exit(1)
	}
	listener, err := net.FileListener(os.NewFile(uintptr(fd), "http"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "listener:", err)
		os.Exit(1)
	}
	name := os.Getenv("HOSTNAME")
	http.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Hello from %s, a WebAssembly pod!\n", name)
	})
	http.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	fmt.Printf("serving http on %s\n", os.Getenv("LISTEN_FDNAMES"))
	if err := http.Serve(listener, nil); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}
