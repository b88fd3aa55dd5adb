package wire

import (
	"testing"

	gm "github.com/go-mysql-org/go-mysql/mysql"
)

// benchExecute is an EXECUTE of four parameters: BIGINT, VARCHAR, DATETIME
// with microseconds, TIME.
var benchExecute = []byte{gm.COM_STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0,
	0x00, 1,
	gm.MYSQL_TYPE_LONGLONG, 0, gm.MYSQL_TYPE_VAR_STRING, 0, gm.MYSQL_TYPE_DATETIME, 0, gm.MYSQL_TYPE_TIME, 0,
	42, 0, 0, 0, 0, 0, 0, 0,
	5, 'h', 'e', 'l', 'l', 'o',
	11, 0xea, 0x07, 11, 28, 12, 34, 56, 0x40, 0xe2, 0x01, 0,
	8, 0, 0, 0, 0, 0, 1, 2, 3}

func BenchmarkParseExecute(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseExecute(benchExecute, 4, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkColumnName(b *testing.B) {
	var def []byte
	for _, s := range []string{"def", "shop", "orders", "orders", "created", "created"} {
		def = AppendLenEncString(def, []byte(s))
	}
	def = append(def, 0x0c, 63, 0, 19, 0, 0, 0, gm.MYSQL_TYPE_DATETIME, 0, 0, 0, 0, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ColumnName(def); err != nil {
			b.Fatal(err)
		}
	}
}

func benchColumn() []byte {
	return AppendColumn(nil, "shop", "orders", "orders", "created", "created", 63, 19, gm.MYSQL_TYPE_DATETIME, 0, 0)
}

func BenchmarkParseColumn(b *testing.B) {
	def := benchColumn()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseColumn(def); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendTextDateTime(b *testing.B) {
	c, err := ParseColumn(benchColumn())
	if err != nil {
		b.Fatal(err)
	}
	enc := []byte{11, 0xea, 0x07, 11, 28, 12, 34, 56, 0x40, 0xe2, 0x01, 0}
	c.Decimals = 6
	dst := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		if dst, err = AppendText(dst[:0], enc, &c); err != nil {
			b.Fatal(err)
		}
	}
}
