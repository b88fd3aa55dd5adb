package e2e

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// TestSysbenchOLTP runs sysbench's oltp_read_write through the proxy with
// server-side prepared statements (--db-ps-mode=auto) and with plain text
// queries (disable); both must finish with zero errors and zero reconnects.
// The table is prepared and dropped directly on MariaDB (DDL is not the
// point here; the default policy holds it for approval).
func TestSysbenchOLTP(t *testing.T) {
	if _, err := exec.LookPath("sysbench"); err != nil {
		t.Fatalf("sysbench missing (run scripts/install-deps.sh): %v", err)
	}
	d := harness.Start(t, harness.Options{})
	root := d.Maria.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS sbtest")
	mustExec(t, root, "CREATE DATABASE sbtest")
	mhost, mport, _ := strings.Cut(d.Maria.Addr, ":")
	common := []string{"oltp_read_write", "--tables=1", "--table-size=10000", "--mysql-db=sbtest"}
	direct := append([]string{"--mysql-host=" + mhost, "--mysql-port=" + mport, "--mysql-user=root", "--mysql-password="}, common...)
	if out, err := exec.Command("sysbench", append(direct, "prepare")...).CombinedOutput(); err != nil {
		t.Fatalf("sysbench prepare: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("sysbench", append(direct, "cleanup")...).Run() })

	host, port := d.HostPort()
	ignored := map[string]int{}
	for _, mode := range []string{"auto", "disable"} {
		t.Run(mode, func(t *testing.T) {
			args := append([]string{"--mysql-host=" + host, "--mysql-port=" + port, "--mysql-user=" + harness.ClientUser,
				"--mysql-password=" + harness.ClientPassword, "--threads=2", "--time=5", "--db-ps-mode=" + mode}, common...)
			out, err := exec.Command("sysbench", append(args, "run")...).CombinedOutput()
			if err != nil {
				t.Fatalf("sysbench run (%s): %v\n%s", mode, err, out)
			}
			s := string(out)
			tx := sysbenchCount(t, s, "transactions")
			if tx == 0 {
				t.Fatalf("no transactions:\n%s", s)
			}
			if n := sysbenchCount(t, s, "reconnects"); n != 0 {
				t.Errorf("reconnects: %d\n%s", n, s)
			}
			ignored[mode] = sysbenchCount(t, s, "ignored errors")
			t.Logf("%s: %d transactions in 5 s", mode, tx)
		})
	}

	// The journal saw both protocols: prepared executions with parameters
	// and the same statements as text.
	var exec, text, errs int
	commands := map[string]int{}
	var failed []string
	deadlocks := 0
	for _, r := range d.WaitOutcomes(t) {
		if r.Event == record.EventStatement {
			commands[r.Command]++
		}
		if r.Event == record.EventOutcome && r.Error != nil {
			if r.Error.Code == 1213 { // the database's own deadlock between the two threads
				deadlocks++
				continue
			}
			failed = append(failed, r.Error.Message)
		}
		switch {
		case r.Event == record.EventStatement && r.Command == "COM_STMT_EXECUTE" && r.SQL == "SELECT c FROM sbtest1 WHERE id=?":
			if len(r.Params) == 1 && r.Params[0].Type == "BIGINT" {
				exec++
			}
		case r.Event == record.EventStatement && r.Command == "COM_QUERY" && strings.HasPrefix(r.SQL, "SELECT c FROM sbtest1 WHERE id="):
			text++
		case r.Event == record.EventOutcome && r.Status != record.StatusSuccess && (r.Error == nil || r.Error.Code != 1213):
			errs++
		}
	}
	// sysbench retries (and counts as "ignored") only lock conflicts; with
	// two threads on 10000 rows they are rare, and each must be the
	// database's own deadlock, journaled as such, never a proxy error.
	if ignored["auto"]+ignored["disable"] != deadlocks {
		t.Errorf("sysbench ignored %v errors; the journal holds %d deadlocks", ignored, deadlocks)
	}
	if deadlocks > 0 {
		t.Logf("%d deadlocks between the two sysbench threads (database lock conflicts, retried)", deadlocks)
	}
	if exec == 0 || text == 0 || errs != 0 {
		t.Errorf("journal: %d prepared point selects with an INT param, %d text ones, %d failed outcomes %q; commands %v",
			exec, text, errs, failed, commands)
	}
}

func sysbenchCount(t *testing.T, out, key string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(key) + `:\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q in sysbench output:\n%s", key, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
