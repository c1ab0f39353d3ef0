package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// seqpacketChunk is the largest piece sent as one SOCK_SEQPACKET record: a
// record must fit the socket send buffer (about 208 KiB by default), so a
// larger message goes as several records.
const seqpacketChunk = 64 << 10

// udpMax is the largest UDP payload over IPv4.
const udpMax = 65507

// ---- Unix domain sockets (stream and seqpacket) ----

type unixMech struct{ typ int }

func (m unixMech) Name() string {
	if m.typ == unix.SOCK_SEQPACKET {
		return "unix-seqpacket"
	}
	return "unix-stream"
}
func (unixMech) Mode() string { return "default" }
func (m unixMech) Design() Design {
	if m.typ == unix.SOCK_SEQPACKET {
		return Design{KernelCopies: 2, Syscalls: "2 (write + read)",
			Note: "AF_UNIX SOCK_SEQPACKET; a message above 64 KiB goes as several 64 KiB records (a record must fit the send buffer)"}
	}
	return Design{KernelCopies: 2, Syscalls: "2 (write + read)",
		Note: "AF_UNIX SOCK_STREAM, default buffers; large messages take several reads"}
}
func (unixMech) MaxSize() int         { return 0 }
func (unixMech) StreamWindow(int) int { return 0 }

func (m unixMech) chunk() int {
	if m.typ == unix.SOCK_SEQPACKET {
		return seqpacketChunk
	}
	return 0
}

func (m unixMech) Prepare(dir string, maxSize int) (*Setup, error) {
	path := filepath.Join(dir, "bench.sock")
	lfd, err := unix.Socket(unix.AF_UNIX, m.typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(lfd)
		return nil, fmt.Errorf("bind %s: %w", path, err)
	}
	if err := unix.Listen(lfd, 1); err != nil {
		unix.Close(lfd)
		return nil, fmt.Errorf("listen: %w", err)
	}
	return &Setup{
		Args: map[string]string{"path": path},
		Parent: func() (Endpoint, error) {
			defer unix.Close(lfd)
			fd, _, err := acceptRetry(lfd)
			if err != nil {
				return nil, err
			}
			return &fdEndpoint{rfd: fd, wfd: fd, chunk: m.chunk(), sock: true}, nil
		},
		Cleanup: func() { os.Remove(path) },
	}, nil
}

func acceptRetry(lfd int) (int, unix.Sockaddr, error) {
	for {
		fd, sa, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, nil, fmt.Errorf("accept: %w", err)
		}
		return fd, sa, nil
	}
}

func connectRetry(fd int, sa unix.Sockaddr) error {
	for {
		err := unix.Connect(fd, sa)
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

func (m unixMech) Open(args map[string]string, files []*os.File) (Endpoint, error) {
	fd, err := unix.Socket(unix.AF_UNIX, m.typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := connectRetry(fd, &unix.SockaddrUnix{Name: args["path"]}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect %s: %w", args["path"], err)
	}
	return &fdEndpoint{rfd: fd, wfd: fd, chunk: m.chunk(), sock: true}, nil
}

// ---- TCP loopback ----

type tcpMech struct{ nodelay bool }

func (tcpMech) Name() string { return "tcp" }
func (m tcpMech) Mode() string {
	if m.nodelay {
		return "nodelay"
	}
	return "default"
}
func (m tcpMech) Design() Design {
	note := "TCP over 127.0.0.1, Nagle on (the socket default)"
	if m.nodelay {
		note = "TCP over 127.0.0.1 with TCP_NODELAY on both sockets"
	}
	return Design{KernelCopies: 2, Syscalls: "2 (write + read)", Note: note}
}
func (tcpMech) MaxSize() int         { return 0 }
func (tcpMech) StreamWindow(int) int { return 0 }

func (m tcpMech) setOpts(fd int) error {
	if !m.nodelay {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return fmt.Errorf("TCP_NODELAY: %w", err)
	}
	return nil
}

var loopback4 = [4]byte{127, 0, 0, 1}

func (m tcpMech) Prepare(dir string, maxSize int) (*Setup, error) {
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: loopback4}); err != nil {
		unix.Close(lfd)
		return nil, fmt.Errorf("bind: %w", err)
	}
	if err := unix.Listen(lfd, 1); err != nil {
		unix.Close(lfd)
		return nil, fmt.Errorf("listen: %w", err)
	}
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		unix.Close(lfd)
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	port := sa.(*unix.SockaddrInet4).Port
	return &Setup{
		Args: map[string]string{"port": strconv.Itoa(port)},
		Parent: func() (Endpoint, error) {
			defer unix.Close(lfd)
			fd, _, err := acceptRetry(lfd)
			if err != nil {
				return nil, err
			}
			if err := m.setOpts(fd); err != nil {
				unix.Close(fd)
				return nil, err
			}
			return &fdEndpoint{rfd: fd, wfd: fd, sock: true}, nil
		},
	}, nil
}

func (m tcpMech) Open(args map[string]string, files []*os.File) (Endpoint, error) {
	port, err := strconv.Atoi(args["port"])
	if err != nil {
		return nil, fmt.Errorf("bench: bad port %q", args["port"])
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := m.setOpts(fd); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := connectRetry(fd, &unix.SockaddrInet4{Addr: loopback4, Port: port}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect 127.0.0.1:%d: %w", port, err)
	}
	return &fdEndpoint{rfd: fd, wfd: fd, sock: true}, nil
}

// ---- UDP loopback ----

type udpMech struct{}

func (udpMech) Name() string { return "udp" }
func (udpMech) Mode() string { return "default" }
func (udpMech) Design() Design {
	return Design{KernelCopies: 2, Syscalls: "2 (write + read)",
		Note: "connected UDP sockets on 127.0.0.1; one datagram per message, so at most 65507 B; " +
			"the stream sender waits for an acknowledgement every window of messages (sized to a quarter of the receive buffer), since UDP drops what does not fit"}
}
func (udpMech) MaxSize() int { return udpMax }

// StreamWindow keeps the bytes in flight (counted as the kernel charges
// them: payload plus about 1 KiB of skb overhead) under a quarter of the
// receiver's default buffer, so that no datagram is dropped.
func (udpMech) StreamWindow(size int) int {
	budget := readProcInt("/proc/sys/net/core/rmem_default", 212992) / 4
	return max(1, budget/(size+1024))
}

func udpSocket() (int, int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: loopback4}); err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("bind: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("getsockname: %w", err)
	}
	return fd, sa.(*unix.SockaddrInet4).Port, nil
}

// udpTimeout turns a lost datagram into an error instead of a hang.
func udpTimeout(fd int) error {
	tv := unix.Timeval{Sec: 10}
	return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
}

func (udpMech) Prepare(dir string, maxSize int) (*Setup, error) {
	pfd, pport, err := udpSocket()
	if err != nil {
		return nil, err
	}
	cfd, cport, err := udpSocket()
	if err != nil {
		unix.Close(pfd)
		return nil, err
	}
	for _, c := range []struct{ fd, port int }{{pfd, cport}, {cfd, pport}} {
		if err := connectRetry(c.fd, &unix.SockaddrInet4{Addr: loopback4, Port: c.port}); err != nil {
			unix.Close(pfd)
			unix.Close(cfd)
			return nil, fmt.Errorf("connect: %w", err)
		}
		if err := udpTimeout(c.fd); err != nil {
			unix.Close(pfd)
			unix.Close(cfd)
			return nil, fmt.Errorf("SO_RCVTIMEO: %w", err)
		}
	}
	ep := &fdEndpoint{rfd: pfd, wfd: pfd, chunk: udpMax, sock: true}
	return &Setup{
		Files:  []*os.File{os.NewFile(uintptr(cfd), "udp-child")},
		Parent: func() (Endpoint, error) { return ep, nil },
	}, nil
}

func (udpMech) Open(args map[string]string, files []*os.File) (Endpoint, error) {
	if err := needFiles(files, 1); err != nil {
		return nil, err
	}
	fd, err := fileFD(files[0])
	if err != nil {
		return nil, err
	}
	return &fdEndpoint{rfd: fd, wfd: fd, chunk: udpMax, sock: true}, nil
}

func init() {
	register(unixMech{typ: unix.SOCK_STREAM})
	register(unixMech{typ: unix.SOCK_SEQPACKET})
	register(tcpMech{nodelay: false})
	register(tcpMech{nodelay: true})
	register(udpMech{})
}
