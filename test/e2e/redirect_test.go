package e2e

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/host"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// The go-sql-driver client used inside enrolled cgroups is this test binary
// itself, re-executed with SQLWARDEN_E2E_GOCLIENT set (see TestMain).
func TestMain(m *testing.M) {
	if dsn := os.Getenv("SQLWARDEN_E2E_GOCLIENT"); dsn != "" {
		os.Exit(peerClient(dsn, os.Getenv("SQLWARDEN_E2E_QUERY")))
	}
	if dsn := os.Getenv("SQLWARDEN_E2E_LOADER"); dsn != "" {
		os.Exit(loader(dsn, os.Getenv("SQLWARDEN_E2E_STOPFILE")))
	}
	os.Exit(m.Run())
}

// peerClient connects with go-sql-driver/mysql, prints what getpeername said
// about the server, runs the query and prints the first column.
func peerClient(dsn, query string) int {
	var peer atomic.Value
	gomysql.RegisterDialContext("peer", func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, "tcp", addr)
		if err == nil {
			peer.Store(c.RemoteAddr().String()) // from getpeername(2)
		}
		return c, err
	})
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		fmt.Println("open:", err)
		return 2
	}
	defer db.Close()
	var v string
	if err := db.QueryRow(query).Scan(&v); err != nil {
		fmt.Println("query:", err)
		return 1
	}
	fmt.Printf("peer=%v value=%s\n", peer.Load(), v)
	return 0
}

// redirectEnv is a test-owned slice of the machine: a cgroup subtree where
// the programs attach (never the machine's root cgroup), a private bpffs for
// the pins, an original destination no one else uses, and a daemon.
type redirectEnv struct {
	t        *testing.T
	v2       string // cgroup v2 mount
	root     string // test cgroup (attach point)
	agent    string // enrolled
	sibling  string // not enrolled
	pinDir   string
	orig     string // original destination 127.0.x.y:3306
	guard    *guardListener
	nodeAddr string
	d        *harness.Daemon
}

// guardListener sits on the original destination and counts what reaches it
// directly (i.e. not through the proxy).
type guardListener struct {
	ln    net.Listener
	count atomic.Int64
}

func newGuard(t *testing.T, addr string) *guardListener {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g := &guardListener{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.count.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return g
}

func newRedirectEnv(t *testing.T, extra string) *redirectEnv {
	return newRedirectEnvWith(t, redirectOptions{Extra: extra})
}

// redirectOptions shape newRedirectEnvWith's daemon.
type redirectOptions struct {
	Extra string // top-level YAML appended to the config
	// Identities and Backends, when set, replace the static identity of the
	// agent cgroup and the default backend (YAML under identities: and
	// backends:, indented as the harness expects).
	Identities, Backends string
}

func newRedirectEnvWith(t *testing.T, o redirectOptions) *redirectEnv {
	testutil.RequirePrivileged(t)
	extra := o.Extra
	v2, err := host.CgroupV2Mount()
	if err != nil {
		t.Fatal(err)
	}
	e := &redirectEnv{t: t, v2: v2}
	bpffs := t.TempDir()
	if err := syscall.Mount("bpffs", bpffs, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(bpffs, syscall.MNT_DETACH) })
	e.pinDir = filepath.Join(bpffs, "sqlwarden")
	e.root = filepath.Join(v2, fmt.Sprintf("sqlwarden-e2e-%d-%d", os.Getpid(), rand.IntN(1<<30)))
	e.agent = filepath.Join(e.root, "agent")
	e.sibling = filepath.Join(e.root, "sibling")
	for _, d := range []string{e.root, e.agent, e.sibling} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{e.agent, e.sibling, e.root} {
			evacuate(d, v2)
			if err := os.Remove(d); err != nil {
				t.Logf("remove cgroup %s: %v", d, err)
			}
		}
	})
	for range 50 {
		a := fmt.Sprintf("127.0.%d.%d:3306", 10+rand.IntN(240), 2+rand.IntN(250))
		if ln, err := net.Listen("tcp", a); err == nil {
			ln.Close()
			e.orig = a
			break
		}
	}
	e.guard = newGuard(t, e.orig)
	e.nodeAddr = fmt.Sprintf("169.254.%d.%d", 120+rand.IntN(30), 1+rand.IntN(250))
	rel := strings.TrimPrefix(e.agent, v2)
	m := testutil.StartMariaDB(t)
	port := 0
	for range 50 { // the proxy port must be free on 127.0.0.1, ::1 and the node address
		port = harness.FreePort(t)
		if ln, err := net.Listen("tcp", fmt.Sprintf("[::1]:%d", port)); err == nil {
			ln.Close()
			break
		}
	}
	e.d = harness.Start(t, harness.Options{
		Listen: fmt.Sprintf("127.0.0.1:%d", port),
		Extra: fmt.Sprintf("redirect:\n  enabled: true\n  ports: [3306]\n  node_address: %s\n  cgroup_root: %s\n  pin_dir: %s\n%s",
			e.nodeAddr, e.root, e.pinDir, extra),
		Identities: cmp.Or(o.Identities, fmt.Sprintf("  static:\n    - name: agent-cgroup\n      cgroup: %s\n      backend: default\n", rel)),
		Backends:   cmp.Or(o.Backends, fmt.Sprintf("  - name: default\n    address: %s\n    user: warden\n    password: warden-pass\n", m.Addr)),
	})
	t.Cleanup(func() {
		out, err := exec.Command(harness.Binary(t), "uninstall", "--config", e.d.Config).CombinedOutput()
		if err != nil {
			t.Logf("uninstall: %v %s", err, out)
		}
	})
	e.cli("enroll", "--cgroup", e.agent)
	return e
}

// evacuate moves processes left in a test cgroup to the root so it can be removed.
func evacuate(dir, v2 string) {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	for _, pid := range strings.Fields(string(b)) {
		_ = os.WriteFile(filepath.Join(v2, "cgroup.procs"), []byte(pid), 0o644)
	}
}

func (e *redirectEnv) cli(args ...string) string {
	e.t.Helper()
	args = append(args, "--config", e.d.Config)
	out, err := exec.Command(harness.Binary(e.t), args...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("sqlwarden %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inCgroup runs argv as a process placed in cgroup dir before it execs,
// optionally inside network namespace ns.
func inCgroup(dir, ns string, env []string, argv ...string) *exec.Cmd {
	// Join the cgroup first: `ip netns exec` remounts /sys for the namespace.
	script := `echo $$ > "$0/cgroup.procs" && exec "$@"`
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	cmd := exec.Command("sh", append([]string{"-c", script, dir}, argv...)...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

func (e *redirectEnv) mariadbIn(dir, ns, host, query string) (string, error) {
	h, p, _ := net.SplitHostPort(host)
	// The DSN user and password are the agent's own and wrong on purpose:
	// the proxy binds the workload's identity, not what it types.
	cmd := inCgroup(dir, ns, nil, "mariadb", "-h", h, "-P", p, "-u", "whoever", "-pnot-the-password",
		"--skip-ssl", "--connect-timeout=3", "--batch", "--skip-column-names", "-e", query)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *redirectEnv) goIn(dir, ns, host, query string) (string, error) {
	self, _ := os.Executable()
	dsn := fmt.Sprintf("someone:wrong@peer(%s)/test?timeout=3s", host)
	cmd := inCgroup(dir, ns, []string{"SQLWARDEN_E2E_GOCLIENT=" + dsn, "SQLWARDEN_E2E_QUERY=" + query}, self)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func startsFor(recs []*record.Record, sql string) *record.Record {
	var sessionID string
	for _, p := range harness.Pairs(recs, harness.Stmt("", sql)) {
		sessionID = p.Statement.SessionID
	}
	return harness.SessionEvent(recs, record.EventSessionStart, sessionID)
}

func TestRedirectEnrolledWorkload(t *testing.T) {
	e := newRedirectEnv(t, "")

	// mariadb CLI in the enrolled cgroup, DSN pointing at the original destination.
	out, err := e.mariadbIn(e.agent, "", e.orig, "SELECT CONCAT('via-', 'cli')")
	if err != nil || strings.TrimSpace(out) != "via-cli" {
		t.Fatalf("mariadb in enrolled cgroup: %v\n%s", err, out)
	}
	// go-sql-driver: getpeername returns the original address, not the proxy's.
	out, err = e.goIn(e.agent, "", e.orig, "SELECT CONCAT('via-', 'go')")
	if err != nil || !strings.Contains(out, "value=via-go") || !strings.Contains(out, "peer="+e.orig) {
		t.Fatalf("go client in enrolled cgroup: %v\n%s", err, out)
	}
	// IPv6 loopback is redirected too.
	out, err = e.goIn(e.agent, "", "[::1]:3306", "SELECT 'via-v6'")
	if err != nil || !strings.Contains(out, "value=via-v6") || !strings.Contains(out, "peer=[::1]:3306") {
		t.Fatalf("go client over ::1: %v\n%s", err, out)
	}
	if n := e.guard.count.Load(); n != 0 {
		t.Fatalf("%d connections reached the original destination directly", n)
	}
	// A sibling, not enrolled, connects directly: it reaches the guard and is not audited.
	out, err = e.mariadbIn(e.sibling, "", e.orig, "SELECT 'sibling'")
	if err == nil {
		t.Fatalf("sibling got a MySQL session from the guard?\n%s", out)
	}
	if n := e.guard.count.Load(); n != 1 {
		t.Fatalf("sibling connection did not go direct: guard saw %d", n)
	}

	recs := e.d.Settled(t)
	for _, q := range []string{"SELECT CONCAT('via-', 'cli')", "SELECT CONCAT('via-', 'go')", "SELECT 'via-v6'"} {
		st := startsFor(recs, q)
		if st == nil {
			t.Fatalf("no audited session for %q", q)
		}
		if st.Workload == nil || st.Workload.PID == 0 || st.Workload.CgroupID == 0 || !strings.HasSuffix(st.Workload.Cgroup, "/agent") || st.Workload.Exe == "" {
			t.Errorf("%q: workload %+v", q, st.Workload)
		}
		if st.Identity == nil || st.Identity.Name != "agent-cgroup" || st.Identity.Source != "static" {
			t.Errorf("%q: identity %+v", q, st.Identity)
		}
		if st.Client == nil || st.Client.User == "" {
			t.Errorf("%q: client %+v", q, st.Client)
		}
	}
	if st := startsFor(recs, "SELECT CONCAT('via-', 'cli')"); st.Destination != e.orig {
		t.Errorf("destination %q, want %q", st.Destination, e.orig)
	}
	for _, r := range recs {
		if r.SQL == "SELECT 'sibling'" {
			t.Errorf("the sibling's statement was audited")
		}
	}
	status := e.cli("status")
	if !strings.Contains(status, strings.TrimPrefix(e.agent, e.v2)) && !strings.Contains(status, e.agent) {
		t.Errorf("status does not list the enrolled cgroup:\n%s", status)
	}
}

// newPodNetns makes a pod-like network namespace behind a veth pair, with
// link-local addresses the test assigns (host end, namespace end) and a
// default route to the host. Everything is removed at cleanup.
func newPodNetns(t *testing.T) (ns, hostIP, peerIP string) {
	t.Helper()
	ns = fmt.Sprintf("swe2e%d", rand.IntN(1e6))
	third := 200 + rand.IntN(50)
	hostIP, peerIP = fmt.Sprintf("169.254.%d.1", third), fmt.Sprintf("169.254.%d.2", third)
	veth := fmt.Sprintf("swv%d", rand.IntN(1e6))
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	run("link", "add", veth, "type", "veth", "peer", "name", veth+"p")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", veth).Run() })
	run("addr", "add", hostIP+"/30", "dev", veth)
	run("link", "set", veth, "up")
	run("link", "set", veth+"p", "netns", ns)
	run("-n", ns, "addr", "add", peerIP+"/30", "dev", veth+"p")
	run("-n", ns, "link", "set", veth+"p", "up")
	run("-n", ns, "link", "set", "lo", "up")
	run("-n", ns, "route", "add", "default", "via", hostIP)
	return ns, hostIP, peerIP
}

func TestRedirectFromOwnNetworkNamespace(t *testing.T) {
	e := newRedirectEnv(t, "")
	ns, hostIP, peerIP := newPodNetns(t)

	// The workload's database "lives" at the host end of its veth, an
	// address this test assigned; the redirect sends it to node_address.
	orig := net.JoinHostPort(hostIP, "3306")
	guard := newGuard(t, orig)
	out, err := e.mariadbIn(e.agent, ns, orig, "SELECT 'from-netns'")
	if err != nil || strings.TrimSpace(out) != "from-netns" {
		t.Fatalf("mariadb in netns: %v\n%s\ndaemon:\n%s", err, out, e.d.Log())
	}
	if guard.count.Load() != 0 {
		t.Fatal("the netns connection reached its original destination directly")
	}
	st := startsFor(e.d.Settled(t), "SELECT 'from-netns'")
	if st == nil || st.Destination != orig || st.Workload == nil || st.Workload.Netns == 0 || !strings.HasPrefix(st.Client.Addr, peerIP+":") {
		t.Fatalf("netns session.start: %+v", st)
	}
}

func TestRedirectFailClosedRestartUnenroll(t *testing.T) {
	e := newRedirectEnv(t, "")
	if out, err := e.mariadbIn(e.agent, "", e.orig, "SELECT 'before'"); err != nil {
		t.Fatalf("before: %v\n%s", err, out)
	}
	general := generalLogSize(t)

	// The daemon dies: pinned programs keep redirecting to a dead listener.
	e.d.Kill(t)
	out, err := e.mariadbIn(e.agent, "", e.orig, "SELECT 'while-down'")
	if err == nil || !strings.Contains(out, "2002") && !strings.Contains(out, "Can't connect") {
		t.Fatalf("enrolled connect while the daemon is down: want refused, got %v\n%s", err, out)
	}
	if e.guard.count.Load() != 0 {
		t.Fatal("a connection went around the proxy while it was down")
	}
	if after := generalLogSince(t, general); strings.Contains(after, "while-down") {
		t.Fatal("the statement reached the database while the daemon was down")
	}

	// Restart: redirection works from the pins with no re-enroll.
	e.d.Restart(t)
	if out, err := e.mariadbIn(e.agent, "", e.orig, "SELECT 'after-restart'"); err != nil || strings.TrimSpace(out) != "after-restart" {
		t.Fatalf("after restart: %v\n%s", err, out)
	}
	// Unenroll: the workload connects directly again.
	e.cli("unenroll", "--cgroup", e.agent)
	if _, err := e.mariadbIn(e.agent, "", e.orig, "SELECT 'after-unenroll'"); err == nil {
		t.Fatal("after unenroll the client still got a MySQL session")
	}
	if e.guard.count.Load() != 1 {
		t.Fatalf("after unenroll the connection did not go direct (guard saw %d)", e.guard.count.Load())
	}
}

// generalLogPath is the private MariaDB's general log.
func generalLogPath() string {
	dir := os.Getenv("SQLWARDEN_MARIADB_DIR")
	if dir == "" {
		dir = "/tmp/sqlwarden-mariadb"
	}
	return filepath.Join(dir, "general.log")
}

// generalLogSize is the general log's current size, to read what comes after.
func generalLogSize(t *testing.T) int64 {
	t.Helper()
	st, err := os.Stat(generalLogPath())
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// generalLogSince returns what MariaDB logged after offset.
func generalLogSince(t *testing.T, offset int64) string {
	t.Helper()
	f, err := os.Open(generalLogPath())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRedirectBackendNotLooped puts the daemon itself into the enrolled
// cgroup and lets it dial the original destination (no backend address),
// which is on an enrolled port: only its socket mark keeps the backend
// connection from being redirected back to the proxy.
func TestRedirectBackendNotLooped(t *testing.T) {
	m := testutil.StartMariaDB(t)
	_, mport, _ := net.SplitHostPort(m.Addr)
	e := newRedirectEnv(t, "")
	e.cli("enroll", "--cgroup", e.agent, "--ports", mport)
	// Backends without an address: dial the connection's original destination.
	cfg, err := os.ReadFile(e.d.Config)
	if err != nil {
		t.Fatal(err)
	}
	// First with destinations that do not hold it: the credential goes
	// nowhere else, so the login is refused.
	withDestinations := func(dst string) {
		t.Helper()
		e.d.Stop(t)
		c := strings.Replace(string(cfg), "    address: "+m.Addr+"\n", "    destinations: ["+dst+"]\n", 1)
		if err := os.WriteFile(e.d.Config, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
		e.d.Restart(t)
		if err := os.WriteFile(filepath.Join(e.agent, "cgroup.procs"), []byte(strconv.Itoa(e.d.PID())), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	withDestinations("10.0.0.0/8, 127.0.0.2")
	if out, err := e.mariadbIn(e.agent, "", m.Addr, "SELECT 'elsewhere'"); err == nil || !strings.Contains(out, "is not among its destinations") {
		t.Fatalf("a redirected connection to a destination outside the backend's destinations: %v\n%s", err, out)
	}
	withDestinations("127.0.0.0/8")
	out, err := e.mariadbIn(e.agent, "", m.Addr, "SELECT 'no-loop'")
	if err != nil || strings.TrimSpace(out) != "no-loop" {
		t.Fatalf("client via redirect to the real database: %v\n%s\n%s", err, out, e.d.Log())
	}
	recs := e.d.Settled(t)
	starts := 0
	for _, r := range recs {
		if r.Event == record.EventSessionStart {
			starts++
			if r.Backend == nil || r.Backend.Address != m.Addr {
				t.Errorf("backend %+v, want the original destination %s", r.Backend, m.Addr)
			}
		}
	}
	if starts != 1 {
		t.Fatalf("%d sessions for one client connection: the backend dial looped through the proxy", starts)
	}
}

func (e *redirectEnv) cliBinary() string { return harness.Binary(e.t) }
