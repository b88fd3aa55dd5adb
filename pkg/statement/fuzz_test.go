package statement

import "testing"

// FuzzReadOnly: the read-only and max_affected_rows judges never panic,
// what the read-only judge admits is, by the classifier's own account, a
// read, a session or transaction command, and a write to bound is one
// statement.
func FuzzReadOnly(f *testing.F) {
	for _, s := range []string{
		"SELECT 1", "SELECT count (1)", "SELECT `count`(1)", "SELECT nextval(s)", "SET tx_read_only=0",
		"START TRANSACTION READ WRITE", "PREPARE s FROM 'SELECT 1'; EXECUTE s", "EXECUTE s",
		"SELECT * FROM t FOR UPDATE", "SELECT 1 INTO OUTFILE '/x'", "/*M! DELETE FROM t */", "SET @@global.x=1",
		"SELECT 1 /*!99999 , f() */", "SELECT \"a\" (", "DO get_lock('a', 1)", "SHOW TABLES WHERE f()",
	} {
		f.Add(s)
	}
	reads := setOf("SELECT", "SHOW", "EXPLAIN", "EXPLAIN_FOR", "HELP", "USE", "DO", "BEGIN", "COMMIT", "ROLLBACK",
		"SAVEPOINT", "RELEASE_SAVEPOINT", "UNLOCK_TABLES", "SET", "PREPARE", "EXECUTE", "DEALLOCATE")
	prepared := func(name string) (string, bool) { return "SELECT 1", name == "s" }
	f.Fuzz(func(t *testing.T, sql string) {
		st := Classify(sql, "db")
		if b := BoundWrite(st, "db"); b.Write && (b.Refuse != "" || st.Count != 1) {
			t.Fatalf("BoundWrite(%q) = %+v", sql, b)
		}
		if ReadOnlyReason(sql, st, prepared) != "" {
			return
		}
		if !st.Parsed || st.IntoOutfile || st.DynamicSQL {
			t.Fatalf("admitted %q: %+v", sql, st)
		}
		for _, k := range st.Kinds {
			if !reads[k] {
				t.Fatalf("admitted %q of kind %s", sql, k)
			}
		}
	})
}
