package proxy

import (
	"regexp"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
)

var timeoutVarRe = regexp.MustCompile(`(?i)max_(?:statement|execution)_time`)

func TestMentionsTimeoutVar(t *testing.T) {
	for _, sql := range []string{
		"SET max_statement_time = 0", "set @@SESSION.MAX_STATEMENT_TIME=1", "SET STATEMENT max_statement_time=0 FOR SELECT 1",
		"SET `max_execution_time` = 0", "/*!SET max_execution_time=0*/", "max_statement_time", "SELECT 1", "",
		"SELECT a_time, max_statement FROM t", "x_time", "_time", "max_statement_tim", "MAX_STATEMENT_TIMEX",
		"select max_statementtime", "ma_statement_time", "__time_", "max_execution_TIME", "é_max_statement_time",
	} {
		if got, want := mentionsTimeoutVar(sql), timeoutVarRe.MatchString(sql); got != want {
			t.Errorf("mentionsTimeoutVar(%q) = %v, want %v", sql, got, want)
		}
	}
}

func FuzzMentionsTimeoutVar(f *testing.F) {
	for _, s := range []string{"SET max_statement_time=0", "SELECT a_time", "_", "max_execution_time", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		if got, want := mentionsTimeoutVar(sql), timeoutVarRe.MatchString(sql); got != want {
			t.Fatalf("mentionsTimeoutVar(%q) = %v, regexp says %v", sql, got, want)
		}
	})
}

func TestSetsTimeout(t *testing.T) {
	sel := &statement.Statement{Parsed: true, Classification: &record.Classification{Kind: "SELECT"}}
	set := &statement.Statement{Parsed: true, Classification: &record.Classification{Kind: "SET"}}
	multi := &statement.Statement{Parsed: true, Classification: &record.Classification{Kind: "SET", Kinds: []string{"SELECT", "SET"}, Statements: 2}}
	unparsed := &statement.Statement{Classification: &record.Classification{Kind: "UNPARSED"}}
	for _, tc := range []struct {
		sql  string
		st   *statement.Statement
		want bool
	}{
		{"SELECT @@max_statement_time", sel, false},
		{"SET max_statement_time = 0", set, true},
		{"SET @x = 1", set, false},
		{"SELECT 1; SET max_statement_time = 0", multi, true},
		{"SET STATEMENT max_statement_time=0 FOR SELECT SLEEP(9)", unparsed, true},
		{"SELECT max_statement_time", nil, true},
	} {
		if got := setsTimeout(tc.sql, tc.st); got != tc.want {
			t.Errorf("setsTimeout(%q) = %v, want %v", tc.sql, got, tc.want)
		}
	}
}

func TestTokenBucket(t *testing.T) {
	var st identState
	now := time.Unix(1000, 0)
	ok := 0
	for range 10 {
		if st.take(4, 1, now) {
			ok++
		}
	}
	if ok != 4 {
		t.Fatalf("burst: %d of 10 taken at rate 4, want 4", ok)
	}
	if st.take(4, 1, now.Add(200*time.Millisecond)) {
		t.Fatal("0.8 tokens after 200ms at 4/s, but one was taken")
	}
	if !st.take(4, 1, now.Add(300*time.Millisecond)) {
		t.Fatal("1.2 tokens after 300ms at 4/s, but none was taken")
	}
	// A long pause refills to the burst, no more.
	ok = 0
	for range 10 {
		if st.take(4, 1, now.Add(time.Hour)) {
			ok++
		}
	}
	if ok != 4 {
		t.Fatalf("after an idle hour: %d taken, want 4", ok)
	}
	// A lower rate after a reload caps the bucket at once.
	if !st.take(1, 1, now.Add(2*time.Hour)) || st.take(1, 1, now.Add(2*time.Hour)) {
		t.Fatal("rate 1: want exactly one token")
	}
	// A multi-statement takes a token per statement, all or none.
	later := now.Add(3 * time.Hour)
	if !st.take(4, 3, later) || st.take(4, 2, later) || !st.take(4, 1, later) {
		t.Fatal("rate 4: 3 statements then 2 (refused, none taken) then 1: want taken, refused, taken")
	}
}

func TestLimitsHit(t *testing.T) {
	l := record.Limits{MaxRows: 10, StatementTimeout: 1500 * time.Millisecond, ReadOnly: true}
	l.By[record.LimitMaxRows], l.By[record.LimitStatementTimeout], l.By[record.LimitReadOnly] = "a", "b", "c"
	for _, tc := range []struct {
		k    record.LimitKind
		want record.LimitHit
	}{
		{record.LimitMaxRows, record.LimitHit{Name: "a", Kind: "max_rows", Value: uint64(10)}},
		{record.LimitStatementTimeout, record.LimitHit{Name: "b", Kind: "statement_timeout", Value: "1.5s"}},
		{record.LimitReadOnly, record.LimitHit{Name: "c", Kind: "read_only", Value: true}},
	} {
		if got := l.Hit(tc.k); *got != tc.want {
			t.Errorf("Hit(%s) = %+v, want %+v", tc.k, *got, tc.want)
		}
	}
	if !l.IsSet(record.LimitMaxRows) || l.IsSet(record.LimitMaxConnections) {
		t.Error("IsSet")
	}
}
