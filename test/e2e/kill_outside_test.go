package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// TestKillOutsideProxyRefused: a KILL of a connection that is not the
// agent's — one opened on MariaDB directly, outside the proxy — is refused
// however it is spelled: plainly, as COM_PROCESS_KILL, and hidden behind the
// lexing walk-arounds (a backslash that NO_BACKSLASH_ESCAPES makes
// ordinary, a double-quoted text ANSI_QUOTES makes an identifier) in a
// multi-statement text. Each walk-around is first shown to kill a victim
// when sent to MariaDB directly. The policy allows everything: only the
// proxy's own KILL check stands in the way.
func TestKillOutsideProxyRefused(t *testing.T) {
	d := harness.Start(t, harness.Options{Extra: permissive(t)})
	root := d.Maria.Open(t, "")
	ctx := context.Background()

	// victim opens a connection outside the proxy and returns its thread id.
	victim := func() (*sql.Conn, int) {
		t.Helper()
		c, err := root.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		var id int
		if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
			t.Fatal(err)
		}
		return c, id
	}
	alive := func(id int) bool {
		t.Helper()
		var n int
		if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	// KILL ends the victim's thread asynchronously: it may still be listed
	// for a moment after the statement returned.
	gone := func(id int) bool {
		t.Helper()
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if !alive(id) {
				return true
			}
		}
		return false
	}
	walkArounds := []struct{ mode, text string }{
		{"NO_BACKSLASH_ESCAPES", `SELECT '\'; KILL %d; -- '`},
		{"ANSI_QUOTES", `SELECT 1 AS "\"; KILL %d; -- "`},
		{"ANSI", `SELECT 1 AS "\"; KILL CONNECTION %d; -- "`},
	}

	// Directly, each walk-around kills.
	for _, w := range walkArounds {
		_, id := victim()
		attacker, err := root.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := attacker.ExecContext(ctx, "SET SESSION sql_mode = '"+w.mode+"'"); err != nil {
			t.Fatal(err)
		}
		q := fmt.Sprintf(w.text, id)
		if _, err := attacker.ExecContext(ctx, q); err != nil {
			t.Fatalf("directly in %s: %q: %v", w.mode, q, err)
		}
		attacker.Close()
		if !gone(id) {
			t.Fatalf("directly in %s, %q left thread %d alive: not an attack", w.mode, q, id)
		}
	}

	// Through sqlwarden: refused, and the victim lives.
	vc, id := victim()
	agent := d.Open(t, "")
	if _, err := agent.Exec(fmt.Sprintf("KILL %d", id)); !sqlwardenErr(err, wire.ErrCodeBlocked) {
		t.Errorf("KILL %d of a connection outside the proxy: %v, want ERR 1142 sqlwarden:", id, err)
	}
	for _, w := range walkArounds {
		c, err := agent.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, "SET SESSION sql_mode = '"+w.mode+"'"); err != nil {
			t.Fatalf("SET sql_mode %s through sqlwarden: %v", w.mode, err)
		}
		q := fmt.Sprintf(w.text, id)
		if _, err := c.ExecContext(ctx, q); !sqlwardenErr(err, wire.ErrCodeBlocked) {
			t.Errorf("in %s, %q through sqlwarden: %v, want ERR 1142 sqlwarden:", w.mode, q, err)
		}
		c.Close()
	}
	raw, err := client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	wantErr(t, "COM_PROCESS_KILL of a connection outside the proxy", rawCommand(t, raw, killPacket(uint32(id))...), wire.ErrCodeBlocked, "does not belong")
	if !alive(id) {
		t.Fatalf("thread %d, outside the proxy, was killed through it", id)
	}
	if err := vc.PingContext(ctx); err != nil {
		t.Fatalf("the victim connection: %v", err)
	}
}
