package record

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"testing"
)

func TestValuesMatchAddRow(t *testing.T) {
	rows := [][][]byte{
		{[]byte("1"), nil, []byte("hello")},
		{[]byte(""), []byte(string(make([]byte, 300)))},
		{nil},
	}
	a, b := NewRowDigest(), NewRowDigest()
	for _, r := range rows {
		a.AddRow(r)
		addValues(b, r)
	}
	if a.Sum() != b.Sum() || a.Rows() != b.Rows() {
		t.Fatalf("digests differ: %s vs %s", a.Sum(), b.Sum())
	}
}

// addValues adds one row value by value, as the proxy does.
func addValues(d *RowDigest, row [][]byte) {
	for _, v := range row {
		if v == nil {
			d.Null()
		} else {
			d.Value(v)
		}
	}
	d.EndRow()
}

// rowBytes is the size of row as a text-protocol payload (a one-byte length
// for short values, three for up to 64 KiB), the unit of the benchmark's MB/s.
func rowBytes(row [][]byte) int {
	n := 0
	for _, v := range row {
		switch {
		case v == nil:
			n++
		case len(v) < 251:
			n += 1 + len(v)
		case len(v) < 1<<16:
			n += 3 + len(v)
		default:
			n += 4 + len(v)
		}
	}
	return n
}

// BenchmarkRowDigest is the digest's cost for one result: a point select's
// single row, and a megabyte of small rows or of large values (per op: one
// Reset, the rows, one Sum; MB/s over the row payload bytes).
func BenchmarkRowDigest(b *testing.B) {
	point := [][]byte{[]byte("83868641912-28773972837-60736120486-75162659906-27563526494-20381887404-41576422241-93426793964-56405065102-33518432330")}
	small := [][]byte{[]byte("4711"), []byte("ann@example.com"), nil, []byte("2026-11-28 05:00:00"), []byte("shipped"), []byte("1299.50")}
	large := [][]byte{[]byte("4711"), make([]byte, 60<<10)}
	for _, tc := range []struct {
		name string
		row  [][]byte
		n    int
	}{
		{"point_select", point, 1},
		{"1MB_in_small_rows", small, (1 << 20) / rowBytes(small)},
		{"1MB_in_60KB_values", large, (1 << 20) / rowBytes(large)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			d := NewRowDigest()
			b.SetBytes(int64(rowBytes(tc.row) * tc.n))
			b.ReportAllocs()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				d.Reset()
				for k := 0; k < tc.n; k++ {
					addValues(d, tc.row)
				}
				if len(d.Sum()) != 64 {
					b.Fatal("bad sum")
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// TestRowDigestStream: whatever the buffering, the digest is SHA-256 of the
// documented stream (per value 0xFF for NULL or uvarint length + bytes, per
// row 0xFE), for rows that fill, cross and bypass the buffer.
func TestRowDigestStream(t *testing.T) {
	var rows [][][]byte
	for i := 0; i < 300; i++ {
		row := [][]byte{[]byte(fmt.Sprint(i)), nil, bytes.Repeat([]byte{'x'}, i*7%700)}
		if i%50 == 0 {
			row = append(row, bytes.Repeat([]byte{byte(i)}, 70000))
		}
		rows = append(rows, row)
	}
	var stream []byte
	for _, r := range rows {
		for _, v := range r {
			if v == nil {
				stream = append(stream, 0xFF)
				continue
			}
			stream = binary.AppendUvarint(stream, uint64(len(v)))
			stream = append(stream, v...)
		}
		stream = append(stream, 0xFE)
	}
	sum := sha256.Sum256(stream)
	want := hex.EncodeToString(sum[:])
	a, b := NewRowDigest(), NewRowDigest()
	addValues(b, [][]byte{[]byte("left over from the last statement")})
	b.Reset()
	for _, r := range rows {
		a.AddRow(r)
		addValues(b, r)
	}
	if a.Sum() != want || b.Sum() != want || a.Rows() != 300 || b.Rows() != 300 {
		t.Fatalf("digest %s / %s, want %s", a.Sum(), b.Sum(), want)
	}
	// the format is what earlier journals were written with
	g := NewRowDigest()
	g.AddRow([][]byte{[]byte("1"), nil, []byte("hello")})
	g.AddRow([][]byte{[]byte("")})
	if got := g.Sum(); got != "1a9e99fa15267ec3db852dfe9c1a4368538024fdbdfd74bf39d0b5bd6b0880e6" {
		t.Fatalf("digest of the fixed rows changed: %s", got)
	}
}
