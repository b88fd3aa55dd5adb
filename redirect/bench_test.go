package redirect

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// connectStats is what the helper measured over its connects.
type connectStats struct {
	N        int     `json:"n"`
	MedianNs float64 `json:"median_ns"`
	MeanNs   float64 `json:"mean_ns"`
	Err      string  `json:"err,omitempty"`
}

// connectLoop is the helper's benchmark mode: count blocking connect(2)
// calls to addr, each on a new socket closed with a reset (no TIME_WAIT
// to run the ephemeral ports out), timing connect(2) alone.
func connectLoop(addr string, count int) int {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		fmt.Fprintln(os.Stderr, "connect loop: want an IPv4 address:port, got", addr)
		return 2
	}
	sa := &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	took := make([]time.Duration, 0, count)
	var st connectStats
	for range count {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			st.Err = err.Error()
			break
		}
		_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		t0 := time.Now()
		err = unix.Connect(fd, sa)
		d := time.Since(t0)
		unix.Close(fd)
		if err != nil {
			st.Err = "connect: " + err.Error()
			break
		}
		took = append(took, d)
	}
	st.N = len(took)
	if st.N > 0 {
		var sum time.Duration
		for _, d := range took {
			sum += d
		}
		slices.Sort(took)
		st.MedianNs = float64(took[st.N/2].Nanoseconds())
		st.MeanNs = float64(sum.Nanoseconds()) / float64(st.N)
	}
	_ = json.NewEncoder(os.Stdout).Encode(st)
	return 0
}

// BenchmarkConnect measures what the redirect adds to a workload's
// connect(2): the same loop of connects to a port-3306 address from a cgroup
// that is not enrolled (direct, to a listener on that address) and from an
// enrolled one (connect4 rewrites it to the proxy's listener, sockops records
// the origin, the proxy looks it up). The helper process times connect(2)
// alone; ns/connect is the median, connects/s follows from the mean.
func BenchmarkConnect(b *testing.B) {
	e := newEnv(b)
	r := e.open()
	// The proxy side: accept, look the origin up (as pkg/proxy does), close.
	// The helper resets each connection right after connect, so the origin
	// of one it has already released is gone from the map by then (what
	// the release program is for): a miss here is not an error.
	for _, a := range r.ListenAddrs() {
		ln, err := net.Listen("tcp", a.String())
		if err != nil {
			b.Fatalf("listen %v: %v", a, err)
		}
		b.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				tc := c.(*net.TCPConn)
				_, _ = r.Lookup(tc.RemoteAddr().(*net.TCPAddr).AddrPort(), tc.LocalAddr().(*net.TCPAddr).AddrPort())
				c.Close()
			}
		}()
	}
	if err := r.Enroll(e.enrolled, nil); err != nil {
		b.Fatalf("enroll: %v", err)
	}
	before := e.guard.got.Load()
	for _, c := range []struct{ name, dir string }{{"direct", e.sibling}, {"enrolled", e.enrolled}} {
		b.Run(c.name, func(b *testing.B) {
			st := e.connectIn(b, c.dir, b.N)
			b.ReportMetric(st.MedianNs, "ns/connect")
			b.ReportMetric(1e9/st.MeanNs, "connects/s")
		})
	}
	// The direct runs went to the guard; the enrolled ones must not have.
	if got, direct := e.guard.got.Load()-before, e.directConnects; got != direct {
		b.Fatalf("the original destination got %d connections, want the %d direct ones: a redirect went around the proxy", got, direct)
	}
}

// connectIn runs the helper's connect loop in the cgroup at dir.
func (e *env) connectIn(b *testing.B, dir string, n int) connectStats {
	b.Helper()
	cmd, closeCg := helperCmd(b, dir, "HELPER_MODE=connect", "HELPER_ADDR="+e.orig.String(), fmt.Sprintf("HELPER_COUNT=%d", n))
	defer closeCg()
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("connect helper: %v", err)
	}
	var st connectStats
	if err := json.Unmarshal(out, &st); err != nil {
		b.Fatalf("connect helper output %q: %v", out, err)
	}
	if st.Err != "" || st.N != n {
		b.Fatalf("connect helper: %d of %d connects: %s", st.N, n, st.Err)
	}
	if dir == e.sibling {
		e.directConnects += int64(n)
	}
	return st
}
