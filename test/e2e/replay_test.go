package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

func replayFixture(t *testing.T, m testutil.MariaDB) {
	t.Helper()
	root := m.Open(t, "")
	for _, q := range []string{
		"DROP DATABASE IF EXISTS rp",
		"CREATE DATABASE rp",
		"CREATE TABLE rp.items (id INT PRIMARY KEY, name VARCHAR(20), qty INT)",
		"INSERT INTO rp.items VALUES (1,'apple',10),(2,'pear',20),(3,'plum',30)",
	} {
		mustExec(t, root, q)
	}
}

// TestReplayRecordedSession records a session through the proxy (a USE,
// text and prepared statements, a write, an error), replays it against a
// second MariaDB: all match; then a changed row there is a divergence; and
// the recorded backend itself is refused without --force.
func TestReplayRecordedSession(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	replayFixture(t, d.Maria)
	c, err := client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.UseDB("rp"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SET @min = 15", "SELECT id, name FROM items WHERE qty > @min ORDER BY id", "UPDATE items SET qty = qty + 1 WHERE id = 1"} {
		if _, err := c.Execute(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	st, err := c.Prepare("SELECT name, qty FROM items WHERE id >= ? AND name <> ?")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Execute(2, "zzz"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := c.Execute("SELECT * FROM missing_table"); err == nil {
		t.Fatal("missing table did not error")
	}
	c.Close()
	recs := d.Settled(t)
	var session string
	for _, r := range recs {
		if r.Event == record.EventStatement && r.SQL == "SET @min = 15" {
			session = r.SessionID
		}
	}
	if session == "" {
		t.Fatal("session not recorded")
	}

	target := testutil.StartSecondMariaDB(t)
	replay := func(args ...string) (string, error) {
		args = append([]string{"replay", "--session", session, "--dir", d.AuditDir}, args...)
		out, err := exec.Command(harness.Binary(t), args...).CombinedOutput()
		return string(out), err
	}
	dsn := "root:@tcp(" + target.Addr + ")/"

	replayFixture(t, target)
	out, err := replay("--target", dsn, "-v")
	if err != nil {
		t.Fatalf("replay against an identical database: %v\n%s", err, out)
	}
	if strings.Contains(strings.ToLower(out), "diverged") && !strings.Contains(out, "0 diverged") {
		t.Fatalf("replay reported divergence:\n%s", out)
	}

	replayFixture(t, target)
	mustExec(t, target.Open(t, ""), "UPDATE rp.items SET name = 'PEAR' WHERE id = 2")
	out, err = replay("--target", dsn)
	if err == nil || !strings.Contains(out, "SELECT id, name FROM items WHERE qty > @min ORDER BY id") || !strings.Contains(out, "differ") {
		t.Fatalf("a changed row must be a divergence (exit 1): %v\n%s", err, out)
	}

	out, err = replay("--target", "root:@tcp("+d.Maria.Addr+")/")
	if err == nil || !strings.Contains(out, "force") {
		t.Fatalf("replay against the recorded backend must be refused without --force: %v\n%s", err, out)
	}
}
