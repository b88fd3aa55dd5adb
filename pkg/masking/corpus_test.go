package masking

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/internal/maskfixture"
	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/pkg/wire/rows"
)

// corpusEntry is one evasion attempt of testdata/evasion.yaml.
type corpusEntry = maskfixture.Entry

// corpusRules are the rules the corpus runs under.
var corpusRules = []Rule{
	{Name: "cards", Columns: []string{"sw_mask.customers.card"}, Strategy: StrategyPartial, Keep: 4},
	{Name: "emails", ColumnPatterns: []string{"email"}, Strategy: StrategyHash},
	{Name: "pay", Columns: []string{"sw_mask.customers.salary", "sw_mask.customers.birth", "sw_mask.customers.profile"}, Strategy: StrategyRedact},
	{Name: "pins", Columns: []string{"sw_mask.*.pin"}, Strategy: StrategyHash},
	{Name: "logins", Columns: []string{"sw_mask.customers.last_login"}, Strategy: StrategyNull},
}

func leaks(v []byte) string { return maskfixture.Leak(v) }

func setupFixture(t *testing.T) (testutil.MariaDB, *sql.DB) {
	t.Helper()
	maria := testutil.StartMariaDB(t)
	db := maria.Open(t, "")
	for _, q := range maskfixture.DDL {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return maria, db
}

func loadCorpus(t *testing.T) []corpusEntry {
	t.Helper()
	c, err := maskfixture.LoadCorpus()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEvasionCorpus runs every corpus query against the private MariaDB and
// applies Plan/RowMasker to the raw rows: each is denied or leaks nothing.
func TestEvasionCorpus(t *testing.T) {
	maria, db := setupFixture(t)
	corpus := loadCorpus(t)
	if len(corpus) < 40 {
		t.Fatalf("corpus has %d entries, want at least 40", len(corpus))
	}
	m := New(Config{Rules: corpusRules, HashKey: []byte("corpus-key"), Detectors: DetectorConfig{Cards: true, Email: true}}, SQLSchema{DB: db})
	for _, e := range corpus {
		steps := e.Steps
		if e.SQL != "" {
			steps = []string{e.SQL}
		}
		protos := []string{"text"}
		switch e.Protocol {
		case "binary":
			protos = []string{"binary"}
		case "both":
			protos = []string{"text", "binary"}
		}
		for _, proto := range protos {
			t.Run(e.Name+"/"+proto, func(t *testing.T) {
				conn, err := client.Connect(maria.Addr, "root", "", "sw_mask", func(c *client.Conn) error {
					c.SetCapability(mysql.CLIENT_MULTI_STATEMENTS | mysql.CLIENT_MULTI_RESULTS | mysql.CLIENT_PS_MULTI_RESULTS)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				db.Exec("DELETE FROM sw_mask.scratch")
				db.Exec("DROP TABLE IF EXISTS sw_mask.leak")
				denied, served := false, 0
				var serverErr error
				// The session's dialect, followed as the proxy follows it.
				dialect := sqltext.Dialect{Server: sqltext.ParseServerVersion(conn.GetServerVersion())}
				for _, step := range steps {
					p, err := m.Plan(context.Background(), "agent", "sw_mask", step, dialect, nil)
					var d *DeniedError
					if errors.As(err, &d) {
						t.Logf("denied: %v", d)
						denied = true
						break
					}
					if err != nil {
						t.Fatalf("Plan(%q): %v", step, err)
					}
					_, n, err := runRaw(conn, proto, step, p, func(col string, v []byte) {
						if s := leaks(v); s != "" {
							t.Errorf("column %s leaked %q: %q", col, s, v)
						}
					})
					if err != nil {
						t.Logf("server error: %v", err)
						if serverErr == nil {
							serverErr = err
						}
					}
					served += n
					r, err := conn.Execute("SELECT @@session.sql_mode")
					if err != nil {
						t.Fatal(err)
					}
					mode, _ := r.GetString(0, 0)
					if dialect.Mode, err = sqltext.ParseSQLMode(mode); err != nil {
						t.Fatal(err)
					}
				}
				switch e.Expect {
				case "deny":
					if !denied {
						t.Errorf("expected a denial")
					}
				case "mask":
					// An entry that expects masking proves nothing unless the
					// server ran it and rows went through the masker.
					if denied {
						t.Errorf("expected masked results, got a denial")
					}
					if serverErr != nil {
						t.Errorf("expected masked results, the server refused: %v", serverErr)
					}
					if served == 0 {
						t.Errorf("expected masked results, no rows were served")
					}
				}
			})
		}
	}
}

// runRaw sends one statement with the raw protocol, masks each row packet
// with p and calls check with every value the client would receive. It
// returns the number of rows the masker changed and the number of rows read.
func runRaw(conn *client.Conn, proto, query string, p *Plan, check func(col string, v []byte)) (changedRows, rowsRead int, err error) {
	conn.ResetSequence()
	if proto == "binary" {
		var id uint32
		id, err = prepareRaw(conn, query)
		if err != nil {
			return 0, 0, err
		}
		conn.ResetSequence()
		// COM_STMT_EXECUTE, statement id, no cursor, iteration count 1, no parameters
		err = conn.WritePacket([]byte{0, 0, 0, 0, mysql.COM_STMT_EXECUTE, byte(id), byte(id >> 8), byte(id >> 16), byte(id >> 24), 0, 1, 0, 0, 0})
	} else {
		err = conn.WritePacket(append([]byte{0, 0, 0, 0, mysql.COM_QUERY}, query...))
	}
	if err != nil {
		return 0, 0, err
	}
	var dst []byte
	var firstErr error
	for index := 0; ; index++ {
		pkt, err := conn.ReadPacket()
		if err != nil {
			return changedRows, rowsRead, err
		}
		more := false
		switch pkt[0] {
		case 0x00: // OK
			more = okStatus(pkt)&mysql.SERVER_MORE_RESULTS_EXISTS != 0
			index--
		case 0xff:
			if firstErr == nil {
				firstErr = fmt.Errorf("%s", pkt[9:])
			}
			// The server error text is not a row value, but it must not quote secrets either.
			check("ERR", pkt)
			return changedRows, rowsRead, firstErr
		default:
			n, _, _, ok := wire.LenEncInt(pkt)
			if !ok {
				return changedRows, rowsRead, fmt.Errorf("column count %x: %w", pkt, wire.ErrMalformed)
			}
			defs := make([][]byte, n)
			for i := range defs {
				if defs[i], err = conn.ReadPacket(); err != nil {
					return changedRows, rowsRead, err
				}
			}
			if _, err := conn.ReadPacket(); err != nil { // EOF after column definitions
				return changedRows, rowsRead, err
			}
			var rm *RowMasker
			if p != nil {
				if rm, err = p.ResultSet(index, defs); err != nil {
					return changedRows, rowsRead, err
				}
			}
			cols := make([]wire.Column, n)
			for i, d := range defs {
				if rm != nil {
					d = rm.ColumnDef(i, d)
				}
				if cols[i], err = wire.ParseColumn(d); err != nil {
					return changedRows, rowsRead, err
				}
			}
			for {
				row, err := conn.ReadPacket()
				if err != nil {
					return changedRows, rowsRead, err
				}
				if row[0] == 0xfe && len(row) < 9 { // EOF
					more = (uint16(row[3])|uint16(row[4])<<8)&mysql.SERVER_MORE_RESULTS_EXISTS != 0
					break
				}
				if row[0] == 0xff {
					check("ERR", row)
					return changedRows, rowsRead, fmt.Errorf("%s", row[9:])
				}
				rowsRead++
				out := row
				if rm != nil {
					var changed bool
					if proto == "binary" {
						out, changed, err = rm.Binary(row, dst)
					} else {
						out, changed, err = rm.Text(row, dst)
					}
					if err != nil {
						return changedRows, rowsRead, err
					}
					if changed {
						changedRows++
						dst = out
					}
				}
				if err := eachValue(out, proto == "binary", cols, check); err != nil {
					return changedRows, rowsRead, err
				}
			}
		}
		if !more {
			return changedRows, rowsRead, firstErr
		}
	}
}

func okStatus(pkt []byte) uint16 {
	ok, err := wire.ParseOK(pkt)
	if err != nil {
		return 0
	}
	return ok.Status
}

func prepareRaw(conn *client.Conn, query string) (uint32, error) {
	if err := conn.WritePacket(append([]byte{0, 0, 0, 0, mysql.COM_STMT_PREPARE}, query...)); err != nil {
		return 0, err
	}
	pkt, err := conn.ReadPacket()
	if err != nil {
		return 0, err
	}
	if pkt[0] == 0xff {
		return 0, fmt.Errorf("%s", pkt[9:])
	}
	if len(pkt) < 12 {
		return 0, fmt.Errorf("short prepare response")
	}
	id := uint32(pkt[1]) | uint32(pkt[2])<<8 | uint32(pkt[3])<<16 | uint32(pkt[4])<<24
	ncols := int(pkt[5]) | int(pkt[6])<<8
	nparams := int(pkt[7]) | int(pkt[8])<<8
	for _, n := range []int{nparams, ncols} {
		if n == 0 {
			continue
		}
		for i := 0; i <= n; i++ { // definitions and their EOF
			if _, err := conn.ReadPacket(); err != nil {
				return 0, err
			}
		}
	}
	return id, nil
}

// eachValue decodes a (masked) row the way a client would and passes every
// non-NULL value, in text form, to check.
func eachValue(row []byte, binary bool, cols []wire.Column, check func(string, []byte)) error {
	if !binary {
		pos := 0
		for i := range cols {
			v, null, n, ok := wire.LenEncString(row[pos:])
			if !ok {
				return fmt.Errorf("value at %d: %w", pos, wire.ErrMalformed)
			}
			next := pos + n
			if !null {
				check(string(cols[i].Name), v)
			}
			pos = next
		}
		return nil
	}
	pos := 1 + rows.BitmapLen(len(cols))
	for i := range cols {
		bit := i + 2
		if row[1+bit/8]&(1<<(bit%8)) != 0 {
			continue
		}
		next, err := wire.BinaryValueEnd(row, pos, cols[i].Type)
		if err != nil {
			return err
		}
		txt, err := wire.AppendText(nil, row[pos:next], &cols[i])
		if err != nil {
			return err
		}
		check(string(cols[i].Name), txt)
		pos = next
	}
	return nil
}

// TestDerivedNullsAreMasked: a value computed from a masked column is
// redacted when it is NULL too — whether JSON_EXTRACT of a path built from
// the card's first digit is NULL tells the digit — while a masked column
// read as it is keeps its NULLs.
func TestDerivedNullsAreMasked(t *testing.T) {
	maria, db := setupFixture(t)
	if _, err := db.Exec("INSERT INTO sw_mask.customers (id, name, card, pin, last_login) VALUES (3, 'Carol', NULL, 1, '2024-01-01 00:00:00')"); err != nil {
		t.Fatal(err)
	}
	m := New(Config{Rules: corpusRules, HashKey: []byte("corpus-key")}, SQLSchema{DB: db})
	const query = `SELECT id, JSON_EXTRACT('{"4":1}', CONCAT('$."', SUBSTR(card, 1, 1), '"')) AS probe, card FROM customers ORDER BY id`
	for _, proto := range []string{"text", "binary"} {
		t.Run(proto, func(t *testing.T) {
			conn, err := client.Connect(maria.Addr, "root", "", "sw_mask")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			p, err := m.Plan(context.Background(), "agent", "sw_mask", query, sqltext.Dialect{Server: sqltext.ParseServerVersion(conn.GetServerVersion())}, nil)
			if err != nil {
				t.Fatal(err)
			}
			values := map[string][]string{}
			_, n, err := runRaw(conn, proto, query, p, func(col string, v []byte) {
				values[col] = append(values[col], string(v))
			})
			if err != nil || n != 3 {
				t.Fatalf("%d rows, %v; want 3 rows", n, err)
			}
			// Unmasked, probe is 1 for the card starting with 4 and NULL for
			// the others: every row must look the same.
			if got := values["probe"]; len(got) != 3 || got[0] != got[1] || got[1] != got[2] {
				t.Errorf("probe values %q: want three identical redacted values", got)
			}
			if got := values["card"]; len(got) != 2 {
				t.Errorf("card values %q: want two (the NULL card stays NULL)", got)
			}
		})
	}
}

// TestBuiltinsAreMariaDBBuiltins asks the server how it resolves every name
// masking reads as a builtin (one that reads nothing but its arguments): in
// a database with no routines, a call of a name that is not a builtin
// fails with "FUNCTION db.name does not exist" — a stored function an agent
// could create, which may read a masked column. The parser's own names for
// CHAR(), INSERT() and DEFAULT() are refused when written, and skipped here.
func TestBuiltinsAreMariaDBBuiltins(t *testing.T) {
	maria := testutil.StartMariaDB(t)
	root := maria.Open(t, "")
	for _, q := range []string{"DROP DATABASE IF EXISTS mask_oracle", "CREATE DATABASE mask_oracle"} {
		if _, err := root.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { root.Exec("DROP DATABASE IF EXISTS mask_oracle") })
	db := maria.Open(t, "mask_oracle")
	db.SetMaxOpenConns(1)
	for name := range builtins {
		switch name {
		case "char_func", "insert_func", "default_func":
			if !sqltext.NamesParserAlias("SELECT " + name + "()") {
				t.Errorf("%s is not refused when written", name)
			}
			continue
		}
		var sink any
		if err := db.QueryRow("SELECT " + name + "()").Scan(&sink); err != nil && strings.Contains(err.Error(), "does not exist") {
			t.Errorf("%s is not a MariaDB builtin: %v", name, err)
		}
	}
}
