package e2e

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// fleetPolicy holds DDL (hold mode) and UPDATEs (retry mode) for a human.
const fleetPolicy = `default: allow
rules:
  - name: ddl-needs-a-human
    match: statement.is_ddl
    action: approve
    approval_mode: hold
  - name: updates-need-a-human
    match: statement.kind == "UPDATE"
    action: approve
    approval_mode: retry
`

// fleetNode starts daemon `node` whose approvals live in the NATS bucket and
// whose journal ships to the stream SQLWARDEN_AUDIT on the same server.
func fleetNode(t *testing.T, ns *testutil.NATSServer, node string) *harness.Daemon {
	t.Helper()
	pfile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pfile, []byte(fleetPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	return harness.Start(t, harness.Options{
		Node: node,
		Audit: fmt.Sprintf(`checkpoint_interval: 1s
sinks:
  - name: fleet
    type: nats
    min_backoff: 50ms
    max_backoff: 500ms
    nats:
      url: %s
      stream: SQLWARDEN_AUDIT
      create_stream: true
`, ns.URL()),
		Extra: fmt.Sprintf(`admin:
  token: %s
policy:
  file: %s
  approvals:
    timeout: 1m
    retry_ttl: 10m
    store: nats
    nats:
      url: %s
`, adminToken, pfile, ns.URL()),
	})
}

// waitPendingOn polls a node's API for the request running sqlText and
// returns it.
func waitPendingOn(t *testing.T, d *harness.Daemon, sqlText string) pendingEntry {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, body := adminCall(t, d, "GET", "/api/v1/approvals", nil)
		var pl pendingList
		if err := json.Unmarshal(body, &pl); err != nil {
			t.Fatal(err)
		}
		for _, p := range pl.Approvals {
			if p.SQL == sqlText {
				return p
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s does not list %q", d.Admin, sqlText)
	return pendingEntry{}
}

func fleetSchema(t *testing.T, d *harness.Daemon) *sql.DB {
	t.Helper()
	root := d.Maria.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS fleet")
	mustExec(t, root, "CREATE DATABASE fleet")
	mustExec(t, root, "CREATE TABLE fleet.t (id INT PRIMARY KEY)")
	mustExec(t, root, "CREATE TABLE fleet.counter (id INT PRIMARY KEY, n INT NOT NULL)")
	mustExec(t, root, "INSERT INTO fleet.counter VALUES (1, 0), (2, 0)")
	return root
}

func fleetCounter(t *testing.T, root *sql.DB, id int) int {
	t.Helper()
	var n int
	if err := root.QueryRow("SELECT n FROM fleet.counter WHERE id = ?", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func columnExists(t *testing.T, root *sql.DB, col string) bool {
	t.Helper()
	var n int
	if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='fleet' AND TABLE_NAME='t' AND COLUMN_NAME=?", col).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// TestFleetApprovals: two daemons (node a, node b) share their approvals
// through a NATS JetStream bucket on a nats-server the test started.
func TestFleetApprovals(t *testing.T) {
	ns := testutil.StartNATS(t)
	a := fleetNode(t, ns, "a")
	b := fleetNode(t, ns, "b")
	root := fleetSchema(t, a)
	onA, onB := a.Open(t, "fleet"), b.Open(t, "fleet")

	// 1. Held on node a, listed by node b's CLI and API, approved there:
	// node a's client proceeds within a second.
	q1 := "ALTER TABLE t ADD COLUMN held_on_a INT"
	done := make(chan error, 1)
	go func() { _, err := onA.Exec(q1); done <- err }()
	p := waitPendingOn(t, b, q1)
	if p.Node != "a" || p.Mode != "hold" || p.Identity != harness.Identity {
		t.Fatalf("node b lists %+v", p)
	}
	if list := cli(t, b, "approvals", "list"); !strings.Contains(list, p.ID) || !strings.Contains(list, " a ") {
		t.Fatalf("node b's CLI:\n%s", list)
	}
	select {
	case err := <-done:
		t.Fatalf("client returned before the decision: %v", err)
	default:
	}
	cli(t, b, "approvals", "approve", p.ID, "--approver", "carol", "--reason", "from node b")
	decided := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("approved statement: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("node a's client still waits 5s after node b approved")
	}
	if lag := time.Since(decided); lag > time.Second {
		t.Fatalf("node a's client proceeded %v after the approval on node b, want < 1s", lag)
	}
	if !columnExists(t, root, "held_on_a") {
		t.Fatal("the approved ALTER did not run")
	}

	// 2. Retry mode: the agent is refused on node a, approved on node a,
	// and its retry lands on node b, which runs it exactly once.
	q2 := "UPDATE counter SET n = n + 1 WHERE id = 1"
	id := mustPend(t, onA, q2, "10m")
	cli(t, a, "approvals", "approve", id, "--approver", "dave")
	if _, err := onB.Exec(q2); err != nil {
		t.Fatalf("retry through node b: %v", err)
	}
	if again := mustPend(t, onA, q2, "10m"); again == id {
		t.Fatal("the approval was used twice")
	}
	if _, err := onB.Exec(q2); err == nil {
		t.Fatal("a second retry on node b ran")
	}
	if n := fleetCounter(t, root, 1); n != 1 {
		t.Fatalf("counter %d, want exactly 1", n)
	}

	// 3. Two approvers race on two nodes: one wins, one gets a conflict.
	q3 := "ALTER TABLE t ADD COLUMN raced INT"
	go func() { _, err := onA.Exec(q3); done <- err }()
	p = waitPendingOn(t, b, q3)
	waitPendingOn(t, a, q3)
	var wg sync.WaitGroup
	codes := make([]int, 2)
	bodies := make([][]byte, 2)
	for i, d := range []*harness.Daemon{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			verb := []string{"approve", "deny"}[i]
			resp, body := adminCall(t, d, "POST", "/api/v1/approvals/"+p.ID+"/"+verb, map[string]string{"approver": "racer-" + verb})
			codes[i], bodies[i] = resp.StatusCode, body
		}()
	}
	wg.Wait()
	won := -1
	switch {
	case codes[0] == 200 && codes[1] == 409:
		won = 0
	case codes[0] == 409 && codes[1] == 200:
		won = 1
	default:
		t.Fatalf("racing decisions answered %d %s / %d %s; want one 200 and one 409", codes[0], bodies[0], codes[1], bodies[1])
	}
	if !strings.Contains(string(bodies[1-won]), "already decided") {
		t.Fatalf("conflict answer: %s", bodies[1-won])
	}
	err := <-done
	if won == 0 && err != nil || won == 1 && err == nil {
		t.Fatalf("the held client's result %v does not match the winner (%s)", err, []string{"approve", "deny"}[won])
	}

	// 4. NATS down: approval-needing statements are refused, others served;
	// /readyz and the metric say so. Back up: approvals work again.
	ns.Stop()
	waitReady(t, a, http.StatusServiceUnavailable)
	var me *gomysql.MySQLError
	for _, q := range []string{"UPDATE counter SET n = n + 1 WHERE id = 2", "ALTER TABLE t ADD COLUMN no_store INT"} {
		start := time.Now()
		if _, err := onA.Exec(q); !errors.As(err, &me) || me.Number != 1227 || me.Message != "sqlwarden: approval store unavailable" {
			t.Fatalf("%s with NATS down: %v", q, err)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("refusal took %v", time.Since(start))
		}
	}
	var n int
	if err := onA.QueryRow("SELECT COUNT(*) FROM counter").Scan(&n); err != nil || n != 2 {
		t.Fatalf("a plain read with NATS down: %d %v", n, err)
	}
	if m := metricsText(t, a); !strings.Contains(m, `sqlwarden_policy_approval_store_up{store="nats"} 0`) {
		t.Fatalf("metric with NATS down:\n%s", grepLines(m, "approval_store"))
	}
	ns.Start()
	waitReady(t, a, http.StatusOK)
	waitReady(t, b, http.StatusOK)
	if m := metricsText(t, a); !strings.Contains(m, `sqlwarden_policy_approval_store_up{store="nats"} 1`) {
		t.Fatalf("metric with NATS back:\n%s", grepLines(m, "approval_store"))
	}
	q4 := "UPDATE counter SET n = n + 1 WHERE id = 2"
	id4 := mustPend(t, onA, q4, "10m")
	waitPendingOn(t, b, q4)
	cli(t, b, "approvals", "approve", id4, "--approver", "erin")
	if _, err := onA.Exec(q4); err != nil {
		t.Fatalf("retry after NATS came back: %v", err)
	}
	if n := fleetCounter(t, root, 2); n != 1 || columnExists(t, root, "no_store") {
		t.Fatalf("counter 2 = %d (want 1), no_store column %v", n, columnExists(t, root, "no_store"))
	}

	onA.Close()
	onB.Close()
	recsA, recsB := a.Settled(t), b.Settled(t)
	_, o := pair(t, recsA, q1)
	if o.Status != audit.StatusSuccess || o.Policy == nil || o.Policy.Approver != "carol" || o.Policy.Reason != "from node b" || o.Policy.ApprovalID == "" {
		t.Errorf("node a's outcome of the statement approved on node b: %+v %+v", o, o.Policy)
	}
	var ran []*audit.Record
	for _, o := range outcomes(recsB, q2) {
		if o.Status == audit.StatusSuccess {
			ran = append(ran, o)
		}
	}
	if len(ran) != 1 || ran[0].Policy.ApprovalID != id || ran[0].Policy.Approver != "dave" {
		t.Errorf("node b's executed retry: %+v", ran)
	}
}

// waitReady polls /readyz until it answers code.
func waitReady(t *testing.T, d *harness.Daemon, code int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	last := 0
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + d.Admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			last = resp.StatusCode
			if last == code {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s /readyz answers %d, want %d", d.Admin, last, code)
}

func metricsText(t *testing.T, d *harness.Daemon) string {
	t.Helper()
	resp, err := http.Get("http://" + d.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
