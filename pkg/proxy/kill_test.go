package proxy

import (
	"strings"
	"testing"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
)

func TestCheckKillSQL(t *testing.T) {
	srv := &Server{}
	// Backend "db": thread 7 is ours (greeting id proxyConnIDBase+1), thread 9 another identity's.
	srv.threads.Store(threadKey{"db", 7}, "agent")
	srv.threads.Store(threadKey{"db", 9}, "other")
	srv.threads.Store(threadKey{"elsewhere", 8}, "agent")
	srv.conns.Store(uint32(proxyConnIDBase+1), threadKey{"db", 7})
	srv.conns.Store(uint32(proxyConnIDBase+2), threadKey{"db", 9})
	srv.conns.Store(uint32(proxyConnIDBase+3), threadKey{"elsewhere", 8})
	s := &session{srv: srv, identity: &Identity{Name: "agent"}, beName: "db"}
	kill := func(target uint64) *statement.Statement {
		return &statement.Statement{Parsed: true, KillTarget: target, Classification: &record.Classification{Kind: "KILL", Statements: 1}}
	}
	tests := []struct {
		name    string
		sql     string
		st      *statement.Statement
		forward string // "" = unchanged
		refused string // substring of the refusal
	}{
		{"own backend thread", "KILL 7", kill(7), "", ""},
		{"own greeting id is translated", "KILL QUERY 1073741825", kill(proxyConnIDBase + 1), "KILL QUERY 7", ""},
		{"translated after a comment, HARD and CONNECTION", "/* cancel */ KILL HARD CONNECTION 1073741825;", kill(proxyConnIDBase + 1),
			"/* cancel */ KILL HARD CONNECTION 7;", ""},
		{"another identity's thread", "KILL 9", kill(9), "", "does not belong"},
		{"another identity's greeting id", "KILL 1073741826", kill(proxyConnIDBase + 2), "", "does not belong"},
		{"own connection on another backend", "KILL 1073741827", kill(proxyConnIDBase + 3), "", "does not belong"},
		{"unknown greeting id", "KILL 1073741999", kill(proxyConnIDBase + 999), "", "does not belong"},
		{"KILL in a multi-statement", "SELECT 1; KILL 7", &statement.Statement{Parsed: true, KillTarget: 7,
			Classification: &record.Classification{Kind: "KILL", Kinds: []string{"SELECT", "KILL"}, Statements: 2}}, "", "only statement"},
		{"KILL USER the parser cannot read", "KILL USER warden", &statement.Statement{}, "", "cannot check"},
		{"not a KILL", "SELECT 'kill'", &statement.Statement{Parsed: true, Classification: &record.Classification{Kind: "SELECT", Statements: 1}}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fwd, msg := s.checkKillSQL(tc.sql, tc.st)
			if tc.refused != "" {
				if !strings.Contains(msg, tc.refused) {
					t.Fatalf("refusal %q, want one containing %q", msg, tc.refused)
				}
				return
			}
			if msg != "" || fwd != tc.forward {
				t.Fatalf("forward %q refusal %q, want %q", fwd, msg, tc.forward)
			}
		})
	}
}
