package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// ownMariaDB is a MariaDB of the test's own (scripts/mariadb.sh on a free
// port and a temporary data directory), which the test may kill.
type ownMariaDB struct {
	t    *testing.T
	addr string
	dir  string
	env  []string
}

func startOwnMariaDB(t *testing.T) *ownMariaDB {
	t.Helper()
	port := harness.FreePort(t)
	m := &ownMariaDB{t: t, addr: fmt.Sprintf("127.0.0.1:%d", port), dir: t.TempDir()}
	m.env = append(os.Environ(), fmt.Sprintf("SQLWARDEN_MARIADB_PORT=%d", port), "SQLWARDEN_MARIADB_DIR="+m.dir)
	m.start()
	t.Cleanup(m.kill)
	return m
}

// start starts it and returns once it answers.
func (m *ownMariaDB) start() {
	cmd := exec.Command("bash", filepath.Join(testutil.RepoRoot(), "scripts", "mariadb.sh"), "start")
	cmd.Env = m.env
	if out, err := cmd.CombinedOutput(); err != nil {
		m.t.Fatalf("start own mariadb: %v\n%s", err, out)
	}
}

// kill ends it with SIGKILL (a crash) and waits until it is gone.
func (m *ownMariaDB) kill() {
	b, err := os.ReadFile(filepath.Join(m.dir, "mysqld.pid"))
	if err != nil {
		return
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 500 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	_ = os.Remove(filepath.Join(m.dir, "mysqld.pid"))
}

func (m *ownMariaDB) root(t *testing.T) *sql.DB {
	db, err := sql.Open("mysql", fmt.Sprintf("root:@tcp(%s)/?multiStatements=true", m.addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// sqlwardenErr reports whether err is an ERR from the proxy with one of codes.
func sqlwardenErr(err error, codes ...uint16) bool {
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || !strings.HasPrefix(me.Message, "sqlwarden:") {
		return false
	}
	for _, c := range codes {
		if me.Number == c {
			return true
		}
	}
	return false
}

// TestBackendKilledMidLoad: one backend (a MariaDB of the test's own) is
// killed with SIGKILL under load and started again. Statements in flight end
// with the proxy's ERR 1927 "sqlwarden: lost connection ..." (MariaDB's code
// for a killed connection, not 2013, a client library's own code that
// libmariadb refuses from a server); logins while it is down get a clean 1045;
// every statement record has its outcome, and every statement MariaDB's
// general log shows was run has its statement record; a new session works
// within 1 s of the database's return; sessions on the other backend (the
// usual private MariaDB) see no error at all, before, during or after.
func TestBackendKilledMidLoad(t *testing.T) {
	steadyDB := testutil.StartMariaDB(t)
	setupDB(t, steadyDB, "steady")
	flaky := startOwnMariaDB(t)
	froot := flaky.root(t)
	if _, err := froot.Exec("CREATE DATABASE IF NOT EXISTS flaky"); err != nil {
		t.Fatal(err)
	}
	backends := fmt.Sprintf("  - name: flaky\n    address: %s\n    user: warden\n    password: warden-pass\n    connect_timeout: 2s\n"+
		"  - name: steady\n    address: %s\n    user: warden\n    password: warden-pass\n", flaky.addr, steadyDB.Addr)
	ids := "  clients:\n    - user: agent-f\n      password: pf\n      name: agent-flaky\n      backend: flaky\n" +
		"    - user: agent-s\n      password: ps\n      name: agent-steady\n      backend: steady\n"
	d := harness.Start(t, harness.Options{Backends: backends, Identities: ids})
	open := func(user, pass, db string) *sql.DB {
		c, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/%s?timeout=5s", user, pass, d.Listen, db))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	fdb, sdb := open("agent-f", "pf", "flaky"), open("agent-s", "ps", "steady")
	genLog := filepath.Join(flaky.dir, "general.log")

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	var inflightLost, down1045, idleClosed, flakyOK, steadyOK, steadyDuringOutage atomic.Int64
	var outage atomic.Bool
	unexpected := make(chan error, 100)
	report := func(err error) {
		select {
		case unexpected <- err:
		default:
		}
	}
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				var v string
				var z int
				err := fdb.QueryRow(fmt.Sprintf("SELECT 'fault-%d-%d', SLEEP(0.05)", w, i)).Scan(&v, &z)
				switch {
				case err == nil:
					flakyOK.Add(1)
				case sqlwardenErr(err, 1927):
					inflightLost.Add(1)
				case sqlwardenErr(err, 1045) && strings.Contains(err.Error(), "unreachable"):
					down1045.Add(1)
					time.Sleep(20 * time.Millisecond)
				case outage.Load() && errors.Is(err, gomysql.ErrInvalidConn):
					// An idle session ends as soon as its backend hangs
					// up (as a direct connection to a crashed MariaDB
					// would); a statement sent at that moment meets the
					// closed socket. The proxy never read it: the journal
					// and general log comparison below shows none is lost.
					idleClosed.Add(1)
				default:
					report(fmt.Errorf("flaky backend statement: %w", err))
					time.Sleep(20 * time.Millisecond)
				}
			}
		}(w)
	}
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				var v string
				if err := sdb.QueryRow(fmt.Sprintf("SELECT 'steady-%d-%d'", w, i)).Scan(&v); err != nil {
					report(fmt.Errorf("steady backend disturbed: %w", err))
					continue
				}
				steadyOK.Add(1)
				if outage.Load() {
					steadyDuringOutage.Add(1)
				}
			}
		}(w)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("load on the flaky backend", func() bool { return flakyOK.Load() > 30 })

	outage.Store(true)
	flaky.kill()
	waitFor("in-flight statements to fail", func() bool { return inflightLost.Load() > 0 })
	waitFor("logins to be refused while it is down", func() bool { return down1045.Load() > 0 })
	okBefore := flakyOK.Load()
	flaky.start() // returns once MariaDB answers its own ping
	back := time.Now()
	outage.Store(false)
	// A new session through the proxy works within 1 s of the return.
	probe := open("agent-f", "pf", "flaky")
	for {
		var v int
		err := probe.QueryRow("SELECT 1").Scan(&v)
		if err == nil {
			break
		}
		if time.Since(back) > time.Second {
			t.Fatalf("no new session on the returned backend within 1s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("new session %v after the database answered again", time.Since(back))
	waitFor("the load to resume on the returned backend", func() bool { return flakyOK.Load() > okBefore+20 })
	stop()
	wg.Wait()
	close(unexpected)
	for err := range unexpected {
		t.Error(err)
	}
	t.Logf("flaky: %d ok, %d in flight ended with 1927, %d met a session closed while idle, %d logins refused with 1045; steady: %d ok (%d during the outage)",
		flakyOK.Load(), inflightLost.Load(), idleClosed.Load(), down1045.Load(), steadyOK.Load(), steadyDuringOutage.Load())
	if steadyDuringOutage.Load() == 0 {
		t.Error("the steady backend served nothing during the outage")
	}

	// The journal against the general log.
	pairs := harness.Pairs(d.WaitOutcomes(t), harness.Stmt("", ""))
	journaled := map[string]harness.StatementPair{} // marker -> statement and outcome
	marker := regexp.MustCompile(`fault-\d+-\d+`)
	missing := 0
	for _, p := range pairs {
		r := p.Statement
		if m := marker.FindString(r.SQL); m != "" {
			journaled[m] = p
		}
		if p.Outcome == nil {
			missing++
			if missing < 5 {
				t.Errorf("statement %q (session %v #%v) has no outcome record", r.SQL, r.SessionID, r.StatementID)
			}
		}
	}
	f, err := os.Open(genLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ran := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if m := marker.FindString(sc.Text()); m != "" {
			ran[m] = true
		}
	}
	for m := range ran {
		if journaled[m].Statement == nil {
			t.Errorf("MariaDB ran %s but the journal has no statement record of it", m)
		}
	}
	for m, p := range journaled {
		o := p.Outcome
		if o != nil && o.Status == record.StatusSuccess && !ran[m] {
			t.Errorf("the journal says %s succeeded but MariaDB's general log does not show it", m)
		}
	}
	if len(ran) == 0 {
		t.Fatal("the general log shows no statement: the comparison proved nothing")
	}
	t.Logf("%d statements in the general log, %d journaled, %d statement records without outcome", len(ran), len(journaled), missing)
}

// delayRelay forwards TCP to target, holding every chunk for delay in each
// direction: a slow database (or a slow network to it).
func delayRelay(t *testing.T, target string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	pipe := func(dst, src net.Conn) {
		defer dst.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				time.Sleep(delay)
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, b)
			mu.Unlock()
			go pipe(b, c)
			go pipe(c, b)
		}
	}()
	return ln.Addr().String()
}

// TestSlowBackendDoesNotStallOthers: twenty sessions on a backend behind a
// relay that holds every chunk for 500 ms (a login takes several round trips,
// seconds; a statement one) do not stall the sessions of another backend or
// the admin API: anything waiting behind a slow login or statement would
// take at least a second, so none may; the median stays that of an idle
// daemon.
func TestSlowBackendDoesNotStallOthers(t *testing.T) {
	m := testutil.StartMariaDB(t)
	setupDB(t, m, "slowfast")
	slow := delayRelay(t, m.Addr, 500*time.Millisecond)
	backends := fmt.Sprintf("  - name: slow\n    address: %s\n    user: warden\n    password: warden-pass\n    connect_timeout: 20s\n"+
		"  - name: fast\n    address: %s\n    user: warden\n    password: warden-pass\n", slow, m.Addr)
	ids := "  clients:\n    - user: agent-slow\n      password: p1\n      name: agent-slow\n      backend: slow\n" +
		"    - user: agent-fast\n      password: p2\n      name: agent-fast\n      backend: fast\n"
	d := harness.Start(t, harness.Options{Backends: backends, Identities: ids})
	sdb, err := sql.Open("mysql", fmt.Sprintf("agent-slow:p1@tcp(%s)/slowfast?timeout=30s", d.Listen))
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	fdb, err := sql.Open("mysql", fmt.Sprintf("agent-fast:p2@tcp(%s)/slowfast", d.Listen))
	if err != nil {
		t.Fatal(err)
	}
	defer fdb.Close()
	fdb.SetMaxOpenConns(2)

	var slowDone atomic.Int64
	var wg sync.WaitGroup
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var v int
				if err := sdb.QueryRowContext(ctx, "SELECT 1").Scan(&v); err == nil {
					slowDone.Add(1)
				}
			}
		}()
	}
	// While the slow sessions log in and run, the fast backend and the admin
	// API answer as usual.
	var fast, admin []time.Duration
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		start := time.Now()
		var v string
		if err := fdb.QueryRow("SELECT 'fast'").Scan(&v); err != nil {
			t.Fatalf("fast backend: %v", err)
		}
		fast = append(fast, time.Since(start))
		start = time.Now()
		resp, err := http.Get("http://" + d.Admin + "/metrics")
		if err != nil {
			t.Fatalf("admin API: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		admin = append(admin, time.Since(start))
	}
	stop()
	slices.Sort(fast)
	slices.Sort(admin)
	t.Logf("%d fast statements: median %v, slowest %v; /metrics: median %v, slowest %v; %d slow statements finished",
		len(fast), fast[len(fast)/2], fast[len(fast)-1], admin[len(admin)/2], admin[len(admin)-1], slowDone.Load())
	if w := fast[len(fast)-1]; w >= time.Second {
		t.Errorf("a statement on the fast backend took %v while the slow one was busy", w)
	}
	if w := admin[len(admin)-1]; w >= time.Second {
		t.Errorf("the admin API took %v while the slow backend was busy", w)
	}
	if m := fast[len(fast)/2]; m > 50*time.Millisecond {
		t.Errorf("median statement on the fast backend %v while the slow one was busy", m)
	}
	if slowDone.Load() == 0 {
		t.Error("no statement finished on the slow backend: the relay was not slow but dead, and the test proves nothing")
	}
	wg.Wait()
}

// TestJournalDiskFullUnderLoad: eight clients insert while the journal's
// file system (a small tmpfs) fills up. Every statement is then refused with
// 1180 and never reaches the database; once space returns every client is
// served again without a restart; every row in the table has its statement
// record, and `sqlwarden audit verify` passes on the journal afterwards.
func TestJournalDiskFullUnderLoad(t *testing.T) {
	testutil.RequirePrivileged(t)
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	m := testutil.StartMariaDB(t)
	root := setupDB(t, m, "diskfull")
	mustExec(t, root, "CREATE TABLE diskfull.t (w INT, i INT, PRIMARY KEY (w, i))")
	d := harness.Start(t, harness.Options{AuditDir: filepath.Join(mnt, "audit")})
	db := d.Open(t, "diskfull")
	db.SetMaxOpenConns(8)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var refused, okAfter atomic.Int64
	var spaceBack atomic.Bool
	errs := make(chan error, 100)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				_, err := db.Exec(fmt.Sprintf("INSERT INTO t VALUES (%d, %d)", w, i))
				switch {
				case err == nil:
					if spaceBack.Load() {
						okAfter.Add(1)
					}
				case sqlwardenErr(err, 1180):
					refused.Add(1)
					time.Sleep(5 * time.Millisecond)
				default:
					select {
					case errs <- fmt.Errorf("worker %d insert %d: %w", w, i, err):
					default:
					}
				}
			}
		}(w)
	}
	time.Sleep(300 * time.Millisecond) // some load before the disk fills (not synchronisation)
	filler := filepath.Join(mnt, "filler")
	out, _ := exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=4k").CombinedOutput()
	if !strings.Contains(string(out), "No space left") {
		t.Fatalf("could not fill tmpfs: %s", out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for refused.Load() < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d statements refused with the journal's disk full", refused.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Space returns: service resumes by itself.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	spaceBack.Store(true)
	for okAfter.Load() < 100 {
		if time.Since(back) > 20*time.Second {
			out, _ := exec.Command("sh", "-c", "df -k "+mnt+"; ls -la "+filepath.Join(mnt, "audit")).CombinedOutput()
			t.Fatalf("service did not resume within 20s of space returning (%d statements served)\n%s", okAfter.Load(), out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d refused with 1180 while full; served again %v after space returned", refused.Load(), time.Since(back))
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Every row in the table was journaled first.
	recs := d.WaitOutcomes(t)
	journaled := map[string]bool{}
	for _, r := range recs {
		if r.Event == record.EventStatement {
			journaled[r.SQL] = true
		}
	}
	rows, err := root.Query("SELECT w, i FROM diskfull.t")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var w, i int
		if err := rows.Scan(&w, &i); err != nil {
			t.Fatal(err)
		}
		n++
		if !journaled[fmt.Sprintf("INSERT INTO t VALUES (%d, %d)", w, i)] {
			t.Errorf("row (%d, %d) is in the table but has no statement record", w, i)
		}
	}
	rows.Close()
	t.Logf("%d rows, all journaled", n)
	d.Stop(t)
	if out, err := exec.Command(harness.Binary(t), "audit", "verify", "--dir", d.AuditDir).CombinedOutput(); err != nil {
		t.Fatalf("audit verify after the disk filled and emptied: %v\n%s", err, out)
	} else {
		t.Logf("audit verify: %s", strings.TrimSpace(string(out)))
	}
}
