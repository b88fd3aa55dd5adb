package rows

import (
	"bytes"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// keepEditor looks at every value and changes none.
type keepEditor struct{}

func (keepEditor) Text(_ int, _, dst []byte) ([]byte, Action, error)   { return dst, Keep, nil }
func (keepEditor) Binary(_ int, _, dst []byte) ([]byte, Action, error) { return dst, Keep, nil }

// starEditor replaces every text value with "*"; in binary rows it re-emits
// even columns as they were and turns odd ones into NULL.
type starEditor struct{}

func (starEditor) Text(_ int, _, dst []byte) ([]byte, Action, error) {
	return append(dst, '*'), Replace, nil
}
func (starEditor) Binary(col int, enc, dst []byte) ([]byte, Action, error) {
	if col%2 == 1 {
		return dst, Null, nil
	}
	return append(dst, enc...), Replace, nil
}

var fuzzTypes = []byte{mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DOUBLE, mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_TIME}

// FuzzRewriter: no panics, unmasked rows come back byte for byte, and a
// rewritten row is itself a well-formed row.
func FuzzRewriter(f *testing.F) {
	f.Add([]byte{0x01, '1', 0x03, 'a', 'b', 'c', 0xfb, 0x01, '2', 0x00, 0x01, '3'}, false)
	f.Add([]byte{0x00, 0x00, 1, 0, 0, 0, 2, 'h', 'i', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, '0', 0}, true)
	f.Add([]byte{0x00, 0x04, 1, 0, 0, 0, 7, 0xe8, 0x07, 5, 6, 7, 8, 9}, true)
	f.Fuzz(func(t *testing.T, row []byte, binary bool) {
		edit := make([]bool, len(fuzzTypes))
		for i := range edit {
			edit[i] = true
		}
		keep := NewRewriter(fuzzTypes, edit, keepEditor{})
		star := NewRewriter(fuzzTypes, edit, starEditor{})
		run := func(r *Rewriter, row []byte) ([]byte, bool, error) {
			if binary {
				return r.Binary(row, nil)
			}
			return r.Text(row, nil)
		}
		out, changed, err := run(keep, row)
		if err != nil {
			return
		}
		if changed || !bytes.Equal(out, row) {
			t.Fatalf("unmasked row changed: %x -> %x", row, out)
		}
		out, _, err = run(star, row)
		if err != nil {
			t.Fatalf("rewrite of a valid row failed: %v", err)
		}
		if _, _, err := run(keep, out); err != nil {
			t.Fatalf("rewritten row is malformed: %x: %v", out, err)
		}
	})
}
