package audit

import "testing"

func TestAddTextRowMatchesAddRow(t *testing.T) {
	rows := [][][]byte{
		{[]byte("1"), nil, []byte("hello")},
		{[]byte(""), []byte(string(make([]byte, 300)))},
		{nil},
	}
	a, b := NewRowDigest(), NewRowDigest()
	for _, r := range rows {
		a.AddRow(r)
		var p []byte
		for _, v := range r {
			if v == nil {
				p = append(p, 0xfb)
				continue
			}
			if len(v) < 251 {
				p = append(p, byte(len(v)))
			} else {
				p = append(p, 0xfc, byte(len(v)), byte(len(v)>>8))
			}
			p = append(p, v...)
		}
		if !b.AddTextRow(p) {
			t.Fatalf("AddTextRow refused %q", p)
		}
	}
	if a.Sum() != b.Sum() || a.Rows() != b.Rows() {
		t.Fatalf("digests differ: %s vs %s", a.Sum(), b.Sum())
	}
	if NewRowDigest().AddTextRow([]byte{0xfc, 1}) {
		t.Fatal("short length accepted")
	}
	if NewRowDigest().AddTextRow([]byte{5, 'a'}) {
		t.Fatal("overlong value accepted")
	}
}
