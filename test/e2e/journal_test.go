package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// TestStatementRefusedWhenJournalFails fills the file system under the audit
// journal (a small tmpfs the test mounts) and shows the write-ahead rule: the
// statement is refused with a clear ERR and never reaches the database.
func TestStatementRefusedWhenJournalFails(t *testing.T) {
	testutil.RequirePrivileged(t)
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=512k"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })

	m := testutil.StartMariaDB(t)
	root := m.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS jfail")
	mustExec(t, root, "CREATE DATABASE jfail")
	mustExec(t, root, "CREATE TABLE jfail.t (id INT PRIMARY KEY)")

	d := harness.Start(t, harness.Options{AuditDir: filepath.Join(mnt, "audit"), Audit: "sync: always\n"})
	db := d.Open(t, "jfail")
	db.SetMaxOpenConns(1)
	mustExec(t, db, "INSERT INTO t VALUES (1)")

	// Fill the disk under the journal.
	filler := filepath.Join(mnt, "filler")
	out, _ := exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=4k").CombinedOutput()
	if !strings.Contains(string(out), "No space left") {
		t.Fatalf("could not fill tmpfs: %s", out)
	}

	// The journal's last page may still have room for a few records; keep
	// going until the first refusal. Every accepted insert must be in the
	// database, the refused one must not.
	refused := 0
	for id := 2; id < 500; id++ {
		_, err := db.Exec("INSERT INTO t VALUES (?)", id)
		if err == nil {
			continue
		}
		var me *gomysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1180 || !strings.HasPrefix(me.Message, "sqlwarden: audit journal unavailable") {
			t.Fatalf("insert %d with a full journal: got %v, want ERR 1180 sqlwarden: audit journal unavailable", id, err)
		}
		refused = id
		break
	}
	if refused == 0 {
		t.Fatal("no statement was refused although the journal's file system is full")
	}
	var n int
	if err := root.QueryRow("SELECT COUNT(*) FROM jfail.t WHERE id = ?", refused).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the refused statement reached the database: count=%d err=%v", n, err)
	}
	if err := root.QueryRow("SELECT COUNT(*) FROM jfail.t").Scan(&n); err != nil || n != refused-1 {
		t.Fatalf("accepted inserts in the database: %d, want %d", n, refused-1)
	}
	// The daemon is still up and says why it is not ready.
	if !strings.Contains(d.Log(), "audit") {
		t.Errorf("no log line about the journal failure:\n%s", d.Log())
	}
	// Space returns: the same connection's next statement is journaled and runs.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, fmt.Sprintf("INSERT INTO t VALUES (%d)", refused))
	if err := root.QueryRow("SELECT COUNT(*) FROM jfail.t").Scan(&n); err != nil || n != refused {
		t.Fatalf("after space returned: %d rows, want %d (%v)", n, refused, err)
	}
	found := false
	for _, r := range d.Records(t) {
		if r.Event == "statement" && r.SQL == fmt.Sprintf("INSERT INTO t VALUES (%d)", refused) {
			found = true
		}
	}
	if !found {
		t.Fatal("the statement run after space returned has no statement record")
	}
}
