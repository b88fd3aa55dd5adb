package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// Reading the journal. A statement record and its outcome share session_id
// and statement_id; the outcome (like session.end) is journaled after the
// client has its reply, so a test that just got an answer reads the records
// through WaitOutcomes or Settled, which wait until they are written.

// journalCaughtUp waits, up to 2s, until a running daemon's journal has
// written every record it appended (its pending_bytes gauge is 0). With the
// ring — the daemon's default — Append returns once a record is in the ring
// and the record reaches the segment within a batch window; a test reads
// the segments, so it waits for that first. A daemon that is not running
// has nothing more to write (a killed one's ring is replayed by its
// restart).
func (d *Daemon) journalCaughtUp() {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return
		default:
		}
		g, err := d.Gauges("sqlwarden_audit_pending_bytes")
		if pending, ok := g["sqlwarden_audit_pending_bytes"]; err != nil || !ok || pending == 0 {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// MetricsText returns the daemon's Prometheus exposition (admin /metrics).
func (d *Daemon) MetricsText() (string, error) {
	resp, err := http.Get("http://" + d.Admin + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return string(b), err
}

// Gauges reads the named unlabelled samples from the daemon's /metrics; a
// name it does not export is absent from the map.
func (d *Daemon) Gauges(names ...string) (map[string]float64, error) {
	text, err := d.MetricsText()
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	got := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok || !want[name] {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return nil, fmt.Errorf("metric %s: %w", name, err)
		}
		got[name] = v
	}
	return got, nil
}

// waitTimeout bounds every wait on the journal.
const waitTimeout = 10 * time.Second

// Records reads every journal record, in order.
func (d *Daemon) Records(t testing.TB) []*record.Record {
	t.Helper()
	d.journalCaughtUp()
	var out []*record.Record
	files, _ := filepath.Glob(filepath.Join(d.AuditDir, "*.jsonl"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var r record.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				continue // a torn tail is the journal's business, not the test's
			}
			out = append(out, &r)
		}
		fh.Close()
	}
	return out
}

// SessionRecords returns the records of one session, in journal order.
func (d *Daemon) SessionRecords(t testing.TB, sessionID string) []*record.Record {
	var out []*record.Record
	for _, r := range d.Records(t) {
		if r.SessionID == sessionID {
			out = append(out, r)
		}
	}
	return out
}

// WaitRecords polls the journal until done holds for its records and returns
// them; the test fails after 10s, saying what it waited for.
func (d *Daemon) WaitRecords(t testing.TB, what string, done func([]*record.Record) bool) []*record.Record {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		recs := d.Records(t)
		if done(recs) {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not in the journal within %s", what, waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitFor polls the journal until pred holds for some record and returns it.
func (d *Daemon) WaitFor(t testing.TB, what string, pred func(*record.Record) bool) *record.Record {
	t.Helper()
	var found *record.Record
	d.WaitRecords(t, "audit record "+what, func(recs []*record.Record) bool {
		for _, r := range recs {
			if pred(r) {
				found = r
				return true
			}
		}
		return false
	})
	return found
}

// WaitEnded waits for the session.end record of a session and returns all records.
func (d *Daemon) WaitEnded(t testing.TB, sessionID string) []*record.Record {
	t.Helper()
	return d.WaitRecords(t, fmt.Sprintf("session %s ended", sessionID), func(recs []*record.Record) bool {
		return SessionEvent(recs, record.EventSessionEnd, sessionID) != nil
	})
}

// LastSession returns the id of the most recent session.start.
func (d *Daemon) LastSession(t testing.TB) string {
	t.Helper()
	ids := Sessions(d.Records(t))
	if len(ids) == 0 {
		return ""
	}
	return ids[len(ids)-1]
}

// Settled waits until every session that started has ended (its outcome
// records are written after the client got its reply, so a test that just
// closed its client must wait for them) and returns all records. After 10s
// it logs the sessions still open and returns what there is.
func (d *Daemon) Settled(t testing.TB) []*record.Record {
	t.Helper()
	return d.settle(t, "sessions", func(r *record.Record) (key any, opens, closes bool) {
		return r.SessionID, r.Event == record.EventSessionStart, r.Event == record.EventSessionEnd
	})
}

// WaitOutcomes waits until every statement record has its outcome (sessions
// may still be open) and returns all records. After 10s it logs the
// statements still without an outcome and returns what there is.
func (d *Daemon) WaitOutcomes(t testing.TB) []*record.Record {
	t.Helper()
	return d.settle(t, "statements without an outcome", func(r *record.Record) (key any, opens, closes bool) {
		return [2]any{r.SessionID, r.StatementID}, r.Event == record.EventStatement, r.Event == record.EventOutcome
	})
}

// settle polls until every record that opens a key has one that closes it.
func (d *Daemon) settle(t testing.TB, what string, classify func(*record.Record) (key any, opens, closes bool)) []*record.Record {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		recs := d.Records(t)
		open := map[any]bool{}
		for _, r := range recs {
			switch k, opens, closes := classify(r); {
			case opens:
				open[k] = true
			case closes:
				delete(open, k)
			}
		}
		if len(open) == 0 {
			return recs
		}
		if time.Now().After(deadline) {
			t.Logf("settled: %d %s still open after %s", len(open), what, waitTimeout)
			return recs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FindStatement returns the first statement record with this SQL text and
// its outcome (nil if not journaled); nil, nil if there is none.
func (d *Daemon) FindStatement(t testing.TB, sqlText string) (stmt, outcome *record.Record) {
	t.Helper()
	return FindPair(d.Records(t), Stmt("", sqlText))
}

// StatementPair is a statement record and its outcome (nil while not
// journaled).
type StatementPair struct {
	Statement, Outcome *record.Record
}

// Stmt matches statement records of a command ("COM_QUERY",
// "COM_STMT_EXECUTE", ...) and SQL text; "" matches any.
func Stmt(command, sqlText string) func(*record.Record) bool {
	return func(r *record.Record) bool {
		return r.Event == record.EventStatement && (command == "" || r.Command == command) && (sqlText == "" || r.SQL == sqlText)
	}
}

// Pairs returns every statement record that match accepts, in journal
// order, each with its outcome.
func Pairs(recs []*record.Record, match func(*record.Record) bool) []StatementPair {
	var out []StatementPair
	for i, r := range recs {
		if r.Event == record.EventStatement && match(r) {
			out = append(out, StatementPair{r, outcomeAfter(recs[i+1:], r)})
		}
	}
	return out
}

// Outcomes returns the outcome records of the statements match accepts, in
// statement order, leaving out statements without one.
func Outcomes(recs []*record.Record, match func(*record.Record) bool) []*record.Record {
	var out []*record.Record
	for _, p := range Pairs(recs, match) {
		if p.Outcome != nil {
			out = append(out, p.Outcome)
		}
	}
	return out
}

// FindPair returns the first statement record match accepts and its outcome
// (nil if not journaled); nil, nil if there is none.
func FindPair(recs []*record.Record, match func(*record.Record) bool) (stmt, outcome *record.Record) {
	for i, r := range recs {
		if r.Event == record.EventStatement && match(r) {
			return r, outcomeAfter(recs[i+1:], r)
		}
	}
	return nil, nil
}

// Pair returns the first statement record with this SQL text and its
// outcome; the test fails if either is missing or the outcome is not
// journaled after its statement.
func Pair(t testing.TB, recs []*record.Record, sqlText string) (stmt, outcome *record.Record) {
	t.Helper()
	return PairCommand(t, recs, "", sqlText)
}

// PairCommand is Pair for one command ("" for any): a prepared
// statement's SQL appears in its PREPARE, EXECUTE and CLOSE records.
func PairCommand(t testing.TB, recs []*record.Record, command, sqlText string) (stmt, outcome *record.Record) {
	t.Helper()
	what := "statement"
	if command != "" {
		what = command
	}
	st, o := FindPair(recs, Stmt(command, sqlText))
	switch {
	case st == nil:
		t.Fatalf("no %s record for %q", what, sqlText)
	case o == nil:
		t.Fatalf("%s %q has no outcome record", what, sqlText)
	case o.Seq <= st.Seq:
		t.Fatalf("outcome of %q (seq %d) not after its statement (seq %d)", sqlText, o.Seq, st.Seq)
	}
	return st, o
}

// OutcomeOf returns the outcome record of a statement record, nil if none.
func OutcomeOf(recs []*record.Record, stmt *record.Record) *record.Record {
	return outcomeAfter(recs, stmt)
}

// StatementOf returns the statement record of an outcome record, nil if none.
func StatementOf(recs []*record.Record, outcome *record.Record) *record.Record {
	for _, r := range recs {
		if r.Event == record.EventStatement && r.SessionID == outcome.SessionID && r.StatementID == outcome.StatementID {
			return r
		}
	}
	return nil
}

func outcomeAfter(recs []*record.Record, stmt *record.Record) *record.Record {
	for _, o := range recs {
		if o.Event == record.EventOutcome && o.SessionID == stmt.SessionID && o.StatementID == stmt.StatementID {
			return o
		}
	}
	return nil
}

// Sessions returns the ids of the sessions started, in journal order.
func Sessions(recs []*record.Record) []string {
	var ids []string
	for _, r := range recs {
		if r.Event == record.EventSessionStart {
			ids = append(ids, r.SessionID)
		}
	}
	return ids
}

// SessionEvent returns the first record of an event (session.start,
// session.end, ...) of a session, nil if none.
func SessionEvent(recs []*record.Record, event, sessionID string) *record.Record {
	for _, r := range recs {
		if r.Event == event && r.SessionID == sessionID {
			return r
		}
	}
	return nil
}

// Count returns how many records pred accepts.
func Count(recs []*record.Record, pred func(*record.Record) bool) int {
	n := 0
	for _, r := range recs {
		if pred(r) {
			n++
		}
	}
	return n
}
