package e2e

import (
	"database/sql"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// TestCrashLosesNoStatementRecord kills the daemon with SIGKILL ten times
// under concurrent load. Afterwards every statement that reached MariaDB
// through the proxy (its general log) has a `statement` record, and the
// journal verifies (a torn final record is reported as torn, not tampering).
// With the ring (the default) the records of statements a kill left only in
// the ring are journaled by the restart that follows.
func TestCrashLosesNoStatementRecord(t *testing.T) {
	// Connections cut by the kills are expected; keep the driver quiet about them.
	_ = gomysql.SetLogger(log.New(io.Discard, "", 0))
	d := harness.Start(t, harness.Options{})
	root := d.Maria.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS crash")
	mustExec(t, root, "CREATE DATABASE crash")
	mustExec(t, root, "CREATE TABLE crash.t (marker VARCHAR(64) PRIMARY KEY)")
	logDir := os.Getenv("SQLWARDEN_MARIADB_DIR")
	if logDir == "" {
		logDir = "/tmp/sqlwarden-mariadb"
	}
	genLog := filepath.Join(logDir, "general.log")
	st, err := os.Stat(genLog)
	if err != nil {
		t.Fatal(err)
	}
	offset := st.Size()
	run := fmt.Sprintf("%d", time.Now().UnixNano())

	var stop atomic.Bool
	var sent atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; !stop.Load(); {
				db, err := sql.Open("mysql", d.DSN("crash", "timeout=2s"))
				if err != nil {
					continue
				}
				db.SetMaxOpenConns(1)
				for !stop.Load() {
					i++
					if _, err := db.Exec(fmt.Sprintf("INSERT INTO t VALUES ('crash-%s-%d-%d')", run, w, i)); err != nil {
						break // the daemon died: reconnect after it is back
					}
					sent.Add(1)
				}
				db.Close()
				time.Sleep(20 * time.Millisecond)
			}
		}(w)
	}
	for round := 0; round < 10; round++ {
		time.Sleep(time.Duration(150+round*25) * time.Millisecond)
		d.Kill(t)
		d.Restart(t)
	}
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	d.Stop(t)
	if sent.Load() < 50 {
		t.Fatalf("only %d statements succeeded under load; the test proves little", sent.Load())
	}

	// Every marker MariaDB saw must have a statement record.
	f, err := os.Open(genLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`INSERT INTO t VALUES \('crash-` + run + `-\d+-\d+'\)`)
	seen := re.FindAllString(string(data), -1)
	recorded := map[string]bool{}
	replays := 0
	for _, r := range d.Records(t) {
		if r.Event == record.EventStatement {
			recorded[r.SQL] = true
		}
		if r.Event == record.EventCheckpoint && strings.Contains(r.Reason, "records from the ring after a crash") {
			replays++
		}
	}
	// The daemon's default (sync: batch, a ring on a memory file system):
	// what a kill left only in the ring is journaled by the restart.
	if replays == 0 {
		t.Error("no restart replayed records from the journal's ring: the ring was not exercised")
	}
	// a ring whose records did not continue the journal's chain is saved
	// aside, not replayed: that must never happen after a plain kill
	if left, _ := filepath.Glob(filepath.Join(d.AuditDir, "ring-unreplayed-*")); len(left) > 0 {
		t.Errorf("a restart could not replay the ring (saved as %v)", left)
	}
	missing := 0
	for _, q := range seen {
		if !recorded[q] {
			missing++
			if missing < 5 {
				t.Errorf("reached the database without a statement record: %s", q)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d statements reached the database without a record", missing, len(seen))
	}
	if len(seen) < int(sent.Load()) {
		t.Fatalf("general log shows %d statements, clients saw %d succeed", len(seen), sent.Load())
	}
	out, err := exec.Command(harness.Binary(t), "audit", "verify", "--dir", d.AuditDir).CombinedOutput()
	if err != nil {
		t.Fatalf("audit verify after 10 crashes: %v\n%s", err, out)
	}
	t.Logf("%d statements through 10 crashes; verify:\n%s", len(seen), out)
}
