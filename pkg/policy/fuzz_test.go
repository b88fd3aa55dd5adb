package policy

import (
	"testing"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
)

func FuzzClassify(f *testing.F) {
	for _, s := range []string{
		"SELECT 1", "DELETE FROM t", "SELECT 1; DROP TABLE t", "/*!50000 DROP TABLE t */",
		"UPDATE a x JOIN b y ON x.id=y.id SET x.v=1", "WITH c AS (SELECT 1) SELECT * FROM c",
		"PREPARE s FROM 'PREPARE t FROM ''DELETE FROM u'''", "SELECT * FROM t INTO OUTFILE '/x'",
		"select sleep(1)", "\x00\xff'", "SELECT '", "-- only a comment",
		"CREATE PROCEDURE p() DELETE FROM t", "CALL x.p(1)", "SELECT d.f(1)", "GRANT ALL ON *.* TO u",
		"SET GLOBAL x = 1, @@global.y = 2", "SELECT LOAD_FILE('/x')", "LOAD DATA INFILE '/x' INTO TABLE t",
		"DELETE FROM t WHERE id = id OR 1", "DELETE FROM t WHERE NOT (a_id IS NULL) AND (x BETWEEN x AND x)",
		"EXECUTE IMMEDIATE 'SELECT ?' USING 1", "EXECUTE/**/IMMEDIATE @q", "EXECUTE IMMEDIATE 'a\\'", "BEGIN PREPARE s FROM @q; END",
	} {
		f.Add(s, "db")
	}
	e, err := Load("")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sql, db string) {
		s := statement.Classify(sql, db)
		if s == nil || s.Kind == "" {
			t.Fatalf("Classify(%q) = %+v", sql, s)
		}
		if s.Parsed != (s.Err == "") {
			t.Fatalf("Parsed but Err: %+v", s)
		}
		if len(s.Nodes) > 0 && len(s.Kinds) != s.Count {
			t.Fatalf("Kinds %q but Count %d", s.Kinds, s.Count)
		}
		d := decide(e, input{Statement: s})
		if !d.Action.Valid() {
			t.Fatalf("Decide = %+v", d)
		}
		if !s.Parsed && d.Action != record.ActionDeny {
			t.Fatalf("unparsed %q decided %+v", sql, d)
		}
		// The built-in policy never allows what runs unjudged code, manages
		// accounts, changes the server or touches its files.
		if (len(s.Routines) > 0 && d.Action == record.ActionAllow) ||
			((s.AccountManagement || s.SetsGlobal || s.FileIO) && d.Action != record.ActionDeny) {
			t.Fatalf("%q (%+v) decided %+v", sql, s, d)
		}
		// Whatever the parser reads as DROP or TRUNCATE is denied.
		for _, k := range s.Kinds {
			if (k == "DROP_TABLE" || k == "TRUNCATE") && d.Action != record.ActionDeny {
				t.Fatalf("%q (%s) decided %+v", sql, k, d)
			}
		}
	})
}

func FuzzPolicyFile(f *testing.F) {
	f.Add([]byte(DefaultPolicy))
	f.Add([]byte("default: deny\nrules:\n  - {name: a, match: 'identity.name == \"x\"', action: allow}\n"))
	f.Add([]byte("masking:\n  - {name: m, columns: [a.b.c], strategy: hash}\n"))
	f.Add([]byte("rules: [{name: a, action: approve, identities: ['agent-*'], on_error: skip}]"))
	f.Add([]byte("rules:\n  - {name: a, action: deny, match: 'statement.tables.exists(t, t.matches(\"^shop\\\\.\"))'}\n"))
	f.Add([]byte("limits:\n  - {name: a, identities: ['agent-*'], max_rows: 10, max_result_bytes: 4MiB, on_exceed: truncate}\n  - {name: b, statement_timeout: 1500ms, max_connections: 2, read_only: true}\n"))
	f.Add([]byte("limits: [{name: x, max_result_bytes: '18446744073709551615', max_statements_per_second: 0}]"))
	f.Add([]byte("{"))
	in := input{Statement: statement.Classify("DELETE FROM t WHERE id = 1", "shop")}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := New(Options{Data: data})
		if err != nil {
			return
		}
		if d := decide(e, in); !d.Action.Valid() {
			t.Fatalf("Decide = %+v", d)
		}
		_ = e.Masking()
		for _, name := range []string{"", "agent-1", "x"} {
			l := e.LimitsFor(name)
			for k := record.LimitKind(0); k < record.NumLimitKinds; k++ {
				if l.IsSet(k) == (l.Value(k) == nil) {
					t.Fatalf("limit %s: set %v but value %v", k, l.IsSet(k), l.Value(k))
				}
			}
		}
	})
}

func FuzzByteSize(f *testing.F) {
	for _, s := range []string{"4MiB", "512KB", "1000", " 7 k ", "1GiB", "0", "18446744073709551615", "17179869184GiB", "x", "-1", "1.5MB", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseByteSize(s)
		if err != nil {
			return
		}
		// What String prints parses back to the same size.
		if b2, err := ParseByteSize(b.String()); err != nil || b2 != b {
			t.Fatalf("ParseByteSize(%q) = %d, String %q parses to %d, %v", s, b, b.String(), b2, err)
		}
	})
}
