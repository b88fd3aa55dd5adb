package proxy

import (
	"net"
	"testing"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// countingPolicy allows everything and counts its decisions.
type countingPolicy struct {
	decided int
	version uint64
}

func (p *countingPolicy) Classify(string, string, sqltext.Dialect) *statement.Statement { return nil }
func (p *countingPolicy) Decide(*record.Identity, *statement.Statement, statement.Session) statement.Verdict {
	p.decided++
	return statement.Verdict{Rule: "default", Action: record.ActionAllow}
}
func (p *countingPolicy) Limits(string) record.Limits { return record.Limits{} }
func (p *countingPolicy) ReadOnly(string, *statement.Statement, string, func(string) (string, bool)) (string, []statement.TableRef) {
	return "", nil
}
func (p *countingPolicy) BoundWrite(*statement.Statement, string) statement.BoundedWrite {
	return statement.BoundedWrite{}
}
func (p *countingPolicy) Version() uint64 { return p.version }

// TestDecideCached: a statement of a shape the session has decided is
// decided again from the session's cache — no policy call, no allocation —
// until the policy changes or the shape is not cacheable.
func TestDecideCached(t *testing.T) {
	pol := &countingPolicy{version: 1}
	raw, peer := net.Pipe()
	defer raw.Close()
	defer peer.Close()
	s := &session{srv: &Server{opts: Options{Policy: pol}}, raw: raw, hs: &wire.HandshakeResponse{User: "app"}, db: "shop",
		identity: &Identity{Name: "agent"}}
	st := &stmtLife{command: "COM_QUERY", db: "shop", st: &statement.Statement{Classification: &record.Classification{Kind: "SELECT"},
		Digest: "select `c` from `sbtest1` where `id` = ?", Parsed: true, Cacheable: true}}
	if v := s.decide(st); v.Action != record.ActionAllow || pol.decided != 1 {
		t.Fatalf("first decision: %+v after %d policy calls", v, pol.decided)
	}
	if n := testing.AllocsPerRun(100, func() {
		if s.decide(st).Action != record.ActionAllow {
			t.Fatal("cached verdict lost")
		}
	}); n != 0 {
		t.Errorf("a cached decision allocates %v times", n)
	}
	if pol.decided != 1 {
		t.Fatalf("the policy was asked %d times for one shape", pol.decided)
	}
	st.db = "other" // a statement of the same shape whose names are read in another database
	s.decide(st)
	pol.version++
	st.db = "shop"
	s.decide(st)
	st.st.Cacheable = false
	s.decide(st)
	if pol.decided != 4 {
		t.Fatalf("%d policy calls; want 4 (another database, a new policy, an uncacheable statement)", pol.decided)
	}
}
