package proxy_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/proxy"
	"github.com/sqlwarden/sqlwarden/pkg/proxy/proxytest"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
)

// boundPolicy sets max_affected_rows 1 for everyone and treats UPDATE as a
// write to shop.t.
type boundPolicy struct{ wordPolicy }

func (boundPolicy) Limits(string) record.Limits {
	l := record.Limits{MaxAffectedRows: 1}
	l.By[record.LimitMaxAffectedRows] = "blast"
	return l
}

func (boundPolicy) BoundWrite(st *statement.Statement, _ string) statement.BoundedWrite {
	if st.Classification.Kind == "UPDATE" {
		return statement.BoundedWrite{Write: true, Tables: []statement.TableRef{{Schema: "shop", Name: "t"}}}
	}
	return statement.BoundedWrite{}
}

func boundHarness(t *testing.T, engine string) *harness {
	return boundHarnessWith(t, engine, 0, 0)
}

// boundHarnessWith answers the table lookup with engine, and whether the
// table is the parent of a cascading foreign key and has triggers.
func boundHarnessWith(t *testing.T, engine string, cascades, triggers int64) *harness {
	h := newHarness(t, func(o *proxy.Options) { o.Policy = boundPolicy{} })
	h.be.Handle(proxy.TableLookupQuery("shop", "t"), proxytest.Rows("information_schema", "TABLES",
		[]string{"ENGINE", "TABLE_TYPE", "VIEW_DEFINITION", "CASCADES", "TRIGGERS"}, []any{engine, "BASE TABLE", nil, cascades, triggers}))
	return h
}

// after returns what the backend received after (and including) the first
// occurrence of sql.
func after(be *proxytest.Backend, sql string) []string {
	got := be.Received()
	if i := slices.Index(got, sql); i >= 0 {
		return got[i:]
	}
	return nil
}

func TestBoundedWriteCommits(t *testing.T) {
	h := boundHarness(t, "InnoDB")
	const q = "UPDATE t SET a = 1 WHERE id = 1"
	h.be.Handle(q, proxytest.OK(1))
	c := h.connect(t)
	r, err := c.Conn.Execute(q)
	if err != nil {
		t.Fatal(err)
	}
	if r.AffectedRows != 1 {
		t.Fatalf("affected %d", r.AffectedRows)
	}
	want := []string{"START TRANSACTION", q, "COMMIT AND NO CHAIN NO RELEASE"}
	if got := after(h.be, "START TRANSACTION"); !slices.Equal(got, want) {
		t.Fatalf("backend received %q, want %q", got, want)
	}
}

func TestBoundedWriteRollsBack(t *testing.T) {
	h := boundHarness(t, "InnoDB")
	const q = "UPDATE t SET a = 1 WHERE id IS NOT NULL"
	h.be.Handle(q, proxytest.OK(5))
	c := h.connect(t)
	_, err := c.Conn.Execute(q)
	var me *gm.MyError
	if !errors.As(err, &me) || me.Code != 1226 || me.Message != "sqlwarden: limit blast: max_affected_rows: statement changed 5 rows, more than 1: rolled back" {
		t.Fatalf("got %v", err)
	}
	want := []string{"START TRANSACTION", q, "ROLLBACK AND NO CHAIN NO RELEASE"}
	if got := after(h.be, "START TRANSACTION"); !slices.Equal(got, want) {
		t.Fatalf("backend received %q, want %q", got, want)
	}
	_, out := h.audit.statement(t, q)
	if out.Status != record.StatusError || out.Error == nil || out.Error.Code != 1226 || out.Limit == nil || out.Limit.Kind != "max_affected_rows" {
		t.Fatalf("outcome %+v", out)
	}
}

// A COMMIT that fails is the statement's failure: the client gets the
// server's error, not the statement's OK.
func TestBoundedWriteCommitFails(t *testing.T) {
	h := boundHarness(t, "InnoDB")
	const q = "UPDATE t SET a = 2 WHERE id = 1"
	h.be.Handle(q, proxytest.OK(1))
	h.be.Handle("COMMIT AND NO CHAIN NO RELEASE", proxytest.Error(1213, "40001", "Deadlock found when trying to get lock; try restarting transaction"))
	c := h.connect(t)
	_, err := c.Conn.Execute(q)
	var me *gm.MyError
	if !errors.As(err, &me) || me.Code != 1213 || me.State != "40001" {
		t.Fatalf("got %v, want the COMMIT's 1213", err)
	}
	_, out := h.audit.statement(t, q)
	if out.Status != record.StatusError || out.Error == nil || out.Error.Code != 1213 {
		t.Fatalf("outcome %+v", out)
	}
	// The session goes on.
	if _, err := c.Conn.Execute("SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

func TestBoundedWriteNonTransactional(t *testing.T) {
	h := boundHarness(t, "MyISAM")
	const q = "UPDATE t SET a = 3"
	c := h.connect(t)
	_, err := c.Conn.Execute(q)
	var me *gm.MyError
	if !errors.As(err, &me) || me.Code != 1226 || me.Message != "sqlwarden: limit blast: max_affected_rows: shop.t uses the MyISAM engine, whose writes cannot be rolled back" {
		t.Fatalf("got %v", err)
	}
	if received(h.be, q) {
		t.Fatal("the backend saw the refused write")
	}
}

// A write whose effects the server does not count — into the parent of a
// cascading foreign key, or a table with triggers — cannot be bounded: it
// is refused before the backend sees it.
func TestBoundedWriteUncountedEffects(t *testing.T) {
	for _, tc := range []struct {
		name               string
		cascades, triggers int64
		want               string
	}{
		{"cascading foreign key", 1, 0, "shop.t is the parent of a foreign key with ON DELETE/UPDATE CASCADE or SET NULL"},
		{"triggers", 0, 1, "shop.t has triggers: the rows they change are not counted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := boundHarnessWith(t, "InnoDB", tc.cascades, tc.triggers)
			const q = "UPDATE t SET a = 3"
			c := h.connect(t)
			_, err := c.Conn.Execute(q)
			var me *gm.MyError
			if !errors.As(err, &me) || me.Code != 1226 || !strings.Contains(me.Message, tc.want) {
				t.Fatalf("got %v, want ERR 1226 ...%s", err, tc.want)
			}
			if received(h.be, q) {
				t.Fatal("the backend saw the refused write")
			}
		})
	}
}
