package redirect

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary re-executes itself as the "workload": placed in a cgroup
// (and maybe a network namespace) by the parent, it dials and reports.
const helperEnv = "SQLWARDEN_REDIRECT_HELPER"

type dialResult struct {
	Local string `json:"local"`
	Peer  string `json:"peer"` // getpeername after connect
	Reply string `json:"reply"`
	Err   string `json:"err"`
}

func runHelper() int {
	network := os.Getenv("HELPER_NET")
	addr := os.Getenv("HELPER_ADDR")
	count, _ := strconv.Atoi(os.Getenv("HELPER_COUNT"))
	if count == 0 {
		count = 1
	}
	if os.Getenv("HELPER_MODE") == "connect" {
		return connectLoop(addr, count)
	}
	if os.Getenv("HELPER_WAIT") == "1" {
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			fmt.Fprintln(os.Stderr, "wait for go:", err)
			return 2
		}
	}
	enc := json.NewEncoder(os.Stdout)
	for range count {
		var res dialResult
		var conn net.Conn
		var err error
		switch network {
		case "raw6":
			conn, res, err = dialRaw6(addr)
		default:
			d := net.Dialer{Timeout: 3 * time.Second}
			if os.Getenv("HELPER_MARK") == "1" {
				d.Control = MarkControl
			}
			conn, err = d.DialContext(context.Background(), network, addr)
			if err == nil {
				res.Local, res.Peer = conn.LocalAddr().String(), conn.RemoteAddr().String()
			}
		}
		if err != nil {
			res.Err = err.Error()
			_ = enc.Encode(res)
			continue
		}
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			res.Err = "read: " + err.Error()
		}
		res.Reply = line
		conn.Close()
		_ = enc.Encode(res)
	}
	return 0
}

// dialRaw6 connects a dual-stack AF_INET6 socket to an IPv4-mapped address
// (what Java does), which Go's net package would turn into AF_INET.
func dialRaw6(addr string) (net.Conn, dialResult, error) {
	var res dialResult
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, res, err
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, res, err
	}
	if err := unix.Connect(fd, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}); err != nil {
		unix.Close(fd)
		return nil, res, fmt.Errorf("connect: %w", err)
	}
	if sa, err := unix.Getpeername(fd); err == nil {
		res.Peer = sockaddrString(sa)
	}
	if sa, err := unix.Getsockname(fd); err == nil {
		res.Local = sockaddrString(sa)
	}
	f := os.NewFile(uintptr(fd), "raw6")
	defer f.Close()
	conn, err := net.FileConn(f)
	return conn, res, err
}

func sockaddrString(sa unix.Sockaddr) string {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)).String()
	}
	return fmt.Sprint(sa)
}
