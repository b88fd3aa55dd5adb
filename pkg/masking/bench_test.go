package masking

import (
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// benchRows builds a 10,000-row result: id INT, name, card (masked partial), email (masked hash), salary DECIMAL (masked redact).
func benchSetup(b *testing.B) (*RowMasker, [][]byte) {
	defs := [][]byte{
		def("id", mysql.MYSQL_TYPE_LONG, 0, 0, 63, 11),
		def("name", mysql.MYSQL_TYPE_VAR_STRING, 0, 0, 45, 200),
		def("card", mysql.MYSQL_TYPE_VAR_STRING, 0, 0, 45, 76),
		def("email", mysql.MYSQL_TYPE_VAR_STRING, 0, 0, 45, 400),
		def("salary", mysql.MYSQL_TYPE_NEWDECIMAL, 0, 2, 63, 12),
	}
	m := New(Config{Rules: []Rule{
		{Name: "cards", Columns: []string{"sw.t.card"}, Strategy: StrategyPartial, Keep: 4},
		{Name: "emails", Columns: []string{"sw.t.email"}, Strategy: StrategyHash},
		{Name: "pay", Columns: []string{"sw.t.salary"}, Strategy: StrategyRedact},
	}, HashKey: []byte("k")}, nil)
	p := &Plan{st: m.state.Load(), rules: m.state.Load().rules, variable: -1}
	rm, err := p.ResultSet(0, defs)
	if err != nil || rm == nil {
		b.Fatal(err)
	}
	rs := make([][]byte, 10000)
	for i := range rs {
		r := []byte{0x04, '1', '2', '3', '4', 0x0b}
		r = append(r, "Alice Smith"...)
		r = append(r, 16)
		r = append(r, "4111111111111111"...)
		r = append(r, 17)
		r = append(r, "alice@example.com"...)
		r = append(r, 8)
		r = append(r, "98765.43"...)
		rs[i] = r
	}
	return rm, rs
}

// BenchmarkMask10kRows masks a 10,000-row text result (3 of 5 columns masked); ns/op is per result.
func BenchmarkMask10kRows(b *testing.B) {
	rm, rs := benchSetup(b)
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, r := range rs {
			out, _, err := rm.Text(r, dst[:0])
			if err != nil {
				b.Fatal(err)
			}
			dst = out
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rs)), "ns/row")
}

// BenchmarkPassThrough10kRows reads rows whose masked columns are NULL: nothing changes, nothing allocates.
func BenchmarkPassThrough10kRows(b *testing.B) {
	rm, _ := benchSetup(b)
	r := []byte{0x04, '1', '2', '3', '4', 0x0b}
	r = append(r, "Alice Smith"...)
	r = append(r, 0xfb, 0xfb, 0xfb)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < 10000; j++ {
			if _, changed, _ := rm.Text(r, nil); changed {
				b.Fatal("changed")
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*10000), "ns/row")
}
