package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/pkg/audit/sink"
	"github.com/sqlwarden/sqlwarden/pkg/record"
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

func fleetColumn(t *testing.T, root *sql.DB, col string) bool {
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
	if !fleetColumn(t, root, "held_on_a") {
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
	if n := fleetCounter(t, root, 2); n != 1 || fleetColumn(t, root, "no_store") {
		t.Fatalf("counter 2 = %d (want 1), no_store column %v", n, fleetColumn(t, root, "no_store"))
	}

	onA.Close()
	onB.Close()
	recsA, recsB := a.Settled(t), b.Settled(t)
	_, o := harness.Pair(t, recsA, q1)
	if o.Status != record.StatusSuccess || o.Policy == nil || o.Policy.Approver != "carol" || o.Policy.Reason != "from node b" || o.Policy.ApprovalID == "" {
		t.Errorf("node a's outcome of the statement approved on node b: %+v %+v", o, o.Policy)
	}
	var ran []*record.Record
	for _, o := range harness.Outcomes(recsB, harness.Stmt("", q2)) {
		if o.Status == record.StatusSuccess {
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
	s, err := d.MetricsText()
	if err != nil {
		t.Fatal(err)
	}
	return s
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

// runCLI runs the sqlwarden binary and returns its output and exit error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(harness.Binary(t), args...).CombinedOutput()
	return string(out), err
}

// TestFleetAudit: two nodes ship their journals to one JetStream stream;
// audit search and tail read every node's records from it, and audit
// verify proves a local journal holds everything the stream holds for its
// node — a local copy cut by the last shipped record fails at once, and so
// does the stream alone once one of the node's messages is deleted.
func TestFleetAudit(t *testing.T) {
	ns := testutil.StartNATS(t)
	a := fleetNode(t, ns, "a")
	b := fleetNode(t, ns, "b")
	onA, onB := a.Open(t, ""), b.Open(t, "")
	mustExec(t, onA, "SELECT 'fleet-from-a'")
	mustExec(t, onB, "SELECT 'fleet-from-b'")
	url := ns.URL()

	// Both nodes' statements, once shipped, with the local command's filters.
	var out string
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		out, err = runCLI(t, "audit", "search", "--nats", url, "--stream", "SQLWARDEN_AUDIT", "--status", "success", "--identity", harness.Identity, "--since", "10m", "--json")
		if err != nil {
			t.Fatalf("audit search --nats: %v\n%s", err, out)
		}
		if strings.Contains(out, "fleet-from-a") && strings.Contains(out, "fleet-from-b") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit search --nats did not return both nodes' statements:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r record.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("search --json line %q: %v", line, err)
		}
		if r.Event != record.EventStatement && (r.Event != record.EventOutcome || r.Status != record.StatusSuccess) {
			t.Fatalf("--status success returned %s %s", r.Event, r.Status)
		}
	}
	out, err := runCLI(t, "audit", "search", "--nats", url, "--node", "b", "--status", "success")
	if err != nil || !strings.Contains(out, "fleet-from-b") || strings.Contains(out, "fleet-from-a") {
		t.Fatalf("audit search --nats --node b: %v\n%s", err, out)
	}

	// tail --follow prints a statement made after it started.
	cmd := exec.Command(harness.Binary(t), "audit", "tail", "--nats", url, "--node", "a", "--follow", "--json", "-n", "1")
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	following := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		var seen strings.Builder
		for {
			n, err := stderr.Read(buf)
			seen.Write(buf[:n])
			if strings.Contains(seen.String(), "following stream") {
				close(following)
				_, _ = io.Copy(io.Discard, stderr)
				return
			}
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-following:
	case <-time.After(10 * time.Second):
		t.Fatal("audit tail --nats --follow did not start following")
	}
	mustExec(t, onA, "SELECT 'fleet-followed'")
	got := make(chan bool, 1)
	go func() {
		buf := make([]byte, 64<<10)
		var seen strings.Builder
		for {
			n, err := stdout.Read(buf)
			seen.Write(buf[:n])
			if strings.Contains(seen.String(), "fleet-followed") {
				got <- true
				return
			}
			if err != nil {
				got <- false
				return
			}
		}
	}()
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("audit tail --follow ended without the new statement")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("audit tail --nats --follow did not print the new statement")
	}

	// verify: the untouched journal of node a holds everything shipped.
	onA.Close()
	a.Stop(t)
	pub := filepath.Join(a.AuditDir, "checkpoint.key.pub")
	verify := func(args ...string) (string, error) {
		return runCLI(t, append([]string{"audit", "verify", "--nats", url, "--stream", "SQLWARDEN_AUDIT", "--node", "a", "--pubkey", pub}, args...)...)
	}
	if out, err := verify("--dir", a.AuditDir); err != nil {
		t.Fatalf("verify --dir --nats on the untouched journal: %v\n%s", err, out)
	}
	streamOnly, err := verify("--json")
	if err != nil {
		t.Fatalf("verify from the stream alone: %v\n%s", err, streamOnly)
	}
	var srep audit.Report
	if err := json.Unmarshal([]byte(streamOnly), &srep); err != nil || srep.LastSeq < 3 {
		t.Fatalf("stream report %v: %s", err, streamOnly)
	}

	// A local copy without the last record the stream holds: reported.
	cut := filepath.Join(t.TempDir(), "audit")
	copyJournalUpTo(t, a.AuditDir, cut, srep.LastSeq-1)
	if out, err := runCLI(t, "audit", "verify", "--dir", cut, "--pubkey", pub, "--node", "a"); err != nil {
		t.Fatalf("the cut copy verifies locally (the case the stream comparison exists for): %v\n%s", err, out)
	}
	out, err = verify("--dir", cut)
	if err == nil || !strings.Contains(out, "FAILED") || !strings.Contains(out, "truncated") || !strings.Contains(out, fmt.Sprint(srep.LastSeq)) {
		t.Fatalf("verify --nats on a copy cut by one record: %v\n%s", err, out)
	}

	// One of node a's messages deleted from the stream: the stream alone fails.
	var victim uint64
	n := 0
	if err := sink.ReadNATS(context.Background(), sink.NATSSource{URL: url}, "a", 0, false, func(m sink.NATSMsg) error {
		if n++; n == 3 {
			victim = m.StreamSeq
		}
		return nil
	}); err != nil || victim == 0 {
		t.Fatalf("find a message of node a: %v", err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), "SQLWARDEN_AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMsg(context.Background(), victim); err != nil {
		t.Fatal(err)
	}
	out, err = verify()
	if err == nil || !strings.Contains(out, "FAILED") || !strings.Contains(out, "deleted") {
		t.Fatalf("verify from the stream alone after a deletion: %v\n%s", err, out)
	}
}

// copyJournalUpTo copies a journal, keeping the records up to seq last.
func copyJournalUpTo(t *testing.T, from, to string, last uint64) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	segs, err := audit.ListSegments(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		if s.FirstSeq > last {
			continue
		}
		data, err := os.ReadFile(s.Path)
		if err != nil {
			t.Fatal(err)
		}
		var keep []byte
		for _, line := range strings.SplitAfter(string(data), "\n") {
			r, err := audit.DecodeLine([]byte(strings.TrimSuffix(line, "\n")))
			if err != nil || r.Seq > last {
				break
			}
			keep = append(keep, line...)
		}
		if err := os.WriteFile(filepath.Join(to, filepath.Base(s.Path)), keep, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
