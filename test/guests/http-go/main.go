// A Go (GOOS=wasip1) net/http server on the listening sockets that the runtime pre-opens: it
// finds them from LISTEN_FDS (how many), LISTEN_FDS_START (the first descriptor; 3 when unset,
// wasmlet sets it because the directory pre-opens come first) and LISTEN_FDNAMES (their names,
// colon-separated), and serves on every one of them:
//
//	GET  /             "hello from <$POD_NAME, else $HOSTNAME, else os.Hostname()>\n"
//	GET  /healthz      200 "ok\n"; 500 "unhealthy\n" after POST /fail or while /tmp/unhealthy exists
//	POST /fail         makes /healthz answer 500
//	POST /recover      makes /healthz answer 200 again
//	GET  /echo?n=N     N bytes ("abc...z" repeated)
//	POST /echo         the request body
//	GET  /fetch?url=U  the status and body of GET U, fetched over the outbound socket ABI
//	POST /grpc.health.v1.Health/Check  gRPC health (HTTP/2 without TLS): SERVING, or
//	                   NOT_SERVING while /healthz fails
//
// It prints "listening on <name>[,<name>...]" once it serves.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"wasmlet.test/wasinet"
)

var unhealthy atomic.Bool

func main() {
	listeners, names, err := listeners()
	if err != nil {
		fmt.Fprintln(os.Stderr, "http-go:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", hello)
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, r *http.Request) {
		unhealthy.Store(true)
		io.WriteString(w, "failing\n")
	})
	mux.HandleFunc("POST /recover", func(w http.ResponseWriter, r *http.Request) {
		unhealthy.Store(false)
		io.WriteString(w, "recovered\n")
	})
	mux.HandleFunc("GET /echo", echoN)
	mux.HandleFunc("POST /echo", echoBody)
	mux.HandleFunc("GET /fetch", fetch)
	mux.HandleFunc("POST /grpc.health.v1.Health/Check", grpcHealth)

	// HTTP/1.1 and HTTP/2 without TLS (h2c), which gRPC health probes speak.
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	server := &http.Server{Handler: mux, Protocols: protocols}
	errs := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { errs <- server.Serve(l) }()
	}
	fmt.Printf("listening on %s\n", strings.Join(names, ","))
	err = <-errs
	fmt.Fprintln(os.Stderr, "http-go: serve:", err)
	os.Exit(1)
}

// listeners turns the pre-opened sockets into net.Listeners.
func listeners() ([]net.Listener, []string, error) {
	count := 1
	if s, ok := os.LookupEnv("LISTEN_FDS"); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, nil, fmt.Errorf("LISTEN_FDS=%q: no listening socket", s)
		}
		count = n
	}
	start := 3
	if s, ok := os.LookupEnv("LISTEN_FDS_START"); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, nil, fmt.Errorf("LISTEN_FDS_START=%q: not a descriptor", s)
		}
		start = n
	}
	var fdNames []string
	if s := os.Getenv("LISTEN_FDNAMES"); s != "" {
		fdNames = strings.Split(s, ":")
	}
	var ls []net.Listener
	var names []string
	for i := range count {
		fd := start + i
		name := fmt.Sprintf("fd%d", fd)
		if i < len(fdNames) && fdNames[i] != "" {
			name = fdNames[i]
		}
		// Non-blocking, so that sock_accept answers EAGAIN and the goroutine waits in the
		// poller (poll_oneoff) instead of holding the whole guest; os.NewFile then registers
		// the descriptor with the poller.
		if err := syscall.SetNonblock(fd, true); err != nil {
			return nil, nil, fmt.Errorf("socket %s (fd %d): fd_fdstat_set_flags: %w", name, fd, err)
		}
		f := os.NewFile(uintptr(fd), name)
		l, err := net.FileListener(f)
		f.Close() // the listener keeps its own reference to the descriptor
		if err != nil {
			return nil, nil, fmt.Errorf("socket %s (fd %d): %w", name, fd, err)
		}
		ls = append(ls, l)
		names = append(names, name)
	}
	return ls, names, nil
}

func podName() string {
	for _, key := range []string{"POD_NAME", "HOSTNAME"} {
		if v := os.Getenv(key); v != "" {
			return v
		}
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "unknown"
}

func hello(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "hello from %s\n", podName())
}

func healthz(w http.ResponseWriter, r *http.Request) {
	_, statErr := os.Stat("/tmp/unhealthy")
	if unhealthy.Load() || statErr == nil {
		http.Error(w, "unhealthy", http.StatusInternalServerError)
		return
	}
	io.WriteString(w, "ok\n")
}

const alphabet = "abcdefghijklmnopqrstuvwxyz"

func echoN(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
	if err != nil || n < 0 {
		http.Error(w, "n must be a byte count", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	chunk := []byte(strings.Repeat(alphabet, 32*1024/len(alphabet)+1))[:32*1024-32*1024%len(alphabet)]
	for n > 0 {
		part := chunk
		if int64(len(part)) > n {
			part = part[:n]
		}
		if _, err := w.Write(part); err != nil {
			return
		}
		n -= int64(len(part))
	}
}

// bufferLimit is the largest body that POST /echo reads whole before answering; a larger or
// unsized one is echoed as it arrives (full duplex), which needs a client that reads while it
// sends.
const bufferLimit = 64 << 20

func echoBody(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if r.ContentLength >= 0 && r.ContentLength <= bufferLimit {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
		return
	}
	http.NewResponseController(w).EnableFullDuplex()
	io.Copy(w, r.Body)
}

var client = &http.Client{
	Transport: &http.Transport{
		DialContext:     wasinet.Dial,
		MaxIdleConns:    16,
		IdleConnTimeout: 30 * time.Second,
	},
	Timeout: 30 * time.Second,
}

func fetch(w http.ResponseWriter, r *http.Request) {
	target := r.URL.Query().Get("url")
	if target == "" {
		http.Error(w, "url is required", http.StatusBadRequest)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, target, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		if r.Context().Err() == context.Canceled {
			return
		}
		http.Error(w, "fetch: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("X-Upstream-Status", strconv.Itoa(resp.StatusCode))
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// grpcHealth answers grpc.health.v1.Health/Check: a length-prefixed HealthCheckResponse whose
// field 1 (status) is SERVING (1) or NOT_SERVING (2), then the grpc-status trailer.
func grpcHealth(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	status := byte(1)
	if unhealthy.Load() {
		status = 2
	}
	w.Header().Set("Content-Type", "application/grpc")
	w.Header().Set("Trailer", "Grpc-Status")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte{0, 0, 0, 0, 2, 0x08, status})
	w.Header().Set("Grpc-Status", "0")
}
