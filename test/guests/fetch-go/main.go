// A Go (GOOS=wasip1) command, `fetch-go <url>`: GETs the URL over the outbound socket ABI
// (sock_getaddrinfo, sock_open, sock_connect; docs/socket-abi.md) and prints the status line
// ("HTTP/1.1 200 OK") and then the body to stdout. It exits 0 on a 2xx status and 1 otherwise,
// an error printed to stderr. $FETCH_TIMEOUT_MS bounds the whole request (default 30000).
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"wasmlet.test/wasinet"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: fetch-go <url>")
		os.Exit(2)
	}
	timeout := 30 * time.Second
	if ms, err := strconv.Atoi(os.Getenv("FETCH_TIMEOUT_MS")); err == nil && ms > 0 {
		timeout = time.Duration(ms) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{DialContext: wasinet.Dial}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, os.Args[1], nil)
	if err != nil {
		fail(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	fmt.Printf("%s %s\n", resp.Proto, resp.Status)
	if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
		fail(err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(os.Stderr, "fetch-go: %s\n", resp.Status)
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fetch-go:", err)
	os.Exit(1)
}
