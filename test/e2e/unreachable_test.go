package e2e

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// relay is a TCP forwarder in front of MariaDB that a test can kill (its
// listener and every connection through it) and bring back on the same
// address: a database that goes away and returns.
type relay struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func startRelay(t *testing.T, target string) *relay {
	r := &relay{t: t, addr: "127.0.0.1:0", target: target}
	r.up()
	t.Cleanup(r.kill)
	return r
}

func (r *relay) up() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("relay listen: %v", err)
	}
	r.mu.Lock()
	r.ln, r.addr = ln, ln.Addr().String()
	r.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", r.target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c, b)
			r.mu.Unlock()
			go func() { _, _ = io.Copy(b, c); b.Close() }()
			go func() { _, _ = io.Copy(c, b); c.Close() }()
		}
	}()
}

// kill closes the listener and every relayed connection.
func (r *relay) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

// silentListener accepts connections and never says a word.
func silentListener(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	return ln.Addr().String()
}

// TestBackendUnreachable: with the database gone (its relay killed) or
// silent (accepting TCP, never greeting), every client in the matrix gets
// one clean ERR naming the backend — not a malformed packet, not a hang —
// within the backend's connect_timeout, and the journal a session.denied
// record; once the database is back the daemon serves again at once.
func TestBackendUnreachable(t *testing.T) {
	maria := testutil.StartMariaDB(t)
	setupDB(t, maria, "unreach")
	rl := startRelay(t, maria.Addr)
	silent := silentListener(t)
	certDir := t.TempDir()
	cert, key := writeCert(t, certDir)
	backends := fmt.Sprintf("  - name: default\n    address: %s\n    user: warden\n    password: warden-pass\n    connect_timeout: 2s\n"+
		"  - name: silent\n    address: %s\n    user: warden\n    password: warden-pass\n    connect_timeout: 1s\n", rl.addr, silent)
	ids := fmt.Sprintf("  clients:\n    - user: %s\n      password: %s\n      name: %s\n    - user: agent2\n      password: second-secret\n      name: agent-two\n      backend: silent\n",
		harness.ClientUser, harness.ClientPassword, harness.Identity)
	d := harness.Start(t, harness.Options{Backends: backends, Identities: ids, Extra: fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\n", cert, key)})
	host, port := d.HostPort()

	// Through the relay the database answers.
	db, err := sql.Open("mysql", d.DSN("unreach", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM items").Scan(&n); err != nil || n != 3 {
		t.Fatalf("through the relay: %d %v", n, err)
	}
	db.Close()

	wantErr := func(t *testing.T, what, out, want string) {
		t.Helper()
		if !strings.Contains(out, want) || strings.Contains(out, "alformed") {
			t.Fatalf("%s: output %q, want an error containing %q", what, out, want)
		}
	}
	// The go client's error, its code and how long it took.
	goLogin := func(t *testing.T, user, pass string) (*gomysql.MySQLError, time.Duration) {
		t.Helper()
		db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/", user, pass, d.Listen))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		start := time.Now()
		err = db.Ping()
		took := time.Since(start)
		var me *gomysql.MySQLError
		if !errors.As(err, &me) {
			t.Fatalf("login with the backend down: %v, want a MySQL error", err)
		}
		return me, took
	}

	rl.kill()
	refused := fmt.Sprintf("sqlwarden: backend default at %s unreachable: connection refused", rl.addr)
	me, took := goLogin(t, harness.ClientUser, harness.ClientPassword)
	if me.Number != 1045 || string(me.SQLState[:]) != "08S01" || me.Message != refused || took > 2*time.Second {
		t.Fatalf("relay down: ERR %d (%s) %q after %s, want 1045 (08S01) %q", me.Number, me.SQLState, me.Message, took, refused)
	}
	for _, c := range clientCases {
		t.Run("down/"+c.tag, func(t *testing.T) {
			e := clientEnv{host: host, port: port, user: harness.ClientUser, pass: harness.ClientPassword, db: "unreach", tag: c.tag, ca: cert, failLogin: true}
			wantErr(t, c.tag, c.run(t, e), refused)
		})
	}

	silentMsg := fmt.Sprintf("sqlwarden: backend silent at %s unreachable: no answer within 1s", silent)
	me, took = goLogin(t, "agent2", "second-secret")
	if me.Number != 1045 || me.Message != silentMsg || took < time.Second || took > 1500*time.Millisecond {
		t.Fatalf("silent backend: ERR %d %q after %s, want 1045 %q after its 1s connect_timeout", me.Number, me.Message, took, silentMsg)
	}
	for _, c := range clientCases {
		t.Run("silent/"+c.tag, func(t *testing.T) {
			e := clientEnv{host: host, port: port, user: "agent2", pass: "second-secret", db: "unreach", tag: c.tag, ca: cert, failLogin: true}
			wantErr(t, c.tag, c.run(t, e), silentMsg)
		})
	}

	// The database returns: the next login works, with no restart.
	rl.up()
	back := time.Now()
	for {
		db, err := sql.Open("mysql", d.DSN("unreach", ""))
		if err != nil {
			t.Fatal(err)
		}
		err = db.QueryRow("SELECT COUNT(*) FROM items").Scan(&n)
		db.Close()
		if err == nil {
			break
		}
		if time.Since(back) > time.Second {
			t.Fatalf("not serving 1s after the database returned: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	recs := d.Settled(t)
	down, quiet := 0, 0
	for _, r := range recs {
		if r.Event != record.EventSessionDenied {
			continue
		}
		switch {
		case strings.Contains(r.Reason, "backend default at") && strings.Contains(r.Reason, "unreachable: connection refused"):
			down++
		case strings.Contains(r.Reason, "backend silent at") && strings.Contains(r.Reason, "unreachable: no answer within 1s"):
			quiet++
		}
		if r.Backend == nil || r.Identity == nil {
			t.Errorf("session.denied without backend or identity: %+v", r)
		}
	}
	if down < len(clientCases)+1 || quiet < len(clientCases)+1 {
		t.Errorf("session.denied records: %d for the killed relay, %d for the silent backend; want %d each", down, quiet, len(clientCases)+1)
	}
}

// TestBackendUnreachableAfterSha2: the ERR for an unreachable backend
// follows a caching_sha2_password exchange (full authentication with the
// RSA key, then the fast path) with the right sequence id: go-sql-driver
// checks it and would report a broken connection instead.
func TestBackendUnreachableAfterSha2(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusing := ln.Addr().String() // closed: connecting is refused
	ln.Close()
	backends := fmt.Sprintf("  - name: default\n    address: %s\n    user: warden\n    password: warden-pass\n", refusing)
	d := harness.Start(t, harness.Options{Backends: backends, Extra: "client_auth_plugin: caching_sha2_password\n"})
	dsn := fmt.Sprintf("%s:%s@tcp(%s)/?allowNativePasswords=false", harness.ClientUser, harness.ClientPassword, d.Listen)
	want := fmt.Sprintf("sqlwarden: backend default at %s unreachable: connection refused", refusing)
	for _, path := range []string{"full authentication", "fast authentication"} {
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Ping()
		db.Close()
		var me *gomysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1045 || me.Message != want {
			t.Fatalf("%s: %v, want ERR 1045 %q", path, err, want)
		}
	}
	if r := rawSHA2Login(t, d.Listen, harness.ClientUser, harness.ClientPassword); !r.fast || r.err == nil || r.err.Code != 1045 || r.err.Message != want {
		t.Fatalf("raw fast-path login: %+v", r)
	}
}
