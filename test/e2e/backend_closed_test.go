package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// backendClosedEnds counts the session.end records that say the backend
// closed the session.
func backendClosedEnds(recs []*record.Record) int {
	return harness.Count(recs, func(r *record.Record) bool {
		return r.Event == record.EventSessionEnd && r.Reason == "backend_closed"
	})
}

// waitBackendClosed waits until more than before sessions have ended with
// reason backend_closed.
func waitBackendClosed(t *testing.T, d *harness.Daemon, before int) {
	t.Helper()
	d.WaitRecords(t, "a session.end with reason backend_closed", func(recs []*record.Record) bool {
		return backendClosedEnds(recs) > before
	})
}

// interactive runs a client script that prints "id N" once connected, waits
// for a line on its stdin, then prints "after M".
type interactive struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	errb  *strings.Builder
}

func startInteractive(t *testing.T, e clientEnv, dir, name string, args ...string) (*interactive, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, e.environ()
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &interactive{cmd: cmd, stdin: in, out: bufio.NewReader(outp), errb: &strings.Builder{}}
	cmd.Stderr = p.errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := p.out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "id ") {
		_ = cmd.Wait()
		t.Fatalf("%s: first line %q (%v)\n%s", name, line, err, p.errb)
	}
	return p, strings.TrimSpace(strings.TrimPrefix(line, "id "))
}

// resume lets the script go on and returns its "after" thread id.
func (p *interactive) resume(t *testing.T) string {
	t.Helper()
	fmt.Fprintln(p.stdin, "go")
	p.stdin.Close()
	line, _ := p.out.ReadString('\n')
	if err := p.cmd.Wait(); err != nil || !strings.HasPrefix(line, "after ") {
		t.Fatalf("%v: %q (%v)\n%s", p.cmd.Args, line, err, p.errb)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "after "))
}

// TestBackendClosesSession: when the backend closes a session (its
// wait_timeout, a DBA's KILL), sqlwarden closes the client's connection at
// once with a session.end record saying backend_closed, so pools that check
// their idle connections see them closed and open fresh ones instead of
// handing out a dead one.
func TestBackendClosesSession(t *testing.T) {
	d := harness.Start(t, harness.Options{Extra: permissive(t)})
	root := d.Maria.Open(t, "")
	host, port := d.HostPort()

	t.Run("go-sql-driver pool, wait_timeout", func(t *testing.T) {
		before := backendClosedEnds(d.Records(t))
		// The driver runs SET wait_timeout=1 on each new connection;
		// SetConnMaxIdleTime stays unset.
		db, err := sql.Open("mysql", d.DSN("", "wait_timeout=1"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var first, second int
		if err := db.QueryRow("SELECT CONNECTION_ID()").Scan(&first); err != nil {
			t.Fatal(err)
		}
		waitBackendClosed(t, d, before)
		if err := db.QueryRow("SELECT CONNECTION_ID()").Scan(&second); err != nil {
			t.Fatalf("query after the backend closed the idle connection: %v", err)
		}
		if second == first {
			t.Fatalf("the pool reused backend thread %d", first)
		}
	})

	t.Run("PyMySQL ping(reconnect=True)", func(t *testing.T) {
		before := backendClosedEnds(d.Records(t))
		e := clientEnv{host: host, port: port, user: harness.ClientUser, pass: harness.ClientPassword}
		p, first := startInteractive(t, e, clientsDir(), "/usr/bin/python3", "python/ping.py")
		waitBackendClosed(t, d, before)
		if after := p.resume(t); after == first {
			t.Fatalf("ping(reconnect=True) kept backend thread %s", first)
		}
	})

	t.Run("mysql2 pool", func(t *testing.T) {
		nodeDeps(t)
		before := backendClosedEnds(d.Records(t))
		e := clientEnv{host: host, port: port, user: harness.ClientUser, pass: harness.ClientPassword}
		p, first := startInteractive(t, e, filepath.Join(clientsDir(), "node"), "node", "pool.js")
		waitBackendClosed(t, d, before)
		if after := p.resume(t); after == first {
			t.Fatalf("the mysql2 pool reused backend thread %s", first)
		}
	})

	t.Run("KILL while idle", func(t *testing.T) {
		c, err := client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r, err := c.Execute("SELECT CONNECTION_ID()")
		if err != nil {
			t.Fatal(err)
		}
		thread, _ := r.GetInt(0, 0)
		before := backendClosedEnds(d.Records(t))
		raw := c.Conn.Conn
		_ = raw.SetReadDeadline(time.Now().Add(3 * time.Second))
		killed := time.Now()
		mustExec(t, root, fmt.Sprintf("KILL %d", thread))
		n, err := raw.Read(make([]byte, 1))
		took := time.Since(killed)
		if n != 0 || err == nil || isTimeout(err) || took > time.Second {
			t.Fatalf("client side after KILL: read %d bytes, %v after %s; want the connection closed within 1s", n, err, took)
		}
		waitBackendClosed(t, d, before)
	})

	t.Run("KILL mid-statement", func(t *testing.T) {
		db := d.Open(t, "")
		conn, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var thread int
		if err := conn.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&thread); err != nil {
			t.Fatal(err)
		}
		before := backendClosedEnds(d.Records(t))
		done := make(chan error, 1)
		go func() {
			_, err := conn.ExecContext(context.Background(), "SELECT SLEEP(30)")
			done <- err
		}()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var n int
			if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.processlist WHERE id = ? AND info LIKE 'SELECT SLEEP%'", thread).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the statement never started on the backend")
			}
			time.Sleep(10 * time.Millisecond)
		}
		mustExec(t, root, fmt.Sprintf("KILL %d", thread))
		select {
		case err := <-done:
			// The proxy's own ERR: a server-range code every client
			// library accepts from a server (MariaDB's "connection
			// killed"), the message saying who speaks.
			if !sqlwardenErr(err, 1927) {
				t.Fatalf("SELECT SLEEP(30) on a killed connection: %v, want ERR 1927 sqlwarden: lost connection", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the killed statement did not return within 5s")
		}
		waitBackendClosed(t, d, before)
	})

	// The mariadb CLI (libmariadb) rejects an ERR with a client-range code
	// (2xxx) from a server as a malformed packet (2027): the proxy's ERR for a
	// lost backend must be one it prints as it is.
	t.Run("KILL mid-statement, mariadb CLI", func(t *testing.T) {
		before := backendClosedEnds(d.Records(t))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "mariadb", "-h", host, "-P", port, "-u", harness.ClientUser, "-p"+harness.ClientPassword,
			"--skip-ssl", "--batch", "-e", "SELECT 'kill-me-cli', SLEEP(30)")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var thread int
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := root.QueryRow("SELECT id FROM information_schema.processlist WHERE info LIKE 'SELECT %kill-me-cli%' AND command = 'Query' AND id <> CONNECTION_ID()").Scan(&thread)
			if err == nil {
				break
			}
			if !errors.Is(err, sql.ErrNoRows) {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("the CLI's statement never started on the backend\n%s", out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		mustExec(t, root, fmt.Sprintf("KILL %d", thread))
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("mariadb succeeded although its backend connection was killed:\n%s", out.String())
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the CLI did not return within 5s of the KILL")
		}
		got := out.String()
		if !strings.Contains(got, "ERROR 1927 (70100)") || !strings.Contains(got, "sqlwarden: lost connection to the database") || strings.Contains(got, "2027") {
			t.Fatalf("mariadb CLI after the KILL:\n%s\nwant ERROR 1927 (70100) with the sqlwarden: message, not 2027 malformed packet", got)
		}
		waitBackendClosed(t, d, before)
	})
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
