package proxytest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// TestBackendWithGoMySQL: a real client library logs in to the fake
// backend and reads its canned replies in both protocols.
func TestBackendWithGoMySQL(t *testing.T) {
	b := NewBackend()
	defer b.Close()
	b.Handle("SELECT name FROM shop.users WHERE id = 1", Rows("shop", "users", []string{"name"}, []any{"ada"}))
	b.HandlePrepared("SELECT id, name FROM shop.users WHERE id = ?", 1, &Result{
		Columns: []Column{{Schema: "shop", Table: "users", Name: "id", Type: gm.MYSQL_TYPE_LONGLONG}, {Schema: "shop", Table: "users", Name: "name"}},
		Rows:    [][]any{{int64(7), "grace"}, {int64(8), nil}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.ConnectWithDialer(ctx, "tcp", "x", "u", "p", "shop", b.Dial)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.GetServerVersion() != b.Version {
		t.Errorf("server version %q, want %q", c.GetServerVersion(), b.Version)
	}
	r, err := c.Execute("SELECT @@session.sql_mode, @@session.character_set_client")
	if err != nil {
		t.Fatal(err)
	}
	if mode, _ := r.GetString(0, 0); mode != "STRICT_TRANS_TABLES" {
		t.Errorf("sql_mode %q", mode)
	}
	r, err = c.Execute("SELECT name FROM shop.users WHERE id = 1")
	if err != nil {
		t.Fatal(err)
	}
	if name, _ := r.GetString(0, 0); name != "ada" || r.RowNumber() != 1 {
		t.Errorf("got %q in %d rows", name, r.RowNumber())
	}
	r, err = c.Execute("UPDATE shop.users SET name = 'x'")
	if err != nil || r.AffectedRows != 0 {
		t.Fatalf("default reply: %v %+v", err, r)
	}
	st, err := c.Prepare("SELECT id, name FROM shop.users WHERE id = ?")
	if err != nil {
		t.Fatal(err)
	}
	r, err = st.Execute(7)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := r.GetInt(0, 0); id != 7 || r.RowNumber() != 2 {
		t.Errorf("execute: id %d, %d rows", id, r.RowNumber())
	}
	if null, _ := r.IsNull(1, 1); !null {
		t.Error("second row's name is not NULL")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	b.Handle("SELECT boom", Error(1146, "42S02", "Table 'shop.boom' doesn't exist"))
	_, err = c.Execute("SELECT boom")
	var me *gm.MyError
	if !errors.As(err, &me) || me.Code != 1146 {
		t.Fatalf("error reply: %v", err)
	}
}

// TestClientByHand: the hand-rolled client reads the same replies, and
// allocates nothing per statement once warm.
func TestClientByHand(t *testing.T) {
	b := NewBackend()
	defer b.Close()
	b.Handle("SELECT 1", Rows("", "", []string{"1"}, []any{"1"}, []any{"2"}))
	b.HandlePrepared("SELECT ?", 1, Rows("", "", []string{"?"}, []any{"x"}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, b.Dial, "u", "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Query("SELECT 1"); err != nil || c.Rows != 2 {
		t.Fatalf("query: %v, %d rows", err, c.Rows)
	}
	id, err := c.Prepare("SELECT ?")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Execute(id, []byte("a")); err != nil || c.Rows != 1 {
		t.Fatalf("execute: %v, %d rows", err, c.Rows)
	}
	var se *wire.ServerError
	if err := c.Execute(id+1, []byte("a")); !errors.As(err, &se) || se.Code != 1243 {
		t.Fatalf("unknown statement: %v", err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := c.Query("SELECT 1"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per query, want 0", allocs)
	}
}

func BenchmarkClientByHand(b *testing.B) {
	be := NewBackend()
	defer be.Close()
	be.Handle("SELECT 1", Rows("", "", []string{"1"}, []any{"1"}))
	c, err := Connect(context.Background(), be.Dial, "u", "", "")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Query("SELECT 1"); err != nil {
			b.Fatal(err)
		}
	}
}
