package testutil

import (
	"net"
	"testing"
)

// TCPPair returns both ends of a loopback TCP connection, closed at cleanup.
func TCPPair(t testing.TB) (local, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	local, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer = <-accepted
	if peer == nil {
		local.Close()
		t.Fatal("accept on loopback failed")
	}
	t.Cleanup(func() { local.Close(); peer.Close() })
	return local, peer
}
