package statement

import (
	"slices"
	"testing"

	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
)

// TestFacts: the facts the proxy acts on are derived when a statement is
// classified, from the statements the server will run.
func TestFacts(t *testing.T) {
	maria := sqltext.Dialect{Server: sqltext.Server{Flavor: sqltext.MariaDB, Version: 101119}}
	t.Run("use", func(t *testing.T) {
		if st := Classify("USE shop", ""); st.UseDB != "shop" || st.Cacheable {
			t.Errorf("USE shop: UseDB %q, cacheable %v", st.UseDB, st.Cacheable)
		}
	})
	t.Run("kill", func(t *testing.T) {
		if st := Classify("KILL 42", ""); st.KillTarget != 42 {
			t.Errorf("KILL 42: target %d", st.KillTarget)
		}
		// A KILL hidden in an executable comment is what the server runs.
		if st := ClassifyAs("SELECT 1 /*M! ; KILL 7 */", "", maria); st.KillTarget != 7 || st.Count != 2 {
			t.Errorf("executable KILL: target %d, count %d", st.KillTarget, st.Count)
		}
	})
	t.Run("local infile", func(t *testing.T) {
		if st := Classify("LOAD DATA LOCAL INFILE '/x' INTO TABLE t", "shop"); !st.LocalInfile || st.FileIO {
			t.Errorf("LOCAL: local %v, file_io %v", st.LocalInfile, st.FileIO)
		}
		if st := Classify("LOAD DATA INFILE '/x' INTO TABLE t", "shop"); st.LocalInfile || !st.FileIO {
			t.Errorf("server file: local %v, file_io %v", st.LocalInfile, st.FileIO)
		}
	})
	t.Run("prepare", func(t *testing.T) {
		st := Classify("PREPARE S1 FROM 'SELECT 1'; USE shop; PREPARE s2 FROM @q; DEALLOCATE PREPARE S1", "")
		d := sqltext.Dialect{Server: sqltext.DefaultServer}
		want := []Prepare{{Name: "s1", Text: "SELECT 1", Dialect: d}, {Name: "s2", Dynamic: true, DB: "shop", Dialect: d}}
		if !slices.Equal(st.Prepares, want) || !slices.Equal(st.Deallocates, []string{"s1"}) {
			t.Errorf("prepares %+v, deallocates %q", st.Prepares, st.Deallocates)
		}
		if st.Cacheable {
			t.Error("a PREPARE is cacheable")
		}
	})
	t.Run("reread", func(t *testing.T) {
		for sql, want := range map[string]bool{
			"SET sql_mode = 'ANSI_QUOTES'": true, "SET NAMES utf8mb4": true, "EXECUTE s": true,
			"SELECT FROM": true, "SET @a = 1": false, "SELECT 1": false,
		} {
			if st := Classify(sql, ""); st.Reread != want {
				t.Errorf("%q: reread %v, want %v", sql, st.Reread, want)
			}
		}
	})
	t.Run("cacheable", func(t *testing.T) {
		for sql, want := range map[string]bool{
			"SELECT c FROM t WHERE id = 1": true, "UPDATE t SET a = 1 WHERE id = 2": true,
			"SELECT 1; SELECT 2": false, "SHOW TABLES": false, "SELECT FROM": false,
		} {
			if st := Classify(sql, "shop"); st.Cacheable != want {
				t.Errorf("%q: cacheable %v, want %v", sql, st.Cacheable, want)
			}
		}
		ansi := maria
		ansi.Mode = sqltext.ANSIQuotes
		if ClassifyAs("SELECT 1", "", ansi).Cacheable {
			t.Error("cacheable under ANSI_QUOTES")
		}
	})
	t.Run("record", func(t *testing.T) {
		st := Classify("DELETE FROM a WHERE id = 1; SELECT * FROM b", "shop")
		c := st.Classification
		if c == nil || c.Kind != "DELETE" || c.Statements != 2 || !slices.Equal(c.Kinds, []string{"DELETE", "SELECT"}) ||
			!slices.Equal(c.TablesWrite, []string{"shop.a"}) || !slices.Equal(c.TablesRead, []string{"shop.b"}) {
			t.Errorf("record %+v", c)
		}
		if c := Classify("SELECT 1", "").Classification; c == nil || c.Kinds != nil {
			t.Errorf("one statement: record %+v", c)
		}
	})
	t.Run("credentials", func(t *testing.T) {
		for sql, want := range map[string]bool{"SHOW GRANTS": true, "CALL p()": true, "EXECUTE s": true, "SELECT 1": false} {
			if st := Classify(sql, "shop"); st.ShowsCredentials != want {
				t.Errorf("%q: shows credentials %v, want %v", sql, st.ShowsCredentials, want)
			}
		}
	})
}

// ChangesSchema: what can change tables or views, which masking follows —
// DDL, and what runs statements out of sight — and not plain reads and writes.
func TestChangesSchema(t *testing.T) {
	for sql, want := range map[string]bool{
		"SELECT id FROM t WHERE id = 1":                 false,
		"UPDATE t SET a = 1 WHERE id = 2":               false,
		"SET @x = 1":                                    false,
		"CREATE OR REPLACE VIEW v AS SELECT a FROM t":   true,
		"ALTER TABLE t MODIFY a INT AFTER b":            true,
		"RENAME TABLE t TO u":                           true,
		"DROP VIEW v":                                   true,
		"CALL shop.p()":                                 true,
		"EXECUTE s":                                     true,
		"PREPARE s FROM @q":                             true,
		"SELECT 1; CREATE VIEW v AS SELECT 1":           true,
		"SELECT * FROM t WHERE":                         true, // unparsed
		"EXECUTE IMMEDIATE 'CREATE VIEW v AS SELECT 1'": true,
	} {
		if got := Classify(sql, "shop").ChangesSchema; got != want {
			t.Errorf("%q: ChangesSchema %v, want %v", sql, got, want)
		}
	}
}

// TestClassifyPrepared: an EXECUTE is classified as what it runs — a
// PREPARE earlier in the text, else the session's statement of that name,
// read in its database and dialect; an unknown name is left in Executes,
// and names outside ASCII are refused.
func TestClassifyPrepared(t *testing.T) {
	d := sqltext.Dialect{Server: sqltext.DefaultServer}
	nbe := sqltext.Dialect{Server: sqltext.DefaultServer, Mode: sqltext.NoBackslashEscapes}
	session := map[string]Prepare{
		"del": {Name: "del", Text: "DELETE FROM t", DB: "shop", Dialect: d},
		"nb":  {Name: "nb", Text: `SELECT 'a\', (SELECT v FROM vault) -- '`, DB: "shop", Dialect: nbe},
	}
	lookup := func(n string) (Prepare, bool) { p, ok := session[n]; return p, ok }

	st := ClassifyPrepared("EXECUTE DEL", "other", d, lookup)
	if st.Kind != "DELETE" || !slices.Equal(st.TablesWritten, []string{"shop.t"}) || st.HasWhere || !slices.Equal(st.Runs, []string{"DELETE FROM t"}) {
		t.Errorf("EXECUTE del: kind %s, written %v, has_where %v, runs %q", st.Kind, st.TablesWritten, st.HasWhere, st.Runs)
	}
	if st := ClassifyPrepared("EXECUTE nb", "other", d, lookup); !slices.Equal(st.TablesRead, []string{"shop.vault"}) {
		t.Errorf("EXECUTE of a text prepared under NO_BACKSLASH_ESCAPES reads %v, want shop.vault", st.TablesRead)
	}
	st = ClassifyPrepared("PREPARE x FROM 'UPDATE u SET a = 1'; EXECUTE x", "db", d, lookup)
	if st.Kind != "UPDATE" || len(st.Executes) != 0 {
		t.Errorf("EXECUTE of a PREPARE in the same text: kind %s, unknown %v", st.Kind, st.Executes)
	}
	if st := ClassifyPrepared("EXECUTE nope", "db", d, lookup); !slices.Equal(st.Executes, []string{"nope"}) {
		t.Errorf("EXECUTE of an unknown name: unknown %v", st.Executes)
	}
	if st := Classify("EXECUTE `dσ`", "db"); st.Refused == "" {
		t.Error("a name outside ASCII was not refused")
	}
}
