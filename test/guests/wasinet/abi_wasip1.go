//go:build wasip1

package wasinet

// The host functions of the WasmEdge socket extension to wasi_snapshot_preview1 that this
// package calls, with the signatures and struct layouts of docs/socket-abi.md. Every struct the
// host reaches through a pointer stored inside guest memory lives in one []byte from heapBytes,
// laid out by hand with explicit offsets: Go's wasm pointers are 8 bytes, the ABI's are 4.

import (
	"encoding/binary"
	"runtime"
	"syscall"
	"unsafe"
)

// Constants of the ABI (docs/socket-abi.md, "Constants").
const (
	afUnspec = 0
	afInet4  = 1
	afInet6  = 2

	sockStream = 2

	solSocket = 0
	soError   = 2

	ipprotoTCP = 1

	aiNumericHost = 1 << 2
	aiNumericServ = 1 << 3
)

//go:wasmimport wasi_snapshot_preview1 sock_open
//go:noescape
func sock_open(family int32, socktype int32, fd *int32) uint32

//go:wasmimport wasi_snapshot_preview1 sock_connect
//go:noescape
func sock_connect(fd int32, addr unsafe.Pointer, port uint32) uint32

//go:wasmimport wasi_snapshot_preview1 sock_getsockopt
//go:noescape
func sock_getsockopt(fd int32, level int32, name int32, value *int32, valueLen *uint32) uint32

//go:wasmimport wasi_snapshot_preview1 sock_getlocaladdr
//go:noescape
func sock_getlocaladdr(fd int32, addr unsafe.Pointer, port *uint32) uint32

//go:wasmimport wasi_snapshot_preview1 sock_getpeeraddr
//go:noescape
func sock_getpeeraddr(fd int32, addr unsafe.Pointer, port *uint32) uint32

//go:wasmimport wasi_snapshot_preview1 sock_getaddrinfo
//go:noescape
func sock_getaddrinfo(node unsafe.Pointer, nodeLen uint32, service unsafe.Pointer, serviceLen uint32,
	hints unsafe.Pointer, res unsafe.Pointer, maxResLen uint32, resLen *uint32) uint32

func errnoErr(e uint32) error {
	if e == 0 {
		return nil
	}
	return syscall.Errno(e)
}

// heapBytes allocates n zero bytes on the heap. Memory whose address is stored inside other
// memory for the host must not be on a goroutine stack, which moves when it grows; a slice
// returned from a function that is not inlined always escapes, so it is never stack-allocated.
//
//go:noinline
func heapBytes(n int) []byte {
	return make([]byte, n)
}

// addr32 is the 32-bit linear-memory address of b's first byte.
func addr32(b []byte) uint32 {
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

// socket opens a stream socket of the family (afInet4 or afInet6).
func socket(family int32) (int, error) {
	var fd int32
	if err := errnoErr(sock_open(family, sockStream, &fd)); err != nil {
		return -1, err
	}
	return int(fd), nil
}

// connect starts connecting fd to ip:port. ip is 4 or 16 bytes: the raw-address form of the
// WasiAddress buffer ({buf, buf_len} followed here by the address bytes themselves).
func connect(fd int, ip []byte, port int) error {
	mem := heapBytes(8 + len(ip))
	le := binary.LittleEndian
	le.PutUint32(mem[0:], addr32(mem)+8)
	le.PutUint32(mem[4:], uint32(len(ip)))
	copy(mem[8:], ip)
	errno := sock_connect(int32(fd), unsafe.Pointer(unsafe.SliceData(mem)), uint32(port))
	runtime.KeepAlive(mem)
	return errnoErr(errno)
}

// socketError returns SO_ERROR: the pending error of fd as a WASI errno (0 for none).
func socketError(fd int) (syscall.Errno, error) {
	var value int32
	size := uint32(4)
	if err := errnoErr(sock_getsockopt(int32(fd), solSocket, soError, &value, &size)); err != nil {
		return 0, err
	}
	return syscall.Errno(value), nil
}

// sockAddr reads fd's local (peer == false) or remote address with the 128-byte address
// storage form: {family u16 LE, address bytes...}, and the port as a u32.
func sockAddr(fd int, peer bool) (ip []byte, port int, err error) {
	mem := heapBytes(8 + 128)
	le := binary.LittleEndian
	le.PutUint32(mem[0:], addr32(mem)+8)
	le.PutUint32(mem[4:], 128)
	var p uint32
	var errno uint32
	if peer {
		errno = sock_getpeeraddr(int32(fd), unsafe.Pointer(unsafe.SliceData(mem)), &p)
	} else {
		errno = sock_getlocaladdr(int32(fd), unsafe.Pointer(unsafe.SliceData(mem)), &p)
	}
	runtime.KeepAlive(mem)
	if err := errnoErr(errno); err != nil {
		return nil, 0, err
	}
	storage := mem[8:]
	switch le.Uint16(storage) {
	case afInet4:
		return append([]byte(nil), storage[2:6]...), int(p), nil
	case afInet6:
		return append([]byte(nil), storage[2:18]...), int(p), nil
	}
	return nil, 0, syscall.EAFNOSUPPORT
}

// Sizes of the getaddrinfo structs (docs/socket-abi.md, "sock_getaddrinfo").
const (
	addrinfoSize   = 28 // __wasi_addrinfo_t
	sockaddrSize   = 16 // __wasi_sockaddr_t is 12 bytes; 16 keeps every entry 4-aligned
	saDataSize     = 28 // 26 bytes hold an IPv6 sa_data; 28 keeps alignment
	entrySize      = addrinfoSize + sockaddrSize + saDataSize
	maxAddrResults = 8
)

// getaddrinfo resolves host with the host's resolver. family is afUnspec, afInet4 or afInet6.
func getaddrinfo(host, service string, family uint8, flags uint16) ([][]byte, error) {
	// [0:4] the u32 that res points to (the first entry's address); [4:32] the hints;
	// then maxAddrResults entries of {addrinfo, sockaddr, sa_data}, chained by ai_next.
	const first = 4 + addrinfoSize
	mem := heapBytes(first + maxAddrResults*entrySize)
	base := addr32(mem)
	le := binary.LittleEndian
	hints := mem[4:first]
	le.PutUint16(hints[0:], flags)
	hints[2] = family
	hints[3] = sockStream
	le.PutUint32(hints[4:], ipprotoTCP)
	le.PutUint32(mem[0:], base+first)
	for i := 0; i < maxAddrResults; i++ {
		off := uint32(first + i*entrySize)
		ai := mem[off : off+addrinfoSize]
		sa := mem[off+addrinfoSize : off+addrinfoSize+sockaddrSize]
		le.PutUint32(ai[8:], 12)                                 // ai_addrlen: sizeof(__wasi_sockaddr_t)
		le.PutUint32(ai[12:], base+off+addrinfoSize)             // ai_addr
		le.PutUint32(ai[16:], 0)                                 // ai_canonname: none
		le.PutUint32(ai[20:], 0)                                 // ai_canonname_len
		le.PutUint32(sa[4:], 26)                                 // sa_data_len: capacity
		le.PutUint32(sa[8:], base+off+addrinfoSize+sockaddrSize) // sa_data
		if i+1 < maxAddrResults {
			le.PutUint32(ai[24:], base+off+entrySize) // ai_next
		}
	}
	// Both strings are passed NUL-terminated, the NUL counted in the length, as WasmEdge's own
	// guests do; the host strips it.
	node := append([]byte(host), 0)
	serv := append([]byte(service), 0)
	var n uint32
	errno := sock_getaddrinfo(
		unsafe.Pointer(unsafe.SliceData(node)), uint32(len(node)),
		unsafe.Pointer(unsafe.SliceData(serv)), uint32(len(serv)),
		unsafe.Pointer(&mem[4]), unsafe.Pointer(&mem[0]), maxAddrResults, &n)
	runtime.KeepAlive(mem)
	runtime.KeepAlive(node)
	runtime.KeepAlive(serv)
	if err := errnoErr(errno); err != nil {
		return nil, err
	}
	if n > maxAddrResults {
		n = maxAddrResults
	}
	var ips [][]byte
	for i := 0; i < int(n); i++ {
		off := first + i*entrySize
		sa := mem[off+addrinfoSize : off+addrinfoSize+sockaddrSize]
		data := mem[off+addrinfoSize+sockaddrSize : off+entrySize]
		switch sa[0] {
		case afInet4: // sa_data: port (2, big-endian), address (4), zero (8)
			ips = append(ips, append([]byte(nil), data[2:6]...))
		case afInet6: // sa_data: port (2, big-endian), flowinfo (4), address (16), scope id (4)
			ips = append(ips, append([]byte(nil), data[6:22]...))
		}
	}
	return ips, nil
}
