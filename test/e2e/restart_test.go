package e2e

import (
	"bufio"
	"database/sql"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// loader runs in an enrolled cgroup: a new connection and one marked
// INSERT at a time until stopFile exists, printing "ok|fail <unix-ns> marker".
func loader(dsn, stopFile string) int {
	_ = gomysql.SetLogger(log.New(io.Discard, "", 0))
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for i := 0; ; i++ {
		if _, err := os.Stat(stopFile); err == nil {
			return 0
		}
		marker := fmt.Sprintf("restart-%d-%d", os.Getpid(), i)
		db, err := sql.Open("mysql", dsn)
		if err == nil {
			db.SetMaxOpenConns(1)
			_, err = db.Exec("INSERT INTO restart.t VALUES ('" + marker + "')")
			db.Close()
		}
		now := time.Now().UnixNano()
		if err != nil {
			fmt.Fprintf(out, "fail %d %s\n", now, marker)
			time.Sleep(5 * time.Millisecond)
			continue
		}
		fmt.Fprintf(out, "ok %d %s\n", now, marker)
	}
}

// TestGracefulRestartUnderLoad restarts the daemon (SIGTERM, then a new
// process from the same pins) while an enrolled workload keeps connecting:
// no connect is refused outside the restart itself, and every insert that
// reached MariaDB has its statement record.
func TestGracefulRestartUnderLoad(t *testing.T) {
	e := newRedirectEnv(t, "")
	root := e.d.Maria.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS restart")
	mustExec(t, root, "CREATE DATABASE restart")
	mustExec(t, root, "CREATE TABLE restart.t (marker VARCHAR(64) PRIMARY KEY)")

	stop := filepath.Join(t.TempDir(), "stop")
	self, _ := os.Executable()
	dsn := fmt.Sprintf("agent:any@tcp(%s)/restart?timeout=2s", e.orig)
	cmd := inCgroup(e.agent, "", []string{"SQLWARDEN_E2E_LOADER=" + dsn, "SQLWARDEN_E2E_STOPFILE=" + stop}, self)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan []string, 1)
	go func() {
		var all []string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			all = append(all, sc.Text())
		}
		lines <- all
	}()

	time.Sleep(700 * time.Millisecond)
	restartStart := time.Now()
	if err := e.d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	e.d.Stop(t)
	e.d.Restart(t)
	restartEnd := time.Now()
	time.Sleep(700 * time.Millisecond)
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	all := <-lines
	if err := cmd.Wait(); err != nil {
		t.Fatalf("loader: %v", err)
	}

	var ok, fail, okAfter int
	for _, l := range all {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		at := time.Unix(0, ns)
		switch f[0] {
		case "ok":
			ok++
			if at.After(restartEnd) {
				okAfter++
			}
		case "fail":
			fail++
			// A refused connect may only happen while the daemon restarts
			// (plus one connect timeout of slack for an attempt in flight).
			if at.Before(restartStart) || at.After(restartEnd.Add(2*time.Second)) {
				t.Errorf("connect refused at %v, outside the restart [%v, %v]", at.Format(time.RFC3339Nano),
					restartStart.Format(time.RFC3339Nano), restartEnd.Format(time.RFC3339Nano))
			}
		}
	}
	if ok < 20 || okAfter == 0 {
		t.Fatalf("load too small to prove anything: %d ok (%d after the restart), %d refused", ok, okAfter, fail)
	}
	// Nothing lost: every insert that reached the database has its record.
	recorded := map[string]bool{}
	for _, r := range e.d.Settled(t) {
		if r.Event == record.EventStatement && strings.HasPrefix(r.SQL, "INSERT INTO restart.t") {
			recorded[r.SQL] = true
		}
	}
	rows, err := root.Query("SELECT marker FROM restart.t")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var m string
		rows.Scan(&m)
		n++
		if !recorded["INSERT INTO restart.t VALUES ('"+m+"')"] {
			t.Errorf("insert %s reached the database without a statement record", m)
		}
	}
	if n < ok {
		t.Errorf("%d inserts acknowledged, %d in the database", ok, n)
	}
	out, err := exec.Command(e.cliBinary(), "audit", "verify", "--dir", e.d.AuditDir).CombinedOutput()
	if err != nil {
		t.Fatalf("audit verify after a restart under load: %v\n%s", err, out)
	}
	t.Logf("restart took %v; %d connects ok, %d refused during it", restartEnd.Sub(restartStart).Round(time.Millisecond), ok, fail)
}
