package audit

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// Filter selects records for `audit search`. Zero fields match everything.
// Status, Table and Digest are statement-level: they select a statement and
// its outcome together (and no session or checkpoint records).
type Filter struct {
	Identity string // session identity name or subject
	Session  string
	Event    string
	Since    time.Time
	Until    time.Time
	Status   string // success | error | blocked
	Table    string // table or db.table, read or written
	Digest   string
	Node     string // the node that wrote the record
}

func (f Filter) statementLevel() bool { return f.Status != "" || f.Table != "" || f.Digest != "" }

type stmtKey struct {
	session string
	id      uint64
}

// Search calls fn for every record matching f, in journal order (a
// statement is delivered right before its outcome when statement-level
// filters are set).
func Search(dir string, f Filter, fn func(*record.Record) error) error {
	return SearchFrom(func(each func(*record.Record) error) error { return ReadAll(dir, each) }, f, fn)
}

// SearchFrom is Search over any record source (package sink reads the NATS
// stream with it): read calls each with
// every record in order.
func SearchFrom(read func(each func(*record.Record) error) error, f Filter, fn func(*record.Record) error) error {
	idents := map[string]*record.Identity{}
	pending := map[stmtKey]*record.Record{}
	var last *record.Record
	err := read(func(r *record.Record) error {
		last = r
		if r.Identity != nil && r.SessionID != "" {
			idents[r.SessionID] = r.Identity
		}
		if !f.matchCommon(r, idents) {
			if r.Event == record.EventSessionEnd {
				delete(idents, r.SessionID)
			}
			return nil
		}
		if r.Event == record.EventSessionEnd {
			defer delete(idents, r.SessionID)
		}
		if !f.statementLevel() {
			return fn(r)
		}
		switch r.Event {
		case record.EventStatement:
			pending[stmtKey{r.SessionID, r.StatementID}] = r
		case record.EventOutcome:
			k := stmtKey{r.SessionID, r.StatementID}
			st := pending[k]
			delete(pending, k)
			if f.matchStatement(st, r) {
				if st != nil {
					if err := fn(st); err != nil {
						return err
					}
				}
				return fn(r)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	_ = last
	if f.Status == "" {
		for _, st := range pending {
			if f.matchStatement(st, nil) {
				if err := fn(st); err != nil && err != ErrStop {
					return err
				}
			}
		}
	}
	return nil
}

func (f Filter) matchCommon(r *record.Record, idents map[string]*record.Identity) bool {
	if f.Node != "" && r.Node != f.Node {
		return false
	}
	if f.Session != "" && r.SessionID != f.Session {
		return false
	}
	if f.Event != "" && r.Event != f.Event {
		return false
	}
	if !f.Since.IsZero() && r.TS.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && r.TS.After(f.Until) {
		return false
	}
	if f.Identity != "" {
		id := idents[r.SessionID]
		if id == nil || (id.Name != f.Identity && id.Subject != f.Identity) {
			return false
		}
	}
	return true
}

func (f Filter) matchStatement(st, out *record.Record) bool {
	if f.Status != "" && (out == nil || out.Status != f.Status) {
		return false
	}
	if f.Digest != "" && (st == nil || st.Digest != f.Digest) {
		return false
	}
	if f.Table != "" {
		if st == nil || st.Statement == nil {
			return false
		}
		ok := false
		for _, t := range append(append([]string{}, st.Statement.TablesRead...), st.Statement.TablesWrite...) {
			if tableMatches(t, f.Table, st.DB) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func tableMatches(have, want, db string) bool {
	have, want = strings.ToLower(have), strings.ToLower(want)
	if have == want {
		return true
	}
	if !strings.Contains(want, ".") {
		_, t, ok := strings.Cut(have, ".")
		return ok && t == want
	}
	if !strings.Contains(have, ".") && db != "" {
		return strings.ToLower(db)+"."+have == want
	}
	return false
}

// FormatPretty renders a record as one human-readable line for `audit tail`.
func FormatPretty(r *record.Record) string {
	var b strings.Builder
	b.WriteString(r.TS.UTC().Format("2006-01-02T15:04:05.000000Z"))
	fmt.Fprintf(&b, " %6d %-14s", r.Seq, r.Event)
	if r.SessionID != "" {
		b.WriteString(" session=" + r.SessionID)
	}
	switch r.Event {
	case record.EventSessionStart, record.EventSessionDenied:
		if r.Identity != nil {
			fmt.Fprintf(&b, " identity=%s(%s)", r.Identity.Name, r.Identity.Source)
		}
		if r.Client != nil {
			b.WriteString(" client=" + r.Client.Addr)
		}
		if r.Backend != nil {
			b.WriteString(" backend=" + r.Backend.Address)
		}
		if r.Reason != "" {
			b.WriteString(" reason=" + strconv.Quote(r.Reason))
		}
	case record.EventStatement:
		fmt.Fprintf(&b, " #%d %s", r.StatementID, r.Command)
		if r.DB != "" {
			b.WriteString(" db=" + r.DB)
		}
		if r.SQL != "" {
			b.WriteString(" " + strconv.Quote(oneLine(r.SQL, 200)))
		}
		if len(r.Params) > 0 {
			fmt.Fprintf(&b, " params=%d", len(r.Params))
		}
	case record.EventOutcome:
		fmt.Fprintf(&b, " #%d %s", r.StatementID, r.Status)
		if r.Rows != nil {
			fmt.Fprintf(&b, " rows=%d", *r.Rows)
		}
		if r.AffectedRows != nil {
			fmt.Fprintf(&b, " affected=%d", *r.AffectedRows)
		}
		if r.Error != nil {
			fmt.Fprintf(&b, " error=%d %s", r.Error.Code, strconv.Quote(r.Error.Message))
		}
		if r.DurationUS != nil {
			fmt.Fprintf(&b, " %dµs", *r.DurationUS)
		}
		if r.Policy != nil && r.Policy.Action != "" {
			fmt.Fprintf(&b, " policy=%s:%s", r.Policy.Rule, r.Policy.Action)
		}
		if len(r.Masked) > 0 {
			fmt.Fprintf(&b, " masked=%d", len(r.Masked))
		}
	case record.EventSessionEnd:
		if r.Statements != nil {
			fmt.Fprintf(&b, " statements=%d", *r.Statements)
		}
		if r.Reason != "" {
			b.WriteString(" reason=" + strconv.Quote(r.Reason))
		}
	case record.EventCheckpoint:
		if c := r.Checkpoint; c != nil {
			fmt.Fprintf(&b, " records=%d head=%s key=%s", c.Records, short(c.Head), c.KeyID)
			if c.Final {
				b.WriteString(" final")
			}
		}
		if r.Reason != "" {
			b.WriteString(" " + strconv.Quote(r.Reason))
		}
	}
	return b.String()
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
