package rows

import "testing"

// benchText and benchBinary are one text and one binary row of fuzzTypes (int, string,
// datetime, double, decimal, time).
var (
	benchText   = []byte{0x01, '1', 0x05, 'h', 'e', 'l', 'l', 'o', 0x13, '2', '0', '2', '6', '-', '1', '1', '-', '2', '8', ' ', '1', '2', ':', '3', '4', ':', '5', '6', 0x03, '1', '.', '5', 0x04, '9', '.', '9', '9', 0x08, '0', '1', ':', '0', '2', ':', '0', '3'}
	benchBinary = []byte{0x00, 0x00,
		1, 0, 0, 0,
		5, 'h', 'e', 'l', 'l', 'o',
		7, 0xea, 0x07, 11, 28, 12, 34, 56,
		0, 0, 0, 0, 0, 0, 0xf8, 0x3f,
		4, '9', '.', '9', '9',
		8, 0, 0, 0, 0, 0, 1, 2, 3}
)

func BenchmarkRewriterTextKeep(b *testing.B) {
	edit := []bool{true, true, true, true, true, true}
	r := NewRewriter(fuzzTypes, edit, keepEditor{})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Text(benchText, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRewriterTextStar(b *testing.B) {
	edit := []bool{true, true, true, true, true, true}
	r := NewRewriter(fuzzTypes, edit, starEditor{})
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, _, err = r.Text(benchText, dst[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRewriterBinaryKeep(b *testing.B) {
	edit := []bool{true, true, true, true, true, true}
	r := NewRewriter(fuzzTypes, edit, keepEditor{})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Binary(benchBinary, nil); err != nil {
			b.Fatal(err)
		}
	}
}
