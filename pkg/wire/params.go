package wire

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"

	gm "github.com/go-mysql-org/go-mysql/mysql"
)

// Param is one decoded COM_STMT_EXECUTE parameter, as the audit records it.
type Param struct {
	Type      string
	Value     any // nil for NULL; string for text, decimals and temporal values; int64/uint64/float64 for numbers
	Truncated bool
	Size      int    // original size in bytes when truncated
	SHA256    string // of the whole value (hex) when truncated: what approvals and the journal tell apart
}

// MaxParamBytes is how much of a string or blob parameter the audit keeps.
const MaxParamBytes = 1024

// Execute is a decoded COM_STMT_EXECUTE header.
type Execute struct {
	StmtID     uint32
	Flags      byte
	Iterations uint32
	// Types holds the parameter types when the client (re)bound them.
	Types []byte // 2 bytes per parameter: type, flags (0x80 = unsigned)
}

// CursorTypeReadOnly is the COM_STMT_EXECUTE flag that opens a cursor.
const CursorTypeReadOnly = 0x01

// ParseExecute decodes a COM_STMT_EXECUTE payload (including the command
// byte). numParams comes from the PREPARE reply; prevTypes are the types
// bound by an earlier execution (clients send them only when they change);
// longData marks parameters sent with COM_STMT_SEND_LONG_DATA, whose values
// are not in the packet. It returns the header and the decoded values.
func ParseExecute(p []byte, numParams int, prevTypes []byte, longData func(i int) (Param, bool)) (Execute, []Param, error) {
	bad := func(what string) (Execute, []Param, error) {
		return Execute{}, nil, fmt.Errorf("parse COM_STMT_EXECUTE: %w: %s", ErrMalformed, what)
	}
	if len(p) < 10 || p[0] != gm.COM_STMT_EXECUTE {
		return bad("header")
	}
	ex := Execute{StmtID: binary.LittleEndian.Uint32(p[1:]), Flags: p[5], Iterations: binary.LittleEndian.Uint32(p[6:])}
	if numParams == 0 {
		return ex, nil, nil
	}
	if numParams > 65535 {
		return bad("parameter count")
	}
	pos := 10
	nb := (numParams + 7) / 8
	if pos+nb+1 > len(p) {
		return bad("null bitmap")
	}
	nulls := p[pos : pos+nb]
	pos += nb
	bound := p[pos]
	pos++
	types := prevTypes
	if bound == 1 {
		if pos+2*numParams > len(p) {
			return bad("parameter types")
		}
		types = p[pos : pos+2*numParams]
		pos += 2 * numParams
	}
	if len(types) != 2*numParams {
		return bad("parameter types never bound")
	}
	ex.Types = types
	params := make([]Param, numParams)
	for i := 0; i < numParams; i++ {
		typ, flags := types[2*i], types[2*i+1]
		params[i].Type = TypeName(typ, flags&0x80 != 0)
		// Long data comes first: the server binds what
		// COM_STMT_SEND_LONG_DATA sent for a parameter even when the NULL
		// bitmap marks it NULL (MariaDB's insert_params), so that is what
		// the parameter is.
		if longData != nil {
			if ld, ok := longData(i); ok {
				ld.Type = params[i].Type
				params[i] = ld
				continue
			}
		}
		if nulls[i/8]&(1<<(i%8)) != 0 {
			continue
		}
		v, n, err := decodeBinaryValue(p[pos:], typ, flags&0x80 != 0)
		if err != nil {
			return Execute{}, nil, fmt.Errorf("parse COM_STMT_EXECUTE: parameter %d: %w", i, err)
		}
		pos += n
		params[i].Value = v
		if s, ok := v.(string); ok {
			params[i].Keep(s)
		}
	}
	return ex, params, nil
}

// Keep sets p's value to s as the audit keeps it: whole up to
// MaxParamBytes, else its first MaxParamBytes with its size and the
// SHA-256 of all of it (what tells two long values apart).
func (p *Param) Keep(s string) {
	p.Value = s
	if len(s) > MaxParamBytes {
		sum := sha256.Sum256([]byte(s))
		p.Value, p.Truncated, p.Size, p.SHA256 = s[:MaxParamBytes], true, len(s), hex.EncodeToString(sum[:])
	}
}

// paramType is the type the server reads a parameter of type typ as: one
// that is not a number or a temporal value it reads as a length-encoded
// string (NEWDATE and unknown types included).
func paramType(typ byte) byte {
	switch typ {
	case gm.MYSQL_TYPE_NULL, gm.MYSQL_TYPE_TINY, gm.MYSQL_TYPE_SHORT, gm.MYSQL_TYPE_YEAR,
		gm.MYSQL_TYPE_LONG, gm.MYSQL_TYPE_INT24, gm.MYSQL_TYPE_LONGLONG, gm.MYSQL_TYPE_FLOAT, gm.MYSQL_TYPE_DOUBLE,
		gm.MYSQL_TYPE_DATE, gm.MYSQL_TYPE_DATETIME, gm.MYSQL_TYPE_TIMESTAMP, gm.MYSQL_TYPE_TIME:
		return typ
	}
	return gm.MYSQL_TYPE_STRING
}

// decodeBinaryValue decodes one parameter value of type typ: delimited by
// BinaryValueEnd and formatted by the code that reads rows.
func decodeBinaryValue(b []byte, typ byte, unsigned bool) (any, int, error) {
	typ = paramType(typ)
	if typ == gm.MYSQL_TYPE_STRING {
		// Every length prefix is a length here, 0xfb too: a NULL
		// parameter is marked in the null bitmap and has no value.
		s, _, n, ok := LenEncString(b)
		if !ok {
			return nil, 0, fmt.Errorf("%w: string value", ErrMalformed)
		}
		return string(s), n, nil
	}
	n, err := BinaryValueEnd(b, 0, typ)
	if err != nil {
		return nil, 0, err
	}
	enc := b[:n]
	var buf [48]byte
	switch typ {
	case gm.MYSQL_TYPE_NULL:
		return nil, 0, nil
	case gm.MYSQL_TYPE_FLOAT:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(enc))), n, nil
	case gm.MYSQL_TYPE_DOUBLE:
		return math.Float64frombits(binary.LittleEndian.Uint64(enc)), n, nil
	case gm.MYSQL_TYPE_DATE, gm.MYSQL_TYPE_DATETIME, gm.MYSQL_TYPE_TIMESTAMP:
		return string(appendDateTime(buf[:0], enc[1:], typ == gm.MYSQL_TYPE_DATE, fracAsSent)), n, nil
	case gm.MYSQL_TYPE_TIME:
		return string(appendTime(buf[:0], enc[1:], fracAsSent)), n, nil
	}
	// A YEAR is a number of years, never negative.
	unsigned = unsigned || typ == gm.MYSQL_TYPE_YEAR
	u, sv, err := BinaryInt(enc, typ, unsigned)
	if err != nil {
		return nil, 0, err
	}
	if unsigned {
		return u, n, nil
	}
	return sv, n, nil
}

// TypeName is the audit name of a column/parameter type.
func TypeName(typ byte, unsigned bool) string {
	name, ok := typeNames[typ]
	if !ok {
		name = "TYPE_" + strconv.Itoa(int(typ))
	}
	if unsigned {
		return name + " UNSIGNED"
	}
	return name
}

var typeNames = map[byte]string{
	gm.MYSQL_TYPE_DECIMAL: "DECIMAL", gm.MYSQL_TYPE_TINY: "TINYINT", gm.MYSQL_TYPE_SHORT: "SMALLINT",
	gm.MYSQL_TYPE_LONG: "INT", gm.MYSQL_TYPE_FLOAT: "FLOAT", gm.MYSQL_TYPE_DOUBLE: "DOUBLE", gm.MYSQL_TYPE_NULL: "NULL",
	gm.MYSQL_TYPE_TIMESTAMP: "TIMESTAMP", gm.MYSQL_TYPE_LONGLONG: "BIGINT", gm.MYSQL_TYPE_INT24: "MEDIUMINT",
	gm.MYSQL_TYPE_DATE: "DATE", gm.MYSQL_TYPE_TIME: "TIME", gm.MYSQL_TYPE_DATETIME: "DATETIME", gm.MYSQL_TYPE_YEAR: "YEAR",
	gm.MYSQL_TYPE_VARCHAR: "VARCHAR", gm.MYSQL_TYPE_BIT: "BIT", gm.MYSQL_TYPE_JSON: "JSON", gm.MYSQL_TYPE_NEWDECIMAL: "DECIMAL",
	gm.MYSQL_TYPE_ENUM: "ENUM", gm.MYSQL_TYPE_SET: "SET", gm.MYSQL_TYPE_TINY_BLOB: "TINYBLOB",
	gm.MYSQL_TYPE_MEDIUM_BLOB: "MEDIUMBLOB", gm.MYSQL_TYPE_LONG_BLOB: "LONGBLOB", gm.MYSQL_TYPE_BLOB: "BLOB",
	gm.MYSQL_TYPE_VAR_STRING: "VARCHAR", gm.MYSQL_TYPE_STRING: "CHAR", gm.MYSQL_TYPE_GEOMETRY: "GEOMETRY",
}
