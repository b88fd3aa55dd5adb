package main

import (
	"testing"

	"github.com/sqlwarden/sqlwarden/pkg/policy"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
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
	p := policyAdapter{engine: pe, cache: newClassCache()}
	decide := func(sql string) (*proxy.Statement, proxy.Verdict) {
		st := p.Classify(sql, "shop")
		return st, p.Decide(&proxy.Identity{Name: "agent"}, st, proxy.Session{Command: "COM_QUERY"})
	}
	if st, v := decide("SELECT 1"); st.Classification.Kind != "SELECT" || v.Action != "allow" {
		t.Fatalf("SELECT 1: %s %s", st.Classification.Kind, v.Action)
	}
	if st, _ := decide("SELECT 2"); !st.Cacheable || p.cache.get("shop\x00select ?") == nil {
		t.Fatalf("plain selects are not cached: %+v", st)
	}
	for _, q := range []string{
		"SELECT 1 /*M! ; DROP TABLE t */",
		"SELECT 1 /*m!100000 ; DROP TABLE t */",
	} {
		st, v := decide(q)
		if st.Classification.Kind != "DROP_TABLE" || v.Action != "deny" {
			t.Errorf("%q after a cached SELECT: kind %s, action %s; want DROP_TABLE, deny", q, st.Classification.Kind, v.Action)
		}
	}
}

// The proxy and the policy name the limits alike (records and metrics use
// the proxy's names, the policy file the policy's).
func TestLimitKindsAgree(t *testing.T) {
	if int(proxy.NumLimitKinds) != int(policy.NumLimitKinds) {
		t.Fatalf("proxy has %d limit kinds, policy %d", proxy.NumLimitKinds, policy.NumLimitKinds)
	}
	for k := range int(policy.NumLimitKinds) {
		if a, b := proxy.LimitKind(k).String(), policy.LimitKind(k).String(); a != b {
			t.Errorf("limit %d: proxy %q, policy %q", k, a, b)
		}
	}
}
