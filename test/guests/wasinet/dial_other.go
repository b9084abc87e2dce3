//go:build !wasip1

// Package wasinet dials outbound TCP connections from a GOOS=wasip1 guest through the WasmEdge
// socket extension of wasi_snapshot_preview1 (docs/socket-abi.md). Elsewhere it is net.Dialer,
// so that the guests that use it also build and run natively.
package wasinet

import (
	"context"
	"net"
)

// Dial connects to address on network with a net.Dialer.
func Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}
