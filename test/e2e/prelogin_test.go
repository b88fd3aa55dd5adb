package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// procStatusKB reads a field (VmRSS, VmHWM) of /proc/PID/status in KiB.
func procStatusKB(t *testing.T, pid int, field string) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field+":") {
			var kb int
			fmt.Sscan(strings.Fields(line)[1], &kb)
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// dialFrom connects to addr from a loopback source address, so a test can
// be several clients.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readFrame reads one packet: payload and sequence id.
func readFrame(c net.Conn, timeout time.Duration) ([]byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	var h [4]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return nil, err
	}
	p := make([]byte, int(h[0])|int(h[1])<<8|int(h[2])<<16)
	_, err := io.ReadFull(c, p)
	return p, err
}

// sixteenMiB sends, before any login, a packet header announcing 16 MiB - 1
// bytes (so a continuation follows) and then streams 16 MiB. It returns how
// many bytes the peer took before refusing.
func sixteenMiB(c net.Conn) int {
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte{0xff, 0xff, 0xff, 0x01}); err != nil {
		return 0
	}
	chunk := make([]byte, 1<<20)
	sent := 4
	for range 16 {
		n, err := c.Write(chunk)
		sent += n
		if err != nil {
			break
		}
	}
	return sent
}

func wantErrFrame(t *testing.T, what string, p []byte, err error, code uint16, substr string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v, want ERR %d", what, err, code)
	}
	e, perr := wire.ParseErr(p)
	if perr != nil || e.Code != code || !strings.Contains(e.Message, substr) {
		t.Fatalf("%s: got % x (%v), want ERR %d containing %q", what, p[:min(len(p), 32)], e, code, substr)
	}
}

// TestBoundedBeforeLogin: a client that has not logged in can make the
// daemon hold a 64 KiB packet at most, for handshake_timeout at most, in a
// bounded number of connections per source address and overall. Many
// connections pushing 16 MiB continuation packets are refused at the
// header; the daemon's RSS stays flat; logged-in sessions and clients from
// other addresses are unaffected.
func TestBoundedBeforeLogin(t *testing.T) {
	d := harness.Start(t, harness.Options{Extra: "handshake_timeout: 2s\nmax_unauthenticated_connections: 24\nmax_unauthenticated_per_source: 8\n"})

	// Directly, MariaDB reads a 16 MiB continuation packet before login.
	mc := dialFrom(t, "127.0.0.1", d.Maria.Addr)
	if _, err := readFrame(mc, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := sixteenMiB(mc); n < 16<<20 {
		t.Fatalf("direct: MariaDB took only %d bytes of a pre-login 16 MiB packet: the test would prove nothing", n)
	}
	mc.Close()

	// A session logged in before the flood, and its state.
	before := d.Open(t, "test")
	before.SetMaxOpenConns(1)
	if _, err := before.Exec("SET @sw_mark = 7"); err != nil {
		t.Fatal(err)
	}
	pid := d.PID()
	rss0, hwm0 := procStatusKB(t, pid, "VmRSS"), procStatusKB(t, pid, "VmHWM")

	// The flood: rounds of 24 connections (8 per source address) that each
	// announce 16 MiB and stream it without logging in.
	const rounds, perSource = 4, 8
	srcs := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	var mu sync.Mutex
	var tooLarge, refused int
	for r := range rounds {
		var wg sync.WaitGroup
		for _, src := range srcs {
			for range perSource {
				c := dialFrom(t, src, d.Listen)
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer c.Close()
					g, err := readFrame(c, 5*time.Second)
					if err != nil {
						t.Errorf("round %d: no greeting: %v", r, err)
						return
					}
					if g[0] == wire.ErrHeader { // over a cap while the last round drains
						mu.Lock()
						refused++
						mu.Unlock()
						return
					}
					start := time.Now()
					reply := make(chan []byte, 1)
					go func() {
						p, _ := readFrame(c, 5*time.Second)
						reply <- p
					}()
					sent := sixteenMiB(c)
					p := <-reply
					took := time.Since(start)
					if took > time.Second {
						t.Errorf("refusal took %v (the handshake timeout is 2s)", took)
					}
					if sent >= 16<<20 {
						t.Errorf("the daemon took all %d bytes of a pre-login 16 MiB packet", sent)
					}
					if e, err := wire.ParseErr(p); err == nil && e.Code == wire.ErrCodeTooLarge && strings.Contains(e.Message, "sqlwarden: packet larger than 65536 bytes before login") {
						mu.Lock()
						tooLarge++
						mu.Unlock()
					}
				}()
			}
		}
		wg.Wait()
	}
	if tooLarge < rounds*len(srcs)*perSource/2 {
		t.Errorf("%d connections got ERR 1153, %d were over a cap; want most to get 1153", tooLarge, refused)
	}
	rss1, hwm1 := procStatusKB(t, pid, "VmRSS"), procStatusKB(t, pid, "VmHWM")
	t.Logf("daemon RSS %d -> %d KiB, peak %d -> %d KiB over %d pre-login 16 MiB packets", rss0, rss1, hwm0, hwm1, rounds*len(srcs)*perSource)
	if hwm1-hwm0 > 48<<10 || rss1-rss0 > 48<<10 {
		t.Errorf("daemon memory grew by %d KiB (peak %d KiB) under the flood, want < 48 MiB", rss1-rss0, hwm1-hwm0)
	}
	var mark int
	if err := before.QueryRow("SELECT @sw_mark").Scan(&mark); err != nil || mark != 7 {
		t.Fatalf("a session logged in before the flood: %d %v", mark, err)
	}

	// Connections that just wait: 8 from one address fill its share.
	idle := func(src string, n int) []net.Conn {
		var cs []net.Conn
		for range n {
			c := dialFrom(t, src, d.Listen)
			if p, err := readFrame(c, 5*time.Second); err != nil || p[0] == wire.ErrHeader {
				t.Fatalf("idle connection from %s: % x %v", src, p, err)
			}
			cs = append(cs, c)
		}
		return cs
	}
	opened := time.Now()
	waiting := idle("127.0.0.5", perSource)
	p, err := readFrame(dialFrom(t, "127.0.0.5", d.Listen), 5*time.Second)
	wantErrFrame(t, "one more from the same address", p, err, 1040, "max_unauthenticated_per_source 8")
	// Another address logs in and works.
	fresh := d.Open(t, "test")
	if err := fresh.Ping(); err != nil {
		t.Fatalf("a client from another address, its address under the cap: %v", err)
	}
	fresh.Close()
	// 24 waiting overall: nobody new gets in until they go.
	waiting = append(waiting, idle("127.0.0.6", perSource)...)
	waiting = append(waiting, idle("127.0.0.7", perSource)...)
	p, err = readFrame(dialFrom(t, "127.0.0.9", d.Listen), 5*time.Second)
	wantErrFrame(t, "one more overall", p, err, 1040, "max_unauthenticated_connections 24")
	if err := before.Ping(); err != nil {
		t.Fatalf("a logged-in session while the login queue is full: %v", err)
	}
	// handshake_timeout answers and closes every one of them — among them
	// one that announced a 1 MiB response (past the 64 KiB the proxy keeps
	// before login, so read and dropped as it streams) and sent 10 bytes.
	stalled := waiting[len(waiting)-1]
	if _, err := stalled.Write(append([]byte{0, 0, 0x10, 1}, make([]byte, 10)...)); err != nil {
		t.Fatal(err)
	}
	for i, c := range waiting {
		p, err := readFrame(c, 10*time.Second)
		wantErrFrame(t, fmt.Sprintf("pre-login connection %d at handshake_timeout", i), p, err, wire.ErrCodeHandshake, "sqlwarden: bad handshake: login not finished within handshake_timeout 2s")
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Read(make([]byte, 1))
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("an idle pre-login connection was not closed: %v", err)
		}
	}
	if took := time.Since(opened); took < 1500*time.Millisecond || took > 6*time.Second {
		t.Errorf("idle pre-login connections closed after %v, handshake_timeout is 2s", took)
	}
	// Then logins work again, from everywhere.
	again := dialFrom(t, "127.0.0.5", d.Listen)
	if p, err := readFrame(again, 5*time.Second); err != nil || p[0] == wire.ErrHeader {
		t.Fatalf("after the timeout: % x %v", p, err)
	}
	after := d.Open(t, "test")
	if err := after.Ping(); err != nil {
		t.Fatalf("login after the queue drained: %v", err)
	}
}

// TestBadHandshakeAnswered: a handshake response the proxy cannot read gets
// ERR 1043 (the server's "Bad handshake"), not a silent close; the daemon
// goes on.
func TestBadHandshakeAnswered(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	host, port := d.HostPort()
	for name, payload := range map[string][]byte{
		"shorter than its capabilities": {0x01, 0x02},
		"pre-4.1 protocol":              {0x00, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0x21, 'u', 0},
	} {
		c := dialFrom(t, "127.0.0.1", net.JoinHostPort(host, port))
		if _, err := readFrame(c, 5*time.Second); err != nil { // the greeting
			t.Fatalf("%s: greeting: %v", name, err)
		}
		frame := append([]byte{byte(len(payload)), 0, 0, 1}, payload...)
		if _, err := c.Write(frame); err != nil {
			t.Fatal(err)
		}
		p, err := readFrame(c, 5*time.Second)
		wantErrFrame(t, name, p, err, wire.ErrCodeHandshake, "sqlwarden: bad handshake")
	}
	db := d.Open(t, "")
	if err := db.Ping(); err != nil {
		t.Fatalf("a client after the bad handshakes: %v", err)
	}
}
