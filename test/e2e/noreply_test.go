package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// TestNoReplyCommandsWhenJournalFails: COM_STMT_CLOSE and
// COM_STMT_SEND_LONG_DATA get no reply from a server, so a refusal must not
// write one either — a stray ERR would be read as the answer to the client's
// next command and shift every reply after it. With the journal's file
// system full, a go-sql-driver connection closes a statement and executes one
// whose parameter travels as long data; once the journal has room again the
// same connection's next statements get their own answers, and the refused
// execution's long data is not glued to the next one's.
func TestNoReplyCommandsWhenJournalFails(t *testing.T) {
	testutil.RequirePrivileged(t)
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=512k"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })

	m := testutil.StartMariaDB(t)
	root := m.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS nrfail")
	mustExec(t, root, "CREATE DATABASE nrfail")
	mustExec(t, root, "CREATE TABLE nrfail.t (id INT PRIMARY KEY, v LONGBLOB)")

	d := harness.Start(t, harness.Options{AuditDir: filepath.Join(mnt, "audit"), Audit: "sync: always\n", Extra: permissive(t)})
	// maxAllowedPacket=4096: the driver sends any parameter over 4096/3
	// bytes of a two-parameter statement as COM_STMT_SEND_LONG_DATA.
	db, err := sql.Open("mysql", d.DSN("nrfail", "interpolateParams=false&maxAllowedPacket=4096"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closing, err := conn.PrepareContext(ctx, "SELECT ? + 1")
	if err != nil {
		t.Fatal(err)
	}
	insert, err := conn.PrepareContext(ctx, "INSERT INTO t VALUES (?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	first, second := bytes.Repeat([]byte("a"), 3000), bytes.Repeat([]byte("b"), 3000)

	filler := filepath.Join(mnt, "filler")
	out, _ := exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=4k").CombinedOutput()
	if !strings.Contains(string(out), "No space left") {
		t.Fatalf("could not fill tmpfs: %s", out)
	}
	// The journal's last page may hold a few more records: go on until the
	// first refusal, after which every write fails.
	refused := false
	for i := 0; i < 500 && !refused; i++ {
		var v int
		err := conn.QueryRowContext(ctx, "SELECT ?", i).Scan(&v)
		if err == nil {
			continue
		}
		if !isJournalRefusal(err) {
			t.Fatalf("select with a full journal: got %v, want ERR 1180", err)
		}
		refused = true
	}
	if !refused {
		t.Fatal("no statement was refused although the journal's file system is full")
	}

	// Neither command may answer; the EXECUTE gets its own ERR.
	if err := closing.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := insert.ExecContext(ctx, 1, first); !isJournalRefusal(err) {
		t.Fatalf("execute with long data and a full journal: got %v, want ERR 1180", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// Each statement now gets its own answer: a stray ERR left by the CLOSE
	// would answer the first and every later one would get its predecessor's.
	deadline := time.Now().Add(5 * time.Second)
	for want := 100; want < 105; want++ {
		var got int
		err := conn.QueryRowContext(ctx, "SELECT ?", want).Scan(&got)
		for isJournalRefusal(err) && time.Now().Before(deadline) {
			// The journal may still be recovering: a refusal is its own ERR.
			err = conn.QueryRowContext(ctx, "SELECT ?", want).Scan(&got)
		}
		if err != nil || got != want {
			t.Fatalf("SELECT %d after the journal recovered: got %d, %v", want, got, err)
		}
	}
	if _, err := insert.ExecContext(ctx, 1, second); err != nil {
		t.Fatalf("execute after the journal recovered: %v", err)
	}
	var v []byte
	if err := root.QueryRow("SELECT v FROM nrfail.t WHERE id = 1").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v, second) {
		t.Fatalf("stored %d bytes (%q...), want the second upload's 3000 'b's alone", len(v), v[:min(len(v), 8)])
	}
	// A CLOSE with a working journal is journaled and still answers nothing.
	again, err := conn.PrepareContext(ctx, "SELECT ? + 2")
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
	var got int
	if err := conn.QueryRowContext(ctx, "SELECT 7").Scan(&got); err != nil || got != 7 {
		t.Fatalf("SELECT 7 after a CLOSE: %d %v", got, err)
	}
	conn.Close()
	db.Close()
	recs := d.Settled(t)
	if st, _ := harness.FindPair(recs, harness.Stmt("COM_STMT_CLOSE", "SELECT ? + 2")); st == nil {
		t.Error("no COM_STMT_CLOSE record for the statement closed after recovery")
	}
	if !strings.Contains(d.Log(), "audit statement") {
		t.Errorf("no log line for the refused commands:\n%s", d.Log())
	}
}

func isJournalRefusal(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && me.Number == 1180 && strings.HasPrefix(me.Message, "sqlwarden: audit journal unavailable")
}
