package rows

import (
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"
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
// Both append to dst and return it.
type Editor interface {
	Text(col int, val, dst []byte) ([]byte, Action, error)
	Binary(col int, enc, dst []byte) ([]byte, Action, error)
}

// Rewriter rewrites selected columns of row packets of one result set. It
// keeps scratch space, so one Rewriter serves one stream at a time.
type Rewriter struct {
	types   []byte // server's column types, for binary decoding
	edit    []bool
	editor  Editor
	scratch []byte
}

// NewRewriter returns a rewriter for a result set with the given column types,
// handing the columns with edit[i] set to e.
func NewRewriter(types []byte, edit []bool, e Editor) *Rewriter {
	return &Rewriter{types: types, edit: edit, editor: e}
}

// Text rewrites a text-protocol row. When no value changes it returns row
// itself and changed == false, allocating nothing; otherwise the new row is
// built in dst.
func (r *Rewriter) Text(row, dst []byte) (out []byte, changed bool, err error) {
	pos := 0
	for i := range r.types {
		start := pos
		val, null, next, err := ReadLenEncString(row, pos)
		if err != nil {
			return nil, false, fmt.Errorf("decode text row column %d: %w", i, err)
		}
		pos = next
		act := Keep
		var rep []byte
		if r.edit[i] && !null {
			rep, act, err = r.editor.Text(i, val, r.scratch[:0])
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
			dst = append(dst, 0xfb)
		} else {
			dst = AppendLenEncString(dst, rep)
		}
	}
	if pos != len(row) {
		return nil, false, fmt.Errorf("decode text row: %d trailing bytes: %w", len(row)-pos, ErrMalformed)
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
		return nil, false, fmt.Errorf("decode binary row header: %w", ErrMalformed)
	}
	pos := 1 + bm
	for i := 0; i < n; i++ {
		bit := i + 2
		if row[1+bit/8]&(1<<(bit%8)) != 0 {
			continue
		}
		start := pos
		next, err := BinaryValueEnd(row, pos, r.types[i])
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
		return nil, false, fmt.Errorf("decode binary row: %d trailing bytes: %w", len(row)-pos, ErrMalformed)
	}
	if !changed {
		return row, false, nil
	}
	return dst, true, nil
}

// BinaryValueEnd returns the offset just past the binary-protocol value of
// type typ that starts at row[pos].
func BinaryValueEnd(row []byte, pos int, typ byte) (int, error) {
	var n int
	switch typ {
	case mysql.MYSQL_TYPE_NULL:
		return pos, nil
	case mysql.MYSQL_TYPE_TINY:
		n = 1
	case mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_YEAR:
		n = 2
	case mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_INT24, mysql.MYSQL_TYPE_FLOAT:
		n = 4
	case mysql.MYSQL_TYPE_LONGLONG, mysql.MYSQL_TYPE_DOUBLE:
		n = 8
	case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_TIMESTAMP,
		mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_NEWDATE:
		if pos >= len(row) {
			return pos, fmt.Errorf("read temporal length: %w", ErrMalformed)
		}
		n = 1 + int(row[pos])
		if !validTemporalLen(typ, row[pos]) {
			return pos, fmt.Errorf("read temporal value of %d bytes: %w", row[pos], ErrMalformed)
		}
	case mysql.MYSQL_TYPE_DECIMAL, mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_BIT,
		mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_ENUM, mysql.MYSQL_TYPE_SET,
		mysql.MYSQL_TYPE_TINY_BLOB, mysql.MYSQL_TYPE_MEDIUM_BLOB, mysql.MYSQL_TYPE_LONG_BLOB,
		mysql.MYSQL_TYPE_BLOB, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_STRING,
		mysql.MYSQL_TYPE_GEOMETRY, mysql.MYSQL_TYPE_JSON, mysql.MYSQL_TYPE_VECTOR:
		_, null, next, err := ReadLenEncString(row, pos)
		if err == nil && null {
			err = fmt.Errorf("read binary string: 0xfb length: %w", ErrMalformed)
		}
		return next, err
	default:
		return pos, fmt.Errorf("decode binary value of type 0x%02x: %w", typ, ErrMalformed)
	}
	if pos+n > len(row) {
		return pos, fmt.Errorf("read %d-byte value at %d: %w", n, pos, ErrMalformed)
	}
	return pos + n, nil
}

func validTemporalLen(typ byte, l byte) bool {
	if typ == mysql.MYSQL_TYPE_TIME {
		return l == 0 || l == 8 || l == 12
	}
	return l == 0 || l == 4 || l == 7 || l == 11
}
