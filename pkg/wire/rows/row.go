package rows

import (
	"fmt"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// Action says what an Editor did with a value.
type Action uint8

const (
	Keep    Action = iota // leave the original bytes
	Replace               // use the returned bytes
	Null                  // send NULL
)

// Editor decides the new value of one column. Text receives the text-protocol
// value; Binary receives the whole binary encoding of the value (length
// prefix included) and returns a whole encoding of the column's output type.
// Both append to dst and return it. A NULL reaches them only in the columns
// of Rewriter.FillNulls, as a nil value or encoding.
type Editor interface {
	Text(col int, val, dst []byte) ([]byte, Action, error)
	Binary(col int, enc, dst []byte) ([]byte, Action, error)
}

// Rewriter rewrites selected columns of row packets of one result set. It
// keeps scratch space, so one Rewriter serves one stream at a time.
type Rewriter struct {
	types   []byte // server's column types, for binary decoding
	edit    []bool
	fill    []bool // edited when NULL too
	editor  Editor
	scratch []byte
}

// NewRewriter returns a rewriter for a result set with the given column types,
// handing the columns with edit[i] set to e.
func NewRewriter(types []byte, edit []bool, e Editor) *Rewriter {
	return &Rewriter{types: types, edit: edit, editor: e}
}

// FillNulls hands the edited columns with fill[i] set to the editor when
// they are NULL too, as a nil value (Text) or a nil encoding (Binary), so
// that it can replace the NULL: whether a value computed from a secret is
// NULL can itself answer a question about the secret.
func (r *Rewriter) FillNulls(fill []bool) { r.fill = fill }

func (r *Rewriter) fills(i int) bool { return r.fill != nil && r.fill[i] }

// Text rewrites a text-protocol row. When no value changes it returns row
// itself and changed == false, allocating nothing; otherwise the new row is
// built in dst.
func (r *Rewriter) Text(row, dst []byte) (out []byte, changed bool, err error) {
	pos := 0
	for i := range r.types {
		start := pos
		val, null, n, ok := wire.LenEncString(row[pos:])
		if !ok {
			return nil, false, fmt.Errorf("decode text row column %d at %d: %w", i, pos, wire.ErrMalformed)
		}
		next := pos + n
		pos = next
		act := Keep
		var rep []byte
		if r.edit[i] && (!null || r.fills(i)) {
			rep, act, err = r.editor.Text(i, val, r.scratch[:0])
			if err != nil {
				return nil, false, err
			}
			if rep != nil {
				r.scratch = rep[:0]
			}
			if null && act == Null {
				act = Keep
			}
		}
		if act == Keep {
			if changed {
				dst = append(dst, row[start:next]...)
			}
			continue
		}
		if !changed {
			changed = true
			dst = append(dst[:0], row[:start]...)
		}
		if act == Null {
			dst = append(dst, 0xfb)
		} else {
			dst = wire.AppendLenEncString(dst, rep)
		}
	}
	if pos != len(row) {
		return nil, false, fmt.Errorf("decode text row: %d trailing bytes: %w", len(row)-pos, wire.ErrMalformed)
	}
	if !changed {
		return row, false, nil
	}
	return dst, true, nil
}

// BitmapLen is the size of the NULL bitmap of a binary row with n columns.
func BitmapLen(n int) int { return (n + 7 + 2) / 8 }

// Binary rewrites a binary-protocol row (0x00 header, NULL bitmap, values).
func (r *Rewriter) Binary(row, dst []byte) (out []byte, changed bool, err error) {
	n := len(r.types)
	bm := BitmapLen(n)
	if len(row) < 1+bm || row[0] != 0x00 {
		return nil, false, fmt.Errorf("decode binary row header: %w", wire.ErrMalformed)
	}
	pos := 1 + bm
	for i := 0; i < n; i++ {
		bit := i + 2
		if row[1+bit/8]&(1<<(bit%8)) != 0 {
			if !r.edit[i] || !r.fills(i) {
				continue
			}
			rep, act, err := r.editor.Binary(i, nil, r.scratch[:0])
			if err != nil {
				return nil, false, err
			}
			if rep != nil {
				r.scratch = rep[:0]
			}
			if act != Replace {
				continue
			}
			if !changed {
				changed = true
				dst = append(dst[:0], row[:pos]...)
			}
			dst[1+bit/8] &^= 1 << (bit % 8)
			dst = append(dst, rep...)
			continue
		}
		start := pos
		next, err := wire.BinaryValueEnd(row, pos, r.types[i])
		if err != nil {
			return nil, false, fmt.Errorf("decode binary row column %d: %w", i, err)
		}
		pos = next
		act := Keep
		var rep []byte
		if r.edit[i] {
			rep, act, err = r.editor.Binary(i, row[start:next:next], r.scratch[:0])
			if err != nil {
				return nil, false, err
			}
			if rep != nil {
				r.scratch = rep[:0]
			}
		}
		if act == Keep {
			if changed {
				dst = append(dst, row[start:next]...)
			}
			continue
		}
		if !changed {
			changed = true
			dst = append(dst[:0], row[:start]...)
		}
		if act == Null {
			dst[1+bit/8] |= 1 << (bit % 8)
		} else {
			dst = append(dst, rep...)
		}
	}
	if pos != len(row) {
		return nil, false, fmt.Errorf("decode binary row: %d trailing bytes: %w", len(row)-pos, wire.ErrMalformed)
	}
	if !changed {
		return row, false, nil
	}
	return dst, true, nil
}
