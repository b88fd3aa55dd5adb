package redirect

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/host"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	os.Exit(m.Run())
}

// proxyResult is what the fake proxy learned about one accepted connection.
type proxyResult struct {
	remote, local netip.AddrPort
	origin        host.Origin
	err           error
}

// fakeProxy is a plain TCP listener set standing in for pkg/proxy: accept,
// Lookup, answer "ok".
type fakeProxy struct {
	lns      []net.Listener
	results  chan proxyResult
	accepted atomic.Int64
	skipOdd  atomic.Bool // skip Lookup on every other connection
	wg       sync.WaitGroup
}

func startProxy(t *testing.T, lookup func(remote, local netip.AddrPort) (host.Origin, error), addrs []netip.AddrPort) *fakeProxy {
	t.Helper()
	p := &fakeProxy{results: make(chan proxyResult, 2048)}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a.String())
		if err != nil {
			p.close()
			t.Fatalf("listen %v: %v", a, err)
		}
		p.lns = append(p.lns, ln)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				n := p.accepted.Add(1)
				remote := c.RemoteAddr().(*net.TCPAddr).AddrPort()
				local := c.LocalAddr().(*net.TCPAddr).AddrPort()
				if !(p.skipOdd.Load() && n%2 == 1) {
					o, err := lookup(remote, local)
					p.results <- proxyResult{remote: remote, local: local, origin: o, err: err}
				}
				_, _ = io.WriteString(c, "ok\n")
				c.Close()
			}
		}()
	}
	t.Cleanup(p.close)
	return p
}

func (p *fakeProxy) close() {
	for _, ln := range p.lns {
		ln.Close()
	}
	p.wg.Wait()
	p.lns = nil
}

// guard listens on the original destination: anything arriving there went
// around the proxy.
type guard struct {
	ln  net.Listener
	got atomic.Int64
}

func startGuard(t testing.TB, addr netip.AddrPort) *guard {
	t.Helper()
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Fatalf("listen guard %v: %v", addr, err)
	}
	g := &guard{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.got.Add(1)
			_, _ = io.WriteString(c, "guard\n")
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return g
}

type env struct {
	t        testing.TB
	v2       string
	root     string // test cgroup, where programs attach
	enrolled string
	sibling  string
	pinDir   string
	orig     netip.AddrPort // original destination, 127.0.0.x:3306
	guard    *guard
	port     uint16
	nodeAddr netip.Addr
	cfg      Config

	directConnects int64 // connects BenchmarkConnect made to the guard
}

func newEnv(t testing.TB) *env {
	testutil.RequirePrivileged(t)
	v2, err := host.CgroupV2Mount()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, v2: v2}

	// A private bpffs: pins never touch /sys/fs/bpf.
	bpffs := t.TempDir()
	if err := unix.Mount("bpffs", bpffs, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(bpffs, unix.MNT_DETACH) })
	e.pinDir = filepath.Join(bpffs, "sqlwarden")

	e.root = filepath.Join(v2, fmt.Sprintf("sqlwarden-test-%d-%d", os.Getpid(), rand.IntN(1<<30)))
	e.enrolled = filepath.Join(e.root, "enrolled")
	e.sibling = filepath.Join(e.root, "sibling")
	for _, d := range []string{e.root, e.enrolled, filepath.Join(e.enrolled, "child"), e.sibling} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{filepath.Join(e.enrolled, "child"), e.enrolled, e.sibling, e.root} {
			if err := os.Remove(d); err != nil {
				t.Logf("remove cgroup %s: %v", d, err)
			}
		}
	})

	// The original destination: a loopback address only this test uses.
	for range 50 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(rand.IntN(250)), byte(2 + rand.IntN(250))}), 3306)
		ln, err := net.Listen("tcp", a.String())
		if err == nil {
			ln.Close()
			e.orig = a
			break
		}
	}
	if !e.orig.IsValid() {
		t.Fatal("no free 127.0.0.0/8 address for the original destination")
	}
	e.guard = startGuard(t, e.orig)

	// A proxy port free on 127.0.0.1 and ::1.
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ln6, err := net.Listen("tcp", fmt.Sprintf("[::1]:%d", port))
		if err == nil {
			ln6.Close()
			e.port = uint16(port)
			break
		}
	}
	e.nodeAddr = netip.AddrFrom4([4]byte{169, 254, byte(160 + rand.IntN(40)), byte(1 + rand.IntN(250))})
	e.cfg = Config{
		ProxyAddr:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), e.port),
		NodeAddress: e.nodeAddr,
		Ports:       []uint16{3306},
		CgroupRoot:  e.root,
		PinDir:      e.pinDir,
		Log:         slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	t.Cleanup(func() {
		if err := Uninstall(e.pinDir, e.nodeAddr); err != nil {
			t.Logf("uninstall: %v", err)
		}
	})
	return e
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

type helperOpts struct {
	network string // tcp4, tcp6, raw6
	addr    string
	count   int
	mark    bool
	netns   func(pid int) // set up the child's fresh network namespace
}

type helperRun struct {
	pid     int
	results []dialResult
}

// helperCmd returns the test binary as the helper, to be started in the
// cgroup at dir (clone into it: it never runs outside), with env added.
// close releases the cgroup's descriptor once the helper has started.
func helperCmd(t testing.TB, dir string, env ...string) (cmd *exec.Cmd, close func()) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cg, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(exe, "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"=1"), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	return cmd, func() { cg.Close() }
}

// runIn runs the helper in the cgroup at dir and returns its dial results.
func (e *env) runIn(dir string, o helperOpts) helperRun {
	t := e.t
	t.Helper()
	env := []string{"HELPER_NET=" + o.network, "HELPER_ADDR=" + o.addr, fmt.Sprintf("HELPER_COUNT=%d", o.count)}
	if o.mark {
		env = append(env, "HELPER_MARK=1")
	}
	cmd, closeCg := helperCmd(t, dir, env...)
	defer closeCg()
	var err error
	var stdin io.WriteCloser
	if o.netns != nil {
		cmd.SysProcAttr.Cloneflags = unix.CLONE_NEWNET
		cmd.Env = append(cmd.Env, "HELPER_WAIT=1")
		stdin, err = cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper in %s: %v", dir, err)
	}
	if o.netns != nil {
		o.netns(cmd.Process.Pid)
		_, _ = io.WriteString(stdin, "go\n")
		stdin.Close()
	}
	run := helperRun{pid: cmd.Process.Pid}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var r dialResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("helper output %q: %v", sc.Text(), err)
		}
		run.results = append(run.results, r)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v\n%s", err, stderr.String())
	}
	return run
}

func (e *env) dialOnce(dir string, o helperOpts) (int, dialResult) {
	e.t.Helper()
	o.count = 1
	run := e.runIn(dir, o)
	if len(run.results) != 1 {
		e.t.Fatalf("helper returned %d results", len(run.results))
	}
	return run.pid, run.results[0]
}

func recv(t *testing.T, p *fakeProxy) proxyResult {
	t.Helper()
	select {
	case r := <-p.results:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("proxy saw no connection")
		return proxyResult{}
	}
}

func mustID(t *testing.T, path string) uint64 {
	t.Helper()
	id, err := host.CgroupID(path)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// open installs the redirect programs for e (closed at the end of the test).
func (e *env) open() *Redirector {
	e.t.Helper()
	r, err := Open(e.cfg)
	if err != nil {
		e.t.Fatalf("open: %v", err)
	}
	e.t.Cleanup(func() { r.Close() })
	return r
}

func TestRedirect(t *testing.T) {
	e := newEnv(t)
	r := e.open()
	proxy := startProxy(t, r.Lookup, r.ListenAddrs())
	if err := r.Enroll(e.enrolled, nil); err != nil {
		t.Fatalf("enroll: %v", err)
	}
	v4 := helperOpts{network: "tcp4", addr: e.orig.String()}

	t.Run("redirect_and_lookup", func(t *testing.T) {
		pid, res := e.dialOnce(e.enrolled, v4)
		if res.Err != "" || res.Reply != "ok\n" {
			t.Fatalf("dial: %+v (guard got %d)", res, e.guard.got.Load())
		}
		got := recv(t, proxy)
		if got.err != nil {
			t.Fatalf("lookup: %v", got.err)
		}
		// The connecting child started after this test process and before now.
		if st := got.origin.StartTime; st < selfStartTicks(t) || st > uptimeTicks(t) {
			t.Errorf("start time %d ticks, want between this process's start %d and now %d", st, selfStartTicks(t), uptimeTicks(t))
		}
		want := host.Origin{Destination: e.orig, PID: uint32(pid), UID: 0, CgroupID: mustID(t, e.enrolled),
			NetnsCookie: got.origin.NetnsCookie, StartTime: got.origin.StartTime}
		if got.origin != want {
			t.Fatalf("origin = %+v, want %+v", got.origin, want)
		}
		if res.Peer != e.orig.String() {
			t.Errorf("getpeername = %s, want the original %s", res.Peer, e.orig)
		}
		if _, err := r.Lookup(got.remote, got.local); !errors.Is(err, host.ErrNoOrigin) {
			t.Errorf("second lookup: %v, want host.ErrNoOrigin", err)
		}
	})

	t.Run("child_cgroup_of_enrolled", func(t *testing.T) {
		child := filepath.Join(e.enrolled, "child")
		_, res := e.dialOnce(child, v4)
		got := recv(t, proxy)
		if res.Reply != "ok\n" || got.err != nil || got.origin.CgroupID != mustID(t, child) {
			t.Fatalf("res %+v, origin %+v, err %v", res, got.origin, got.err)
		}
	})

	t.Run("sibling_not_redirected", func(t *testing.T) {
		before := e.guard.got.Load()
		_, res := e.dialOnce(e.sibling, v4)
		if res.Reply != "guard\n" || e.guard.got.Load() != before+1 {
			t.Fatalf("sibling dial %+v: want a direct connection", res)
		}
	})

	t.Run("ipv6_loopback", func(t *testing.T) {
		orig6 := netip.AddrPortFrom(netip.IPv6Loopback(), 3306)
		_, res := e.dialOnce(e.enrolled, helperOpts{network: "tcp6", addr: orig6.String()})
		if res.Reply != "ok\n" {
			t.Fatalf("dial: %+v", res)
		}
		got := recv(t, proxy)
		if got.err != nil || got.origin.Destination != orig6 {
			t.Fatalf("origin %+v, err %v", got.origin, got.err)
		}
		if got.local.Addr() != netip.IPv6Loopback() {
			t.Errorf("proxy side %v, want ::1", got.local)
		}
		if res.Peer != orig6.String() {
			t.Errorf("getpeername = %s, want %s", res.Peer, orig6)
		}
	})

	t.Run("ipv4_mapped_dual_stack", func(t *testing.T) {
		mapped := netip.AddrPortFrom(netip.AddrFrom16(e.orig.Addr().As16()), 3306)
		_, res := e.dialOnce(e.enrolled, helperOpts{network: "raw6", addr: mapped.String()})
		if res.Reply != "ok\n" {
			t.Fatalf("dial: %+v", res)
		}
		got := recv(t, proxy)
		if got.err != nil || got.origin.Destination != e.orig {
			t.Fatalf("origin %+v, err %v (remote %v local %v)", got.origin, got.err, got.remote, got.local)
		}
		if res.Peer != mapped.String() {
			t.Errorf("getpeername = %s, want %s", res.Peer, mapped)
		}
	})

	t.Run("own_netns_to_node_address", func(t *testing.T) {
		hostNetns, err := hostNetnsCookie()
		if err != nil {
			t.Fatal(err)
		}
		o := v4
		o.netns = func(pid int) { e.vethInto(pid) }
		_, res := e.dialOnce(e.enrolled, o)
		if res.Reply != "ok\n" {
			t.Fatalf("dial from netns: %+v", res)
		}
		got := recv(t, proxy)
		if got.err != nil || got.origin.Destination != e.orig {
			t.Fatalf("origin %+v, err %v", got.origin, got.err)
		}
		if got.local.Addr() != e.nodeAddr {
			t.Errorf("arrived at %v, want node address %v", got.local, e.nodeAddr)
		}
		if got.origin.NetnsCookie == hostNetns || got.origin.NetnsCookie == 0 {
			t.Errorf("netns cookie %d, want the workload's (host %d)", got.origin.NetnsCookie, hostNetns)
		}
		if res.Peer != e.orig.String() {
			t.Errorf("getpeername = %s, want %s", res.Peer, e.orig)
		}
	})

	t.Run("marked_socket_not_redirected", func(t *testing.T) {
		before, _ := r.Counters()
		g := e.guard.got.Load()
		o := v4
		o.mark = true
		_, res := e.dialOnce(e.enrolled, o)
		if res.Reply != "guard\n" || e.guard.got.Load() != g+1 {
			t.Fatalf("marked dial %+v: want a direct connection", res)
		}
		after, _ := r.Counters()
		if after.SkippedExcluded != before.SkippedExcluded+1 {
			t.Errorf("skipped_excluded %d -> %d", before.SkippedExcluded, after.SkippedExcluded)
		}
	})

	t.Run("proxy_destination_left_alone", func(t *testing.T) {
		if err := r.Enroll(e.enrolled, []uint16{3306, e.port}); err != nil {
			t.Fatal(err)
		}
		defer r.Enroll(e.enrolled, nil)
		before, _ := r.Counters()
		_, res := e.dialOnce(e.enrolled, helperOpts{network: "tcp4", addr: e.cfg.ProxyAddr.String()})
		if res.Reply != "ok\n" {
			t.Fatalf("dial proxy: %+v", res)
		}
		if got := recv(t, proxy); !errors.Is(got.err, host.ErrNoOrigin) {
			t.Errorf("lookup of a direct proxy connection: %+v %v", got.origin, got.err)
		}
		after, _ := r.Counters()
		if after.SkippedProxyDest != before.SkippedProxyDest+1 {
			t.Errorf("skipped_proxy_dest %d -> %d", before.SkippedProxyDest, after.SkippedProxyDest)
		}
	})

	t.Run("refuse_daemon_cgroup", func(t *testing.T) {
		self, err := host.SelfCgroup(e.v2)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{self, e.v2} {
			if err := r.Enroll(p, nil); !errors.Is(err, ErrRefused) {
				t.Errorf("enroll %s: %v, want ErrRefused", p, err)
			}
		}
	})

	t.Run("status", func(t *testing.T) {
		st, err := r.Status()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Enrolled) != 1 || st.Enrolled[0].Path != e.enrolled || fmt.Sprint(st.Enrolled[0].Ports) != "[3306]" {
			t.Errorf("enrolled = %+v", st.Enrolled)
		}
		if st.Counters.Redirected == 0 || st.ProxyAddr != e.cfg.ProxyAddr || st.NodeAddress != e.nodeAddr || st.FailMode != FailClosed {
			t.Errorf("status = %+v", st)
		}
		pinned, err := OpenPinned(e.pinDir)
		if err != nil {
			t.Fatal(err)
		}
		defer pinned.Close()
		st2, err := pinned.Status()
		if err != nil || len(st2.Enrolled) != 1 || st2.Counters.Redirected != st.Counters.Redirected {
			t.Errorf("status from pins = %+v, %v", st2, err)
		}
	})

	t.Run("thousand_connections_leave_no_entries", func(t *testing.T) {
		drain(proxy)
		before, _ := r.Counters()
		proxy.skipOdd.Store(true)
		defer proxy.skipOdd.Store(false)
		run := e.runIn(e.enrolled, helperOpts{network: "tcp4", addr: e.orig.String(), count: 1000})
		for i, res := range run.results {
			if res.Reply != "ok\n" {
				t.Fatalf("connection %d: %+v", i, res)
			}
		}
		hits := 0
		for range 500 {
			if got := recv(t, proxy); got.err == nil && got.origin.PID == uint32(run.pid) {
				hits++
			}
		}
		if hits != 500 {
			t.Errorf("%d of 500 lookups found their origin", hits)
		}
		after, _ := r.Counters()
		if d := after.Released - before.Released; d != 500 {
			t.Errorf("sock_release removed %d unconsumed records, want 500", d)
		}
		if n := countEntries(t, r.maps.SwTuples); n != 0 {
			t.Errorf("%d entries left in the 4-tuple map", n)
		}
	})

	t.Run("daemon_down_fails_closed_and_restart_reuses_pins", func(t *testing.T) {
		if err := r.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		proxy.close()
		g := e.guard.got.Load()
		_, res := e.dialOnce(e.enrolled, v4)
		if !strings.Contains(res.Err, "connection refused") {
			t.Errorf("dial with the daemon down: %+v, want connection refused", res)
		}
		if e.guard.got.Load() != g {
			t.Fatal("a connection reached the original destination while the daemon was down")
		}

		r2, err := Open(e.cfg)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		t.Cleanup(func() { r2.Close() })
		proxy2 := startProxy(t, r2.Lookup, r2.ListenAddrs())
		_, res = e.dialOnce(e.enrolled, v4)
		if res.Reply != "ok\n" {
			t.Fatalf("dial after restart: %+v", res)
		}
		if got := recv(t, proxy2); got.err != nil || got.origin.Destination != e.orig {
			t.Fatalf("origin after restart %+v, %v", got.origin, got.err)
		}

		if err := r2.Unenroll(e.enrolled); err != nil {
			t.Fatalf("unenroll: %v", err)
		}
		_, res = e.dialOnce(e.enrolled, v4)
		if res.Reply != "guard\n" {
			t.Fatalf("dial after unenroll: %+v, want direct", res)
		}
		if err := r2.Unenroll(e.enrolled); !errors.Is(err, ErrNotEnrolled) {
			t.Errorf("second unenroll: %v", err)
		}

		// Enroll from the pins (the CLI path), then uninstall.
		pinned, err := OpenPinned(e.pinDir)
		if err != nil {
			t.Fatal(err)
		}
		if err := pinned.Enroll(e.enrolled, nil); err != nil {
			t.Fatalf("enroll from pins: %v", err)
		}
		pinned.Close()
		_, res = e.dialOnce(e.enrolled, v4)
		if res.Reply != "ok\n" {
			t.Fatalf("dial after enroll from pins: %+v", res)
		}
		recv(t, proxy2)

		r2.Close()
		if err := Uninstall(e.pinDir, e.nodeAddr); err != nil {
			t.Fatalf("uninstall: %v", err)
		}
		if _, err := os.Stat(e.pinDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pin dir after uninstall: %v", err)
		}
		if hasNodeAddr(t, e.nodeAddr) {
			t.Errorf("node address %v still on the node", e.nodeAddr)
		}
		_, res = e.dialOnce(e.enrolled, v4)
		if res.Reply != "guard\n" {
			t.Fatalf("dial after uninstall: %+v, want direct", res)
		}
	})
}

func drain(p *fakeProxy) {
	for {
		select {
		case <-p.results:
		default:
			return
		}
	}
}

func countEntries(t *testing.T, m *ebpf.Map) int {
	t.Helper()
	var (
		k bpfTuple
		v bpfOrigin
		n int
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func hasNodeAddr(t *testing.T, a netip.Addr) bool {
	t.Helper()
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range addrs {
		if x.IP.Equal(a.AsSlice()) {
			return true
		}
	}
	return false
}

// vethInto gives the helper's fresh network namespace a veth pair to the
// host, with link-local addresses the test picks, and a default route.
func (e *env) vethInto(pid int) {
	t := e.t
	t.Helper()
	third := byte(200 + rand.IntN(50))
	hostIP := net.IPv4(169, 254, third, 1)
	peerIP := net.IPv4(169, 254, third, 2)
	name := fmt.Sprintf("swt%d", rand.IntN(1e6))
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(name); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	host, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := netlink.LinkByName(name + "p")
	if err != nil {
		t.Fatal(err)
	}
	mask := net.CIDRMask(30, 32)
	if err := netlink.AddrAdd(host, &netlink.Addr{IPNet: &net.IPNet{IP: hostIP, Mask: mask}}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetNsPid(peer, pid); err != nil {
		t.Fatalf("move veth into netns: %v", err)
	}
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, n := range []string{"lo", name + "p"} {
		l, err := h.LinkByName(n)
		if err != nil {
			t.Fatal(err)
		}
		if n != "lo" {
			if err := h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: peerIP, Mask: mask}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		if n != "lo" {
			if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: hostIP}); err != nil {
				t.Fatalf("default route in netns: %v", err)
			}
		}
	}
}

func TestFailOpen(t *testing.T) {
	e := newEnv(t)
	cfg := e.cfg
	cfg.FailMode = FailOpen
	cfg.NodeAddress = netip.Addr{}
	r, err := Open(cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	proxy := startProxy(t, r.Lookup, r.ListenAddrs())
	if err := r.Enroll(e.enrolled, nil); err != nil {
		t.Fatal(err)
	}
	v4 := helperOpts{network: "tcp4", addr: e.orig.String()}
	if _, res := e.dialOnce(e.enrolled, v4); res.Reply != "ok\n" {
		t.Fatalf("dial with a live heartbeat: %+v", res)
	}
	recv(t, proxy)
	if st, err := r.Status(); err != nil || st.FailMode != FailOpen {
		t.Errorf("status %+v, %v", st, err)
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	proxy.close()
	_, res := e.dialOnce(e.enrolled, v4)
	if res.Reply != "guard\n" {
		t.Fatalf("dial in fail-open with the daemon down: %+v, want direct", res)
	}
	pinned, err := OpenPinned(e.pinDir)
	if err != nil {
		t.Fatal(err)
	}
	defer pinned.Close()
	if c, _ := pinned.Counters(); c.SkippedFailOpen != 1 {
		t.Errorf("skipped_fail_open = %d, want 1", c.SkippedFailOpen)
	}
}

// A restart after the attach cgroup was removed and recreated: the pinned
// links point at a dead cgroup and must be replaced, not reused.
func TestReattachWhenCgroupRecreated(t *testing.T) {
	e := newEnv(t)
	x := filepath.Join(e.root, "x")
	w := filepath.Join(x, "w")
	mk := func() {
		for _, d := range []string{x, w} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	rm := func() {
		for _, d := range []string{w, x} {
			_ = os.Remove(d)
		}
	}
	mk()
	t.Cleanup(rm)
	cfg := e.cfg
	cfg.CgroupRoot = x
	cfg.NodeAddress = netip.Addr{}
	r, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	rm()
	mk()

	r, err = Open(cfg)
	if err != nil {
		t.Fatalf("reopen at recreated cgroup: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	proxy := startProxy(t, r.Lookup, r.ListenAddrs())
	if err := r.Enroll(w, nil); err != nil {
		t.Fatal(err)
	}
	_, res := e.dialOnce(w, helperOpts{network: "tcp4", addr: e.orig.String()})
	if res.Reply != "ok\n" {
		t.Fatalf("dial: %+v", res)
	}
	if got := recv(t, proxy); got.err != nil || got.origin.CgroupID != mustID(t, w) {
		t.Fatalf("origin %+v, %v", got.origin, got.err)
	}
	st, err := r.Status()
	if err != nil {
		t.Fatal(err)
	}
	// The old cgroup's enrollment is stale (no path); the new one resolves.
	var paths []string
	for _, en := range st.Enrolled {
		paths = append(paths, en.Path)
	}
	if !slicesContains(paths, w) {
		t.Errorf("enrolled paths %q, want %s", paths, w)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// selfStartTicks is this process's start time (/proc/self/stat field 22).
func selfStartTicks(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	v, err := strconv.ParseUint(f[19], 10, 64) // field 22 overall; 3 is f[0]
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// uptimeTicks is the time since boot in clock ticks.
func uptimeTicks(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	secs, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(secs*100) + 1
}
