//go:build wasip1

// Package wasinet dials outbound TCP connections from a GOOS=wasip1 guest through the WasmEdge
// socket extension of wasi_snapshot_preview1, as wasmlet implements it (docs/socket-abi.md).
// The connected descriptor is handed to net.FileConn, so Go's own poller (poll_oneoff) drives
// reads, writes and deadlines. Use it as the dialer of an http.Transport:
//
//	client := &http.Client{Transport: &http.Transport{DialContext: wasinet.Dial}}
package wasinet

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Dial connects to address ("host:port", host an IP literal or a name resolved with
// sock_getaddrinfo) on network "tcp", "tcp4" or "tcp6", trying each resolved address in turn.
func Dial(ctx context.Context, network, address string) (net.Conn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: network, Addr: stringAddr{network, address}, Err: err}
	}
	var family uint8
	switch network {
	case "tcp":
		family = afUnspec
	case "tcp4":
		family = afInet4
	case "tcp6":
		family = afInet6
	default:
		return nil, opErr(net.UnknownNetworkError(network))
	}
	host, service, err := net.SplitHostPort(address)
	if err != nil {
		return nil, opErr(err)
	}
	port, err := lookupPort(service)
	if err != nil {
		return nil, opErr(err)
	}
	ips, err := resolve(host, service, family)
	if err != nil {
		return nil, opErr(err)
	}
	var firstErr error
	for _, ip := range ips {
		if err := ctx.Err(); err != nil {
			return nil, opErr(err)
		}
		conn, err := dialIP(ctx, ip, port)
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, opErr(firstErr)
}

func lookupPort(service string) (int, error) {
	if port, err := strconv.ParseUint(service, 10, 16); err == nil {
		return int(port), nil
	}
	switch service {
	case "http":
		return 80, nil
	case "https":
		return 443, nil
	}
	return 0, &net.AddrError{Err: "unknown port", Addr: service}
}

// resolve returns the addresses (4 or 16 bytes each) to try for host.
func resolve(host, service string, family uint8) ([][]byte, error) {
	if host == "" {
		host = "127.0.0.1"
		if family == afInet6 {
			host = "::1"
		}
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip4 := ip.To4(); ip4 != nil && family != afInet6 {
			return [][]byte{ip4}, nil
		} else if ip4 == nil && family != afInet4 {
			return [][]byte{ip.To16()}, nil
		}
		return nil, &net.AddrError{Err: "address of the wrong family", Addr: host}
	}
	ips, err := getaddrinfo(host, service, family, aiNumericServ)
	if err == nil && len(ips) == 0 {
		err = errNoAddresses
	}
	if err != nil {
		dnsErr := &net.DNSError{Err: err.Error(), Name: host}
		var errno syscall.Errno
		if errors.Is(err, errNoAddresses) || (errors.As(err, &errno) && (errno == errAINoName || errno == errAINoData)) {
			dnsErr.Err = "no such host"
			dnsErr.IsNotFound = true
		}
		return nil, dnsErr
	}
	return ips, nil
}

var errNoAddresses = errors.New("no addresses")

// The resolver errnos of the extension (docs/socket-abi.md, "Errno").
const (
	errAINoData = syscall.Errno(83)
	errAINoName = syscall.Errno(84)
)

// aLongTimeAgo is a deadline in the past, to wake a goroutine blocked on the descriptor.
var aLongTimeAgo = time.Unix(1, 0)

func dialIP(ctx context.Context, ip []byte, port int) (conn net.Conn, err error) {
	family := int32(afInet4)
	if len(ip) == net.IPv6len {
		family = afInet6
	}
	fd, err := socket(family)
	if err != nil {
		return nil, os.NewSyscallError("sock_open", err)
	}
	// Non-blocking before the connect, so that it answers EINPROGRESS instead of holding the
	// guest, and before os.NewFile, so that the file is registered with the poller.
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("fd_fdstat_set_flags", err)
	}
	inProgress := false
	switch err := connect(fd, ip, port); err {
	case nil:
	case syscall.EINPROGRESS, syscall.EAGAIN, syscall.EALREADY:
		inProgress = true
	default:
		syscall.Close(fd)
		return nil, os.NewSyscallError("sock_connect", err)
	}
	f := os.NewFile(uintptr(fd), "tcp")
	defer f.Close() // net.FileConn shares the descriptor (reference counted on wasip1)
	if inProgress {
		if err := waitConnected(ctx, f); err != nil {
			return nil, err
		}
	}
	conn, err = net.FileConn(f)
	if err != nil {
		return nil, err
	}
	// On wasip1 the conn's addresses are empty *net.TCPAddr values that it owns; fill them in.
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		a.IP, a.Port = net.IP(ip), port
	}
	if lip, lport, err := sockAddr(fd, false); err == nil {
		if a, ok := conn.LocalAddr().(*net.TCPAddr); ok {
			a.IP, a.Port = net.IP(lip), lport
		}
	}
	return conn, nil
}

// waitConnected waits for the non-blocking connect to finish: the descriptor turns writable
// (poll_oneoff FD_WRITE) and SO_ERROR tells the outcome, as with connect(2).
func waitConnected(ctx context.Context, f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	if deadline, ok := ctx.Deadline(); ok {
		f.SetWriteDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(aLongTimeAgo) })
	defer stop()
	var connectErr error
	waitErr := rc.Write(func(fd uintptr) bool {
		errno, err := socketError(int(fd))
		if err != nil {
			connectErr = os.NewSyscallError("sock_getsockopt", err)
			return true
		}
		switch errno {
		case 0:
			// Writable without a pending error: connected, unless the wake-up was spurious.
			if _, _, err := sockAddr(int(fd), true); err == syscall.ENOTCONN {
				return false
			}
			return true
		case syscall.EINPROGRESS, syscall.EALREADY, syscall.EINTR, syscall.EAGAIN:
			return false
		case syscall.EISCONN:
			return true
		default:
			connectErr = os.NewSyscallError("sock_connect", errno)
			return true
		}
	})
	if waitErr != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		return waitErr
	}
	f.SetWriteDeadline(time.Time{})
	return connectErr
}

type stringAddr struct{ network, address string }

func (a stringAddr) Network() string { return a.network }
func (a stringAddr) String() string  { return a.address }
