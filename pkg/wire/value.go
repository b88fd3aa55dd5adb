package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// Binary-protocol values, as EXECUTE parameters and binary result rows carry
// them. One decoder serves both: the row rewriter delimits values with
// BinaryValueEnd and the masker reads them with AppendText; ParseExecute
// delimits parameters with the same function and formats numbers and
// temporal values with the same code. What differs is said where it does:
// the server reads a parameter of a type it does not know as a string
// (paramType), and a parameter has no declared scale, so its fraction of a
// second is written in full when sent (paramDecimals), where a row's follows
// the column's decimals as the server's text form does.

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
		if pos > len(row) {
			return pos, fmt.Errorf("read binary string at %d: %w", pos, ErrMalformed)
		}
		_, null, n, ok := LenEncString(row[pos:])
		if !ok {
			return pos, fmt.Errorf("read binary string at %d: %w", pos, ErrMalformed)
		}
		if null {
			return pos + n, fmt.Errorf("read binary string: 0xfb length: %w", ErrMalformed)
		}
		return pos + n, nil
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

// isStringValue reports whether the binary protocol sends values of type t
// as length-encoded strings (strings, blobs, decimals, bits, JSON...).
func isStringValue(t byte) bool {
	switch t {
	case mysql.MYSQL_TYPE_DECIMAL, mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_BIT, mysql.MYSQL_TYPE_VECTOR:
		return true
	}
	return IsString(t)
}

// AppendText appends the text-protocol form of a binary-protocol value enc
// (as delimited by BinaryValueEnd) of column c. Floats are formatted with Go's
// shortest representation, which can differ from the server's text form.
func AppendText(dst, enc []byte, c *Column) ([]byte, error) {
	unsigned := c.Flags&mysql.UNSIGNED_FLAG != 0
	switch c.Type {
	case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_YEAR,
		mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_INT24, mysql.MYSQL_TYPE_LONGLONG:
		u, s, err := BinaryInt(enc, c.Type, unsigned)
		if err != nil {
			return dst, err
		}
		if unsigned {
			return strconv.AppendUint(dst, u, 10), nil
		}
		if c.Type == mysql.MYSQL_TYPE_YEAR {
			return appendPadded(dst, s, 4), nil
		}
		return strconv.AppendInt(dst, s, 10), nil
	case mysql.MYSQL_TYPE_FLOAT:
		if len(enc) != 4 {
			return dst, fmt.Errorf("decode float: %w", ErrMalformed)
		}
		return strconv.AppendFloat(dst, float64(math.Float32frombits(binary.LittleEndian.Uint32(enc))), 'g', -1, 32), nil
	case mysql.MYSQL_TYPE_DOUBLE:
		if len(enc) != 8 {
			return dst, fmt.Errorf("decode double: %w", ErrMalformed)
		}
		return strconv.AppendFloat(dst, math.Float64frombits(binary.LittleEndian.Uint64(enc)), 'g', -1, 64), nil
	case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE, mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_TIMESTAMP:
		if len(enc) == 0 || int(enc[0]) != len(enc)-1 {
			return dst, fmt.Errorf("decode datetime: %w", ErrMalformed)
		}
		dateOnly := c.Type == mysql.MYSQL_TYPE_DATE || c.Type == mysql.MYSQL_TYPE_NEWDATE
		return appendDateTime(dst, enc[1:], dateOnly, columnDecimals(c.Decimals)), nil
	case mysql.MYSQL_TYPE_TIME:
		if len(enc) == 0 || int(enc[0]) != len(enc)-1 {
			return dst, fmt.Errorf("decode time: %w", ErrMalformed)
		}
		return appendTime(dst, enc[1:], columnDecimals(c.Decimals)), nil
	case mysql.MYSQL_TYPE_NULL:
		return dst, nil
	}
	s, _, _, ok := LenEncString(enc)
	if !ok {
		return dst, fmt.Errorf("decode binary string: %w", ErrMalformed)
	}
	return append(dst, s...), nil
}

// BinaryInt decodes a binary-protocol integer of type typ.
func BinaryInt(enc []byte, typ byte, unsigned bool) (uint64, int64, error) {
	var u uint64
	var s int64
	switch {
	case typ == mysql.MYSQL_TYPE_TINY && len(enc) == 1:
		u, s = uint64(enc[0]), int64(int8(enc[0]))
	case (typ == mysql.MYSQL_TYPE_SHORT || typ == mysql.MYSQL_TYPE_YEAR) && len(enc) == 2:
		v := binary.LittleEndian.Uint16(enc)
		u, s = uint64(v), int64(int16(v))
	case (typ == mysql.MYSQL_TYPE_LONG || typ == mysql.MYSQL_TYPE_INT24) && len(enc) == 4:
		v := binary.LittleEndian.Uint32(enc)
		u, s = uint64(v), int64(int32(v))
	case typ == mysql.MYSQL_TYPE_LONGLONG && len(enc) == 8:
		v := binary.LittleEndian.Uint64(enc)
		u, s = v, int64(v)
	default:
		return 0, 0, fmt.Errorf("decode integer of type 0x%02x: %w", typ, ErrMalformed)
	}
	if !unsigned {
		u = uint64(s)
	}
	return u, s, nil
}

// AppendBinaryInt appends v in the binary encoding of integer type typ.
func AppendBinaryInt(dst []byte, typ byte, v uint64) []byte {
	switch typ {
	case mysql.MYSQL_TYPE_TINY:
		return append(dst, byte(v))
	case mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_YEAR:
		return binary.LittleEndian.AppendUint16(dst, uint16(v))
	case mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_INT24:
		return binary.LittleEndian.AppendUint32(dst, uint32(v))
	}
	return binary.LittleEndian.AppendUint64(dst, v)
}

// AppendBinaryFloat appends f in the binary encoding of FLOAT (four bytes)
// or, for any other typ, DOUBLE (eight).
func AppendBinaryFloat(dst []byte, typ byte, f float64) []byte {
	if typ == mysql.MYSQL_TYPE_FLOAT {
		return binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(f)))
	}
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
}

// Fraction-digit markers for a temporal value whose scale is not a number
// of digits.
const (
	// fracNonZero: a computed column of no fixed scale (decimals 0x1f or
	// 0x27); the server writes six digits when the value has microseconds.
	fracNonZero = 0xfe
	// fracAsSent: a parameter, which has no declared scale; its
	// microseconds are written in full when the client sent them.
	fracAsSent = 0xff
)

// columnDecimals is how many fraction digits the server's text form of a
// temporal value of a column with these decimals has.
func columnDecimals(decimals byte) byte {
	switch {
	case decimals <= 6:
		return decimals
	case decimals == 0x1f || decimals == 0x27:
		return fracNonZero
	}
	return 0
}

// appendFrac appends the first decimals digits of micro (zero-padded to
// six) after a point; sent reports that the value carried microseconds.
func appendFrac(dst []byte, micro uint32, decimals byte, sent bool) []byte {
	n := int(decimals)
	switch decimals {
	case fracAsSent:
		if !sent {
			return dst
		}
		n = -1 // every digit
	case fracNonZero:
		if micro == 0 {
			return dst
		}
		n = 6
	}
	if n == 0 {
		return dst
	}
	var buf [16]byte
	digits := appendPadded(buf[:0], micro, 6)
	if n > 0 && n < len(digits) {
		digits = digits[:n]
	}
	return append(append(dst, '.'), digits...)
}

// appendPadded appends v in decimal, zero-padded to width characters (a
// sign included), as fmt's %0<width>d does.
func appendPadded[T int64 | uint64 | uint32 | int](dst []byte, v T, width int) []byte {
	u := uint64(v)
	if v < 0 {
		dst = append(dst, '-')
		width--
		u = uint64(-int64(v))
	}
	var buf [20]byte
	i := len(buf)
	for u > 0 || len(buf)-i < width {
		i--
		buf[i] = byte('0' + u%10)
		u /= 10
	}
	return append(dst, buf[i:]...)
}

// appendDateTime appends the text form of the body (after its length byte:
// 0, 4, 7 or 11 bytes) of a binary DATE, DATETIME or TIMESTAMP, with
// decimals fraction digits (fracAsSent: six when the body has them).
func appendDateTime(dst, b []byte, dateOnly bool, decimals byte) []byte {
	var y, mo, d, h, mi, s int
	var micro uint32
	if len(b) >= 4 {
		y, mo, d = int(binary.LittleEndian.Uint16(b)), int(b[2]), int(b[3])
	}
	if len(b) >= 7 {
		h, mi, s = int(b[4]), int(b[5]), int(b[6])
	}
	if len(b) == 11 {
		micro = binary.LittleEndian.Uint32(b[7:])
	}
	dst = appendPadded(dst, y, 4)
	dst = appendPadded(append(dst, '-'), mo, 2)
	dst = appendPadded(append(dst, '-'), d, 2)
	if dateOnly {
		return dst
	}
	dst = appendPadded(append(dst, ' '), h, 2)
	dst = appendPadded(append(dst, ':'), mi, 2)
	dst = appendPadded(append(dst, ':'), s, 2)
	return appendFrac(dst, micro, decimals, len(b) == 11)
}

// appendTime appends the text form of the body (0, 8 or 12 bytes) of a
// binary TIME: its days counted in hours, as the server writes it.
func appendTime(dst, b []byte, decimals byte) []byte {
	var neg bool
	var hours uint64
	var mi, s int
	var micro uint32
	if len(b) >= 8 {
		neg, hours, mi, s = b[0] == 1, uint64(binary.LittleEndian.Uint32(b[1:]))*24+uint64(b[5]), int(b[6]), int(b[7])
	}
	if len(b) == 12 {
		micro = binary.LittleEndian.Uint32(b[8:])
	}
	if neg {
		dst = append(dst, '-')
	}
	dst = appendPadded(dst, hours, 2)
	dst = appendPadded(append(dst, ':'), mi, 2)
	dst = appendPadded(append(dst, ':'), s, 2)
	return appendFrac(dst, micro, decimals, len(b) == 12)
}
