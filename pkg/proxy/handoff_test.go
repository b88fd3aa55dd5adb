package proxy

import (
	"net"
	"testing"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
)

// addrConn is a net.Conn that only has addresses.
type addrConn struct {
	net.Conn
	local, remote net.Addr
}

func (c addrConn) LocalAddr() net.Addr  { return c.local }
func (c addrConn) RemoteAddr() net.Addr { return c.remote }

// The hand-off is for peers on this machine: loopback, a Unix socket, the
// host's own address; not another host, not an in-memory pipe.
func TestOnThisHost(t *testing.T) {
	tcp := func(ip string) *net.TCPAddr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 3306} }
	for _, tc := range []struct {
		name          string
		local, remote net.Addr
		want          bool
	}{
		{"IPv4 loopback", tcp("127.0.0.1"), tcp("127.0.0.1"), true},
		{"another loopback address", tcp("127.0.0.1"), tcp("127.0.0.53"), true},
		{"IPv6 loopback", tcp("::1"), tcp("::1"), true},
		{"the host's own address", tcp("10.1.2.3"), tcp("10.1.2.3"), true},
		{"another host", tcp("10.1.2.3"), tcp("10.1.2.4"), false},
		{"another host, IPv6", tcp("fd00::1"), tcp("fd00::2"), false},
		{"Unix socket", &net.UnixAddr{Name: "@", Net: "unix"}, &net.UnixAddr{Name: "/run/mysqld.sock", Net: "unix"}, true},
	} {
		if got := onThisHost(addrConn{local: tc.local, remote: tc.remote}); got != tc.want {
			t.Errorf("%s: onThisHost = %v, want %v", tc.name, got, tc.want)
		}
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if onThisHost(a) {
		t.Error("an in-memory pipe counts as a peer on this host")
	}
	cc, _ := testutil.TCPPair(t)
	if !onThisHost(cc) {
		t.Errorf("a real loopback connection (%v → %v) is not on this host", cc.LocalAddr(), cc.RemoteAddr())
	}
}
