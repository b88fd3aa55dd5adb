package masking

import (
	"bytes"
	"context"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// def builds a column definition of sw.t.<name>.
func def(name string, typ byte, flags uint16, decimals byte, charset uint16, length uint32) []byte {
	return wire.AppendColumn(nil, "sw", "t", "t", name, name, charset, length, typ, flags, decimals)
}

// typeRules masks every column whose name starts with "m_" with the strategy of the test.
func planFor(t *testing.T, strategy string, keep int, defs [][]byte) *RowMasker {
	t.Helper()
	m := New(Config{Rules: []Rule{{Name: "r", ColumnPatterns: []string{"m_*"}, Strategy: strategy, Keep: keep}}, HashKey: []byte("k")}, nil)
	// No schema: the plan is resolved from the column definitions' origin.
	p := &Plan{st: m.state.Load(), rules: m.state.Load().rules, variable: -1}
	rm, err := p.ResultSet(0, defs)
	if err != nil {
		t.Fatal(err)
	}
	if rm == nil {
		t.Fatal("no masked column")
	}
	return rm
}

func TestTextRows(t *testing.T) {
	tests := []struct {
		name     string
		typ      byte
		flags    uint16
		decimals byte
		strategy string
		keep     int
		row      []byte // text row: "id" column then the masked column
		want     []byte
	}{
		{"int redact", mysql.MYSQL_TYPE_LONG, 0, 0, StrategyRedact, 0,
			[]byte{0x01, '7' /* id */, 0x05, '7', '3', '9', '1', '4' /* m_ "73914" */},
			[]byte{0x01, '7', 0x01, '0' /* "0" */}},
		{"decimal redact keeps scale", mysql.MYSQL_TYPE_NEWDECIMAL, 0, 2, StrategyRedact, 0,
			[]byte{0x01, '1', 0x08, '9', '8', '7', '6', '5', '.', '4', '3'},
			[]byte{0x01, '1', 0x04, '0', '.', '0', '0'}},
		{"decimal partial", mysql.MYSQL_TYPE_NEWDECIMAL, 0, 2, StrategyPartial, 2,
			[]byte{0x01, '1', 0x09, '-', '9', '8', '7', '6', '5', '.', '4', '3'},
			[]byte{0x01, '1', 0x08, '0', '0', '0', '0', '0', '.', '4', '3'}},
		{"date redact", mysql.MYSQL_TYPE_DATE, 0, 0, StrategyRedact, 0,
			append([]byte{0x01, '1', 0x0a}, "1984-03-07"...),
			append([]byte{0x01, '1', 0x0a}, "1970-01-01"...)},
		{"datetime(3) redact", mysql.MYSQL_TYPE_DATETIME, 0, 3, StrategyRedact, 0,
			append([]byte{0x01, '1', 23}, "2024-05-06 07:08:09.123"...),
			append([]byte{0x01, '1', 23}, "1970-01-01 00:00:00.000"...)},
		{"time redact", mysql.MYSQL_TYPE_TIME, 0, 0, StrategyRedact, 0,
			append([]byte{0x01, '1', 8}, "12:34:56"...),
			append([]byte{0x01, '1', 8}, "00:00:00"...)},
		{"year redact", mysql.MYSQL_TYPE_YEAR, 0, 0, StrategyRedact, 0,
			append([]byte{0x01, '1', 4}, "1984"...),
			append([]byte{0x01, '1', 4}, "1970"...)},
		{"json redact is valid json", mysql.MYSQL_TYPE_JSON, 0, 0, StrategyRedact, 0,
			append([]byte{0x01, '1', 13}, `{"ssn":"078"}`...),
			append([]byte{0x01, '1', 6}, `"****"`...)},
		{"string partial", mysql.MYSQL_TYPE_VAR_STRING, 0, 0, StrategyPartial, 4,
			append([]byte{0x01, '1', 16}, "4111111111111111"...),
			append([]byte{0x01, '1', 16}, "************1111"...)},
		{"blob redact", mysql.MYSQL_TYPE_BLOB, mysql.BLOB_FLAG | mysql.BINARY_FLAG, 0, StrategyRedact, 0,
			[]byte{0x01, '1', 0x03, 0x00, 0xff, 0x10},
			append([]byte{0x01, '1', 4}, "****"...)},
		{"null strategy", mysql.MYSQL_TYPE_VAR_STRING, 0, 0, StrategyNull, 0,
			append([]byte{0x01, '1', 3}, "abc"...),
			[]byte{0x01, '1', 0xfb /* NULL */}},
		{"null stays null", mysql.MYSQL_TYPE_VAR_STRING, 0, 0, StrategyRedact, 0,
			[]byte{0x01, '1', 0xfb}, nil /* unchanged */},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defs := [][]byte{def("id", mysql.MYSQL_TYPE_LONG, 0, 0, 63, 11), def("m_x", tt.typ, tt.flags, tt.decimals, 45, 64)}
			rm := planFor(t, tt.strategy, tt.keep, defs)
			out, changed, err := rm.Text(tt.row, make([]byte, 0, 64))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				if changed || &out[0] != &tt.row[0] {
					t.Fatalf("row changed: %q", out)
				}
				return
			}
			if !changed || !bytes.Equal(out, tt.want) {
				t.Fatalf("Text() = %q, %v; want %q", out, changed, tt.want)
			}
		})
	}
}

func TestBinaryRows(t *testing.T) {
	tests := []struct {
		name     string
		typ      byte
		flags    uint16
		decimals byte
		strategy string
		keep     int
		value    []byte // binary encoding of the masked column's value
		want     []byte // binary encoding after masking; nil = NULL
		wantType byte
	}{
		{"tiny", mysql.MYSQL_TYPE_TINY, 0, 0, StrategyRedact, 0, []byte{0x7f}, []byte{0x00}, mysql.MYSQL_TYPE_TINY},
		{"short", mysql.MYSQL_TYPE_SHORT, 0, 0, StrategyRedact, 0, []byte{0x34, 0x12}, []byte{0, 0}, mysql.MYSQL_TYPE_SHORT},
		{"long", mysql.MYSQL_TYPE_LONG, 0, 0, StrategyRedact, 0, []byte{0x02, 0x21, 0x01, 0x00}, []byte{0, 0, 0, 0}, mysql.MYSQL_TYPE_LONG},
		{"long partial", mysql.MYSQL_TYPE_LONG, 0, 0, StrategyPartial, 2, []byte{0x02, 0x21, 0x01, 0x00 /* 73986 */}, []byte{86, 0, 0, 0}, mysql.MYSQL_TYPE_LONG},
		{"longlong", mysql.MYSQL_TYPE_LONGLONG, 0, 0, StrategyRedact, 0, []byte{1, 2, 3, 4, 5, 6, 7, 8}, make([]byte, 8), mysql.MYSQL_TYPE_LONGLONG},
		{"float", mysql.MYSQL_TYPE_FLOAT, 0, 0, StrategyRedact, 0, []byte{0, 0, 0x80, 0x3f}, make([]byte, 4), mysql.MYSQL_TYPE_FLOAT},
		{"double", mysql.MYSQL_TYPE_DOUBLE, 0, 0, StrategyRedact, 0, []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f}, make([]byte, 8), mysql.MYSQL_TYPE_DOUBLE},
		{"year", mysql.MYSQL_TYPE_YEAR, 0, 0, StrategyRedact, 0, []byte{0xc0, 0x07 /* 1984 */}, []byte{0xb2, 0x07 /* 1970 */}, mysql.MYSQL_TYPE_YEAR},
		{"date", mysql.MYSQL_TYPE_DATE, 0, 0, StrategyRedact, 0, []byte{4, 0xc0, 0x07, 3, 7 /* 1984-03-07 */}, []byte{4, 0xb2, 0x07, 1, 1}, mysql.MYSQL_TYPE_DATE},
		{"datetime", mysql.MYSQL_TYPE_DATETIME, 0, 0, StrategyRedact, 0, []byte{7, 0xe8, 0x07, 5, 6, 7, 8, 9}, []byte{7, 0xb2, 0x07, 1, 1, 0, 0, 0}, mysql.MYSQL_TYPE_DATETIME},
		{"datetime micro", mysql.MYSQL_TYPE_DATETIME, 0, 6, StrategyRedact, 0, []byte{11, 0xe8, 0x07, 5, 6, 7, 8, 9, 1, 0, 0, 0}, []byte{7, 0xb2, 0x07, 1, 1, 0, 0, 0}, mysql.MYSQL_TYPE_DATETIME},
		{"time", mysql.MYSQL_TYPE_TIME, 0, 0, StrategyRedact, 0, []byte{8, 0, 1, 0, 0, 0, 2, 3, 4 /* 26:03:04 */}, []byte{0}, mysql.MYSQL_TYPE_TIME},
		{"decimal", mysql.MYSQL_TYPE_NEWDECIMAL, 0, 2, StrategyRedact, 0, append([]byte{8}, "98765.43"...), append([]byte{4}, "0.00"...), mysql.MYSQL_TYPE_NEWDECIMAL},
		{"string", mysql.MYSQL_TYPE_VAR_STRING, 0, 0, StrategyPartial, 4, append([]byte{16}, "4111111111111111"...), append([]byte{16}, "************1111"...), mysql.MYSQL_TYPE_VAR_STRING},
		{"blob", mysql.MYSQL_TYPE_BLOB, mysql.BLOB_FLAG, 0, StrategyRedact, 0, []byte{2, 0xde, 0xad}, append([]byte{4}, "****"...), mysql.MYSQL_TYPE_BLOB},
		{"json", mysql.MYSQL_TYPE_JSON, 0, 0, StrategyRedact, 0, append([]byte{2}, "{}"...), append([]byte{6}, `"****"`...), mysql.MYSQL_TYPE_JSON},
		{"hash int becomes string", mysql.MYSQL_TYPE_LONG, mysql.NOT_NULL_FLAG, 0, StrategyHash, 0, []byte{0x02, 0x21, 0x01, 0x00}, nil, mysql.MYSQL_TYPE_VAR_STRING},
		{"null strategy", mysql.MYSQL_TYPE_DATETIME, mysql.NOT_NULL_FLAG, 0, StrategyNull, 0, []byte{7, 0xe8, 0x07, 5, 6, 7, 8, 9}, nil, mysql.MYSQL_TYPE_DATETIME},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := def("m_x", tt.typ, tt.flags, tt.decimals, 63, 20)
			defs := [][]byte{def("id", mysql.MYSQL_TYPE_TINY, 0, 0, 63, 4), d}
			rm := planFor(t, tt.strategy, tt.keep, defs)
			// 0x00 header, NULL bitmap of (2+7+2)/8 = 1 byte (nothing NULL), id = 5, then the value
			row := append([]byte{0x00, 0x00, 0x05}, tt.value...)
			out, changed, err := rm.Binary(row, nil)
			if err != nil || !changed {
				t.Fatalf("Binary() = %v, %v", changed, err)
			}
			nd := rm.ColumnDef(1, d)
			col, err := wire.ParseColumn(nd)
			if err != nil {
				t.Fatal(err)
			}
			if col.Type != tt.wantType {
				t.Fatalf("column type = 0x%02x, want 0x%02x", col.Type, tt.wantType)
			}
			switch {
			case tt.strategy == StrategyNull:
				if !bytes.Equal(out, []byte{0x00, 0x08 /* bit 3: column 1 */, 0x05}) || col.Flags&mysql.NOT_NULL_FLAG != 0 {
					t.Fatalf("got %x flags %x", out, col.Flags)
				}
			case tt.want == nil: // hash
				if len(out) != 3+1+hashHexLen || out[3] != hashHexLen {
					t.Fatalf("hash row %x", out)
				}
				text, _, _ := rm.Text([]byte{0x01, '5', 0x05, '7', '3', '9', '8', '6'}, nil)
				if !bytes.Equal(text[3:], out[4:]) {
					t.Fatalf("text hash %q != binary hash %q", text[3:], out[4:])
				}
			default:
				if want := append([]byte{0x00, 0x00, 0x05}, tt.want...); !bytes.Equal(out, want) {
					t.Fatalf("Binary() = %x, want %x", out, want)
				}
			}
		})
	}
}

func TestMalformedRows(t *testing.T) {
	defs := [][]byte{def("id", mysql.MYSQL_TYPE_LONG, 0, 0, 63, 11), def("m_x", mysql.MYSQL_TYPE_VAR_STRING, 0, 0, 45, 64)}
	rm := planFor(t, StrategyRedact, 0, defs)
	for _, row := range [][]byte{{}, {0x01}, {0x01, '1', 0x05, 'a'}, {0x01, '1', 0x01, 'a', 0x00}, {0x01, '1', 0xff}} {
		if _, _, err := rm.Text(row, nil); err == nil {
			t.Errorf("Text(%x) accepted a malformed row", row)
		}
	}
	for _, row := range [][]byte{{}, {0x01, 0x00}, {0x00, 0x00, 1, 2}, {0x00, 0x00, 1, 2, 3, 4, 9, 'a'}} {
		if _, _, err := rm.Binary(row, nil); err == nil {
			t.Errorf("Binary(%x) accepted a malformed row", row)
		}
	}
}

func TestPassThroughAllocs(t *testing.T) {
	defs := [][]byte{def("id", mysql.MYSQL_TYPE_LONG, 0, 0, 63, 11), def("m_x", mysql.MYSQL_TYPE_VAR_STRING, 0, 0, 45, 64)}
	rm := planFor(t, StrategyRedact, 0, defs)
	row := []byte{0x01, '1', 0xfb}
	if n := testing.AllocsPerRun(100, func() { rm.Text(row, nil) }); n != 0 {
		t.Fatalf("pass-through allocates %v per row", n)
	}
	masked := append([]byte{0x01, '1', 16}, "4111111111111111"...)
	dst := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { dst, _, _ = rm.Text(masked, dst[:0]) }); n != 0 {
		t.Fatalf("masking allocates %v per row", n)
	}
	m := New(Config{Rules: []Rule{{Name: "r", Columns: []string{"a.b.c"}, Identities: []string{"other"}}}}, nil)
	if n := testing.AllocsPerRun(100, func() { m.Plan(context.Background(), "agent", "db", "SELECT 1", testDialect, nil) }); n != 0 {
		t.Fatalf("fast path allocates %v per statement", n)
	}
}

func TestSummary(t *testing.T) {
	defs := [][]byte{def("id", mysql.MYSQL_TYPE_LONG, 0, 0, 63, 11), def("m_x", mysql.MYSQL_TYPE_VAR_STRING, 0, 0, 45, 64)}
	m := New(Config{Rules: []Rule{{Name: "r", ColumnPatterns: []string{"m_*"}, Strategy: StrategyRedact}}}, nil)
	p := &Plan{st: m.state.Load(), rules: m.state.Load().rules, variable: -1}
	rm, _ := p.ResultSet(0, defs)
	for i := 0; i < 3; i++ {
		rm.Text(append([]byte{0x01, '1', 1}, 'x'), nil)
	}
	s := p.Summary()
	if len(s) != 1 || s[0].Column != "sw.t.m_x" || s[0].Rule != "r" || s[0].Count != 3 {
		t.Fatalf("Summary() = %+v", s)
	}
}

func TestDetectors(t *testing.T) {
	d := DetectorConfig{Cards: true, Email: true, IBAN: true, NationalIDs: true}
	for v, want := range map[string]string{
		"card 4111 1111 1111 1111 ok": "card", "4111111111111112": "", "mail bob@example.org": "email",
		"GB82 WEST 1234 5698 7654 32": "iban", "GB82 WEST 1234 5698 7654 33": "", "078-05-1120": "national_id", "hello": "",
	} {
		if got := d.detect([]byte(v)); got != want {
			t.Errorf("detect(%q) = %q, want %q", v, got, want)
		}
	}
}
