package rows

import (
	"bytes"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// fillEditor replaces every value, NULL or not, with "x" (a string).
type fillEditor struct{ nulls int }

func (e *fillEditor) Text(_ int, val, dst []byte) ([]byte, Action, error) {
	if val == nil {
		e.nulls++
	}
	return append(dst, 'x'), Replace, nil
}

func (e *fillEditor) Binary(_ int, enc, dst []byte) ([]byte, Action, error) {
	if enc == nil {
		e.nulls++
	}
	return append(dst, 1, 'x'), Replace, nil
}

// FillNulls: the NULLs of the columns it names reach the editor and are
// replaced; the NULLs of other edited columns stay NULL without it asking.
func TestFillNulls(t *testing.T) {
	types := []byte{mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_VAR_STRING}
	edit := []bool{true, true, false}
	fill := []bool{false, true, true} // the third is not edited: fill alone does nothing

	t.Run("text", func(t *testing.T) {
		e := &fillEditor{}
		r := NewRewriter(types, edit, e)
		r.FillNulls(fill)
		row := []byte{0xfb, 0xfb, 0xfb} // three NULLs
		out, changed, err := r.Text(row, nil)
		if err != nil || !changed {
			t.Fatalf("changed %v, err %v", changed, err)
		}
		if want := []byte{0xfb, 1, 'x', 0xfb}; !bytes.Equal(out, want) {
			t.Errorf("row %x, want %x", out, want)
		}
		if e.nulls != 1 {
			t.Errorf("editor saw %d NULLs, want 1", e.nulls)
		}
	})
	t.Run("binary", func(t *testing.T) {
		e := &fillEditor{}
		r := NewRewriter(types, edit, e)
		r.FillNulls(fill)
		// header, NULL bitmap (columns 0 and 1 NULL: bits 2 and 3), column 2 "ab"
		row := []byte{0x00, 0b1100, 2, 'a', 'b'}
		out, changed, err := r.Binary(row, nil)
		if err != nil || !changed {
			t.Fatalf("changed %v, err %v", changed, err)
		}
		if want := []byte{0x00, 0b0100, 1, 'x', 2, 'a', 'b'}; !bytes.Equal(out, want) {
			t.Errorf("row %x, want %x", out, want)
		}
		if e.nulls != 1 {
			t.Errorf("editor saw %d NULLs, want 1", e.nulls)
		}
	})
}
