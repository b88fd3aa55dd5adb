package wire

import (
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// Column definitions (protocol 41) are read here and nowhere else: the reply
// tracker takes the name of each column, the row rewriter and the masker the
// whole definition.

// Column is a decoded protocol-41 column definition. The string fields alias
// the packet they were parsed from.
type Column struct {
	Schema, Table, OrgTable, Name, OrgName []byte
	// Extended holds MariaDB extended metadata (type name, e.g. "json"), when sent.
	Extended []byte
	Charset  uint16
	Length   uint32
	Type     byte
	Flags    uint16
	Decimals byte

	fixed int // offset of the 12-byte fixed block (after its 0x0c length)
}

// columnStrings reads the first len(strs) of the length-encoded strings
// that open a column definition (catalog, schema, table, org_table, name,
// org_name). null reports that one was the NULL marker, which no server
// sends; pos is the offset after the last one read.
func columnStrings(def []byte, strs [][]byte) (pos int, null bool, err error) {
	for i := range strs {
		s, isNull, n, ok := LenEncString(def[pos:])
		if !ok {
			return pos, null, fmt.Errorf("parse column definition: string %d at %d: %w", i, pos, ErrMalformed)
		}
		strs[i], pos, null = s, pos+n, null || isNull
	}
	return pos, null, nil
}

// ColumnName reads only the name (alias) of a column definition, as the
// reply tracker needs it for every column of a result: it stops there,
// and takes a NULL name for an empty one.
func ColumnName(def []byte) ([]byte, error) {
	var strs [5][]byte
	if _, _, err := columnStrings(def, strs[:]); err != nil {
		return nil, err
	}
	return strs[4], nil
}

// ParseColumn decodes a column-definition packet payload (protocol 41).
func ParseColumn(def []byte) (Column, error) {
	var c Column
	var strs [6][]byte
	pos, null, err := columnStrings(def, strs[:])
	if err != nil {
		return c, err
	}
	if null {
		return c, fmt.Errorf("parse column definition: NULL name: %w", ErrMalformed)
	}
	c.Schema, c.Table, c.OrgTable, c.Name, c.OrgName = strs[1], strs[2], strs[3], strs[4], strs[5]
	// MariaDB with MARIADB_CLIENT_EXTENDED_METADATA sends one more
	// length-encoded block here. Without it, 0x0c and exactly 12 bytes
	// (plus an optional default value for COM_FIELD_LIST) follow.
	plain := pos < len(def) && def[pos] == 0x0c && (len(def)-pos == 13 || !hasExtended(def, pos))
	if pos < len(def) && !plain {
		ext, _, n, ok := LenEncString(def[pos:])
		if !ok {
			return c, fmt.Errorf("parse column extended metadata at %d: %w", pos, ErrMalformed)
		}
		c.Extended, pos = parseExtended(ext), pos+n
	}
	if pos >= len(def) || def[pos] != 0x0c || len(def)-pos < 13 {
		return c, fmt.Errorf("parse column definition: fixed fields at %d: %w", pos, ErrMalformed)
	}
	f := pos + 1
	c.fixed = f
	c.Charset = uint16(def[f]) | uint16(def[f+1])<<8
	c.Length = uint32(def[f+2]) | uint32(def[f+3])<<8 | uint32(def[f+4])<<16 | uint32(def[f+5])<<24
	c.Type = def[f+6]
	c.Flags = uint16(def[f+7]) | uint16(def[f+8])<<8
	c.Decimals = def[f+9]
	return c, nil
}

// hasExtended reports whether the bytes at pos parse as an extended-metadata
// block followed by a well-formed fixed block; used only when the block's
// length happens to be 12.
func hasExtended(def []byte, pos int) bool {
	_, _, n, ok := LenEncString(def[pos:])
	next := pos + n
	return ok && next < len(def) && def[next] == 0x0c && len(def)-next >= 13
}

// parseExtended returns the type name (key 0) of a MariaDB extended metadata block.
func parseExtended(b []byte) []byte {
	for pos := 0; pos < len(b); {
		key := b[pos]
		s, _, n, ok := LenEncString(b[pos+1:])
		if !ok {
			return nil
		}
		if key == 0 {
			return s
		}
		pos += 1 + n
	}
	return nil
}

// IsJSON reports whether the column carries JSON (MySQL's JSON type, or
// MariaDB's JSON alias announced in extended metadata).
func (c *Column) IsJSON() bool {
	return c.Type == mysql.MYSQL_TYPE_JSON || string(c.Extended) == "json"
}

// IsString reports whether values of this type travel as length-encoded
// strings in the binary protocol and are not numbers, dates or bits.
func IsString(t byte) bool {
	switch t {
	case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_ENUM, mysql.MYSQL_TYPE_SET,
		mysql.MYSQL_TYPE_TINY_BLOB, mysql.MYSQL_TYPE_MEDIUM_BLOB, mysql.MYSQL_TYPE_LONG_BLOB,
		mysql.MYSQL_TYPE_BLOB, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_STRING,
		mysql.MYSQL_TYPE_GEOMETRY, mysql.MYSQL_TYPE_JSON:
		return true
	}
	return false
}

// SetFixed returns def with the fixed fields replaced (appended to dst). The
// names and any extended metadata are kept byte for byte.
func (c *Column) SetFixed(def, dst []byte, charset uint16, length uint32, typ byte, flags uint16, decimals byte) []byte {
	dst = append(dst[:0], def...)
	f := c.fixed
	dst[f], dst[f+1] = byte(charset), byte(charset>>8)
	dst[f+2], dst[f+3], dst[f+4], dst[f+5] = byte(length), byte(length>>8), byte(length>>16), byte(length>>24)
	dst[f+6] = typ
	dst[f+7], dst[f+8] = byte(flags), byte(flags>>8)
	dst[f+9] = decimals
	return dst
}

// AppendColumn encodes a column definition (for tests and synthetic result sets).
func AppendColumn(dst []byte, schema, table, orgTable, name, orgName string, charset uint16, length uint32, typ byte, flags uint16, decimals byte) []byte {
	for _, s := range []string{"def", schema, table, orgTable, name, orgName} {
		dst = AppendLenEncString(dst, []byte(s))
	}
	return append(dst, 0x0c, byte(charset), byte(charset>>8),
		byte(length), byte(length>>8), byte(length>>16), byte(length>>24),
		typ, byte(flags), byte(flags>>8), decimals, 0, 0)
}
