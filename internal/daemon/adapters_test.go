package daemon

import (
	"testing"

	"github.com/sqlwarden/sqlwarden/pkg/policy"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
)

// TestClassifyCacheSeesExecutableComments: the classification cache keys on
// normalized text, and the normalizer drops comments — but MariaDB runs
// /*M! ... */ ones. A cached harmless shape must never stand in for a
// statement that hides a DROP in such a comment.
func TestClassifyCacheSeesExecutableComments(t *testing.T) {
	pe, err := policy.New(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var p proxy.Policy = newPolicyDeps(pe)
	decide := func(sql string) (*statement.Statement, statement.Verdict) {
		st := p.Classify(sql, "shop", sqltext.Dialect{Server: sqltext.Server{Flavor: sqltext.MariaDB, Version: 101119}})
		return st, p.Decide(&record.Identity{Name: "agent"}, st, statement.Session{Command: "COM_QUERY"})
	}
	first, v := decide("SELECT 1")
	if first.Classification.Kind != "SELECT" || v.Action != record.ActionAllow {
		t.Fatalf("SELECT 1: %s %s", first.Classification.Kind, v.Action)
	}
	if st, _ := decide("SELECT 2"); !st.Cacheable || st != first {
		t.Fatalf("plain selects are not cached: %+v", st)
	}
	for _, q := range []string{
		"SELECT 1 /*M! ; DROP TABLE t */",
		"SELECT 1 /*M!100000 ; DROP TABLE t */",
		"SELECT 1 /*!50699 ; DROP TABLE t */",
	} {
		st, v := decide(q)
		if st.Classification.Kind != "DROP_TABLE" || v.Action != record.ActionDeny {
			t.Errorf("%q after a cached SELECT: kind %s, action %s; want DROP_TABLE, deny", q, st.Classification.Kind, v.Action)
		}
	}
}

// The proxy and the policy name the limits alike (records and metrics use
// the proxy's names, the policy file the policy's).
func TestLimitKindsAgree(t *testing.T) {
	if int(record.NumLimitKinds) != int(record.NumLimitKinds) {
		t.Fatalf("proxy has %d limit kinds, policy %d", record.NumLimitKinds, record.NumLimitKinds)
	}
	for k := range int(record.NumLimitKinds) {
		if a, b := record.LimitKind(k).String(), record.LimitKind(k).String(); a != b {
			t.Errorf("limit %d: proxy %q, policy %q", k, a, b)
		}
	}
}
