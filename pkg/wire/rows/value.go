package rows

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"github.com/go-mysql-org/go-mysql/mysql"
)

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
			return fmt.Appendf(dst, "%04d", s), nil
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
		return appendDateTimeText(dst, enc, c)
	case mysql.MYSQL_TYPE_TIME:
		return appendTimeText(dst, enc, c)
	case mysql.MYSQL_TYPE_NULL:
		return dst, nil
	}
	s, _, _, err := ReadLenEncString(enc, 0)
	if err != nil {
		return dst, err
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

func appendFrac(dst []byte, micro uint32, decimals byte) []byte {
	if decimals == 0 || decimals > 6 {
		if decimals > 6 && decimals != 0x1f && decimals != 0x27 {
			return dst
		}
		if micro == 0 || decimals == 0 {
			return dst
		}
		decimals = 6
	}
	s := fmt.Appendf(nil, "%06d", micro)
	return append(append(dst, '.'), s[:decimals]...)
}

func appendDateTimeText(dst, enc []byte, c *Column) ([]byte, error) {
	if len(enc) == 0 || int(enc[0]) != len(enc)-1 {
		return dst, fmt.Errorf("decode datetime: %w", ErrMalformed)
	}
	b := enc[1:]
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
	dst = fmt.Appendf(dst, "%04d-%02d-%02d", y, mo, d)
	if c.Type == mysql.MYSQL_TYPE_DATE || c.Type == mysql.MYSQL_TYPE_NEWDATE {
		return dst, nil
	}
	dst = fmt.Appendf(dst, " %02d:%02d:%02d", h, mi, s)
	return appendFrac(dst, micro, c.Decimals), nil
}

func appendTimeText(dst, enc []byte, c *Column) ([]byte, error) {
	if len(enc) == 0 || int(enc[0]) != len(enc)-1 {
		return dst, fmt.Errorf("decode time: %w", ErrMalformed)
	}
	b := enc[1:]
	var neg bool
	var days uint32
	var h, mi, s int
	var micro uint32
	if len(b) >= 8 {
		neg, days, h, mi, s = b[0] == 1, binary.LittleEndian.Uint32(b[1:]), int(b[5]), int(b[6]), int(b[7])
	}
	if len(b) == 12 {
		micro = binary.LittleEndian.Uint32(b[8:])
	}
	if neg {
		dst = append(dst, '-')
	}
	dst = fmt.Appendf(dst, "%02d:%02d:%02d", int(days)*24+h, mi, s)
	return appendFrac(dst, micro, c.Decimals), nil
}
