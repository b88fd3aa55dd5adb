package harness

import (
	"bytes"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds bin/sqlwarden once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sqlwarden-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "sqlwarden")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/sqlwarden")
		cmd.Dir = testutil.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1. Each is held
// open until all are picked: ports picked one after another, each closed
// before the next, can come back twice (a daemon whose listen and admin
// addresses were the same port failed to start that way).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// Options shape a daemon's configuration.
type Options struct {
	// Extra is YAML appended to the generated config (top-level keys other
	// than those the harness writes: listen, admin_listen, backends, audit,
	// identities unless Identities is set).
	Extra string
	// Identities replaces the default identities section (an explicit
	// client "agent" / "agent-secret").
	Identities string
	// Audit adds keys under audit: (indented by the harness).
	Audit string
	// AuditDir overrides where the journal lives.
	AuditDir string
	// Backends replaces the default backend list (warden @ private MariaDB).
	Backends string
	// Listen overrides the proxy listen address.
	Listen string
	// Node names the daemon (default test-node).
	Node string
	Env  []string
	// Config, when set, returns the whole config file in place of the one
	// generated from the options above (d.Listen, d.Admin, d.AuditDir,
	// d.Dir and d.Maria are set when it is called): for tests of a shipped
	// configuration.
	Config func(d *Daemon) string
}

// Daemon is a running sqlwarden.
type Daemon struct {
	Listen   string
	Admin    string
	AuditDir string
	RingDir  string // the journal's ring (audit.ring_dir)
	Dir      string
	Config   string
	Maria    testutil.MariaDB
	cmd      *exec.Cmd
	log      *lockedBuffer
	done     chan struct{}
	bin      string
	env      []string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Client credentials of the default explicit identity.
const (
	ClientUser     = "agent"
	ClientPassword = "agent-secret"
	Identity       = "test-agent"
)

// Start writes a config and starts the daemon; it is stopped at cleanup.
func Start(t testing.TB, o Options) *Daemon {
	t.Helper()
	m := testutil.StartMariaDB(t)
	dir := t.TempDir()
	d := &Daemon{Dir: dir, AuditDir: filepath.Join(dir, "audit"), Maria: m, bin: Binary(t), env: o.Env}
	if o.AuditDir != "" {
		d.AuditDir = o.AuditDir
	}
	d.RingDir = ringDir(t, dir)
	d.pickPorts(t, o.Listen)
	backends := o.Backends
	if backends == "" {
		backends = fmt.Sprintf("  - name: default\n    address: %s\n    user: warden\n    password: warden-pass\n", m.Addr)
	}
	ids := o.Identities
	if ids == "" {
		ids = fmt.Sprintf("  clients:\n    - user: %s\n      password: %s\n      name: %s\n", ClientUser, ClientPassword, Identity)
	}
	var b strings.Builder
	node := o.Node
	if node == "" {
		node = "test-node"
	}
	fmt.Fprintf(&b, "node: %s\nlog_level: debug\n", node)
	fmt.Fprintf(&b, "backends:\n%s", backends)
	fmt.Fprintf(&b, "identities:\n%s", ids)
	fmt.Fprintf(&b, "audit:\n  dir: %s\n", d.AuditDir)
	if !strings.Contains(o.Audit, "ring_dir:") {
		fmt.Fprintf(&b, "  ring_dir: %s\n", d.RingDir)
	}
	for _, line := range strings.Split(strings.TrimRight(o.Audit, "\n"), "\n") {
		if line != "" {
			fmt.Fprintf(&b, "  %s\n", line)
		}
	}
	b.WriteString(o.Extra)
	d.Config = filepath.Join(dir, "config.yaml")
	for attempt := 1; ; attempt++ {
		text := fmt.Sprintf("listen: %s\nadmin_listen: %s\n", d.Listen, d.Admin) + b.String()
		if o.Config != nil {
			text = o.Config(d)
		}
		if err := os.WriteFile(d.Config, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		err := d.tryStart()
		if err == nil {
			break
		}
		// A port picked here was taken by someone else (another test
		// package runs beside this one) between picking and binding.
		if attempt < 3 && strings.Contains(d.Log(), "address already in use") {
			d.pickPorts(t, o.Listen)
			continue
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Stop(t)
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.Log())
		}
	})
	return d
}

// ringDir is a directory of the test's own for the journal's ring: under
// /dev/shm, where the daemon's default puts it, else beside the journal.
// Whether it is a memory file system is the daemon's to judge (it warns).
func ringDir(t testing.TB, dir string) string {
	if d, err := os.MkdirTemp("/dev/shm", "sqlwarden-test-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(d) }) // after the daemon stopped
		return d
	}
	return filepath.Join(dir, "ring")
}

// pickPorts chooses the admin address, and the listen address unless the
// test gave one, on ports free now and distinct from each other.
func (d *Daemon) pickPorts(t testing.TB, listen string) {
	t.Helper()
	if listen == "" {
		p := FreePorts(t, 2)
		d.Listen = fmt.Sprintf("127.0.0.1:%d", p[0])
		d.Admin = fmt.Sprintf("127.0.0.1:%d", p[1])
		return
	}
	// Of two distinct free ports at least one is not the listen port.
	p := FreePorts(t, 2)
	if strings.HasSuffix(listen, fmt.Sprintf(":%d", p[0])) {
		p[0] = p[1]
	}
	d.Listen = listen
	d.Admin = fmt.Sprintf("127.0.0.1:%d", p[0])
}

func (d *Daemon) start(t testing.TB) {
	t.Helper()
	if err := d.tryStart(); err != nil {
		t.Fatal(err)
	}
}

// tryStart starts the daemon and waits until it is ready; an error says
// why it is not (its log included).
func (d *Daemon) tryStart() error {
	d.log = &lockedBuffer{}
	d.cmd = exec.Command(d.bin, "run", "--config", d.Config)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.Env = append(os.Environ(), d.env...)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return err
	}
	d.done = make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return fmt.Errorf("sqlwarden exited during start: %v\n%s", d.cmd.ProcessState, d.Log())
		default:
		}
		resp, err := http.Get("http://" + d.Admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Not ready: stop it, so a failed start leaves nothing running.
	_ = d.cmd.Process.Kill()
	<-d.done
	return fmt.Errorf("sqlwarden not ready after 30s:\n%s", d.Log())
}

// Restart starts the daemon again with the same config (after Stop or Kill).
func (d *Daemon) Restart(t testing.TB) { d.start(t) }

// Log returns what the daemon printed.
func (d *Daemon) Log() string { return d.log.String() }

// PID returns the daemon's process id.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Stop sends SIGTERM and waits for a drained exit.
func (d *Daemon) Stop(t testing.TB) {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Errorf("sqlwarden did not exit within 20s of SIGTERM")
	}
}

// Kill sends SIGKILL (a crash) and waits.
func (d *Daemon) Kill(t testing.TB) {
	_ = d.cmd.Process.Kill()
	<-d.done
}

// Signal sends sig to the daemon.
func (d *Daemon) Signal(sig os.Signal) error { return d.cmd.Process.Signal(sig) }

// DSN returns a go-sql-driver DSN through the proxy.
func (d *Daemon) DSN(db string, params string) string {
	if params == "" {
		params = "multiStatements=true"
	}
	return fmt.Sprintf("%s:%s@tcp(%s)/%s?%s", ClientUser, ClientPassword, d.Listen, db, params)
}

// Open connects through the proxy with go-sql-driver/mysql.
func (d *Daemon) Open(t testing.TB, db string) *sql.DB {
	t.Helper()
	conn, err := sql.Open("mysql", d.DSN(db, ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// HostPort splits the listen address.
func (d *Daemon) HostPort() (string, string) {
	h, p, _ := net.SplitHostPort(d.Listen)
	return h, p
}
