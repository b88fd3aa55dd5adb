package masking

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"math"
	"strconv"
	"sync/atomic"
	"unicode/utf8"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/pkg/wire/rows"
)

// redactText is the constant that replaces string values.
const redactText = "****"

// hashHexLen is the length of a hash-strategy value: 16 bytes of HMAC-SHA256 in hex.
const hashHexLen = 32

// Column-definition choices, so rewritten values stay consistent with their
// column definitions:
//   - redact and null keep every column's type (null also clears NOT_NULL).
//   - partial keeps the type too: strings keep their length with '*' except
//     the last Keep characters; numbers keep the last Keep digits and turn the
//     others into 0 (the sign is dropped), so the value is still a number;
//     dates, times, JSON, BIT and geometry fall back to redact.
//   - hash turns a non-string column into VAR_STRING (utf8mb3, 32 characters)
//     carrying 32 hex digits; string columns keep their type.
// String column lengths grow when the replacement is longer than declared.

// colMask is how one result column is masked.
type colMask struct {
	col      wire.Column
	rule     *rule  // nil: detectors only
	source   string // masked source column, for the summary
	detect   DetectorConfig
	redactT  []byte // redact constant, text protocol
	redactB  []byte // redact constant, binary protocol
	toString bool   // hash into a non-string column: sent as VAR_STRING
	count    *atomic.Uint64
	dcount   *atomic.Uint64 // detector hits
}

func (c *colMask) strategy() string {
	if c.rule == nil {
		return ""
	}
	return c.rule.Strategy
}

func newColMask(col wire.Column, r *rule) *colMask {
	c := &colMask{col: col, rule: r}
	c.redactT, c.redactB = redactConst(&col)
	c.toString = r != nil && r.Strategy == StrategyHash && !wire.IsString(col.Type)
	return c
}

// redactConst returns the type-preserving constant for a column in both protocols.
func redactConst(c *wire.Column) (text, bin []byte) {
	switch c.Type {
	case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_LONG,
		mysql.MYSQL_TYPE_INT24, mysql.MYSQL_TYPE_LONGLONG:
		return []byte("0"), wire.AppendBinaryInt(nil, c.Type, 0)
	case mysql.MYSQL_TYPE_YEAR:
		return []byte("1970"), wire.AppendBinaryInt(nil, c.Type, 1970)
	case mysql.MYSQL_TYPE_FLOAT:
		return []byte("0"), make([]byte, 4)
	case mysql.MYSQL_TYPE_DOUBLE:
		return []byte("0"), make([]byte, 8)
	case mysql.MYSQL_TYPE_DECIMAL, mysql.MYSQL_TYPE_NEWDECIMAL:
		t := []byte("0")
		if c.Decimals > 0 && c.Decimals <= 38 {
			t = append(t, '.')
			for i := 0; i < int(c.Decimals); i++ {
				t = append(t, '0')
			}
		}
		return t, wire.AppendLenEncString(nil, t)
	case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE:
		return []byte("1970-01-01"), []byte{4, 0xb2, 0x07, 1, 1} // len, year 1970 LE, month, day
	case mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_TIMESTAMP:
		return appendZeroFrac([]byte("1970-01-01 00:00:00"), c.Decimals), []byte{7, 0xb2, 0x07, 1, 1, 0, 0, 0}
	case mysql.MYSQL_TYPE_TIME:
		return appendZeroFrac([]byte("00:00:00"), c.Decimals), []byte{0} // zero-length TIME is 00:00:00
	case mysql.MYSQL_TYPE_BIT:
		z := make([]byte, (c.Length+7)/8)
		return z, wire.AppendLenEncString(nil, z)
	case mysql.MYSQL_TYPE_NULL:
		return nil, nil
	case mysql.MYSQL_TYPE_GEOMETRY:
		return []byte{}, []byte{0}
	}
	if c.Flags&(mysql.ENUM_FLAG|mysql.SET_FLAG) != 0 || c.Type == mysql.MYSQL_TYPE_ENUM || c.Type == mysql.MYSQL_TYPE_SET {
		return []byte{}, []byte{0}
	}
	t := []byte(redactText)
	if c.IsJSON() || mayBeJSON(c) {
		t = []byte(`"` + redactText + `"`)
	}
	return t, wire.AppendLenEncString(nil, t)
}

// mayBeJSON reports a column that may be JSON without saying so: MariaDB
// declares JSON columns as LONGTEXT and marks them only in extended metadata,
// which clients (and so the proxy) rarely negotiate. Redacting every
// LONGTEXT to the JSON string "****" keeps JSON columns valid JSON and is as
// good a constant for any other long text.
func mayBeJSON(c *wire.Column) bool {
	return c.Type == mysql.MYSQL_TYPE_BLOB && c.Length == math.MaxUint32 && c.Charset != 63
}

func appendZeroFrac(b []byte, decimals byte) []byte {
	if decimals == 0 || decimals > 6 {
		return b
	}
	b = append(b, '.')
	for i := 0; i < int(decimals); i++ {
		b = append(b, '0')
	}
	return b
}

func isNumeric(t byte) bool {
	switch t {
	case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_INT24,
		mysql.MYSQL_TYPE_LONGLONG, mysql.MYSQL_TYPE_FLOAT, mysql.MYSQL_TYPE_DOUBLE,
		mysql.MYSQL_TYPE_DECIMAL, mysql.MYSQL_TYPE_NEWDECIMAL:
		return true
	}
	return false
}

// partialString keeps the last keep runes of v and stars the others.
func partialString(dst, v []byte, keep int) []byte {
	n := utf8.RuneCount(v)
	i := 0
	for len(v) > 0 {
		r, size := utf8.DecodeRune(v)
		if i < n-keep {
			dst = append(dst, '*')
		} else if r == utf8.RuneError && size == 1 {
			dst = append(dst, v[0])
		} else {
			dst = append(dst, v[:size]...)
		}
		v = v[size:]
		i++
	}
	return dst
}

// partialNumber keeps the last keep digits of a number's text and zeroes the
// other digits; the sign is dropped.
func partialNumber(dst, v []byte, keep int) []byte {
	digits := 0
	for _, c := range v {
		if c >= '0' && c <= '9' {
			digits++
		}
	}
	seen := 0
	for _, c := range v {
		switch {
		case c >= '0' && c <= '9':
			if seen < digits-keep {
				c = '0'
			}
			seen++
			dst = append(dst, c)
		case c == '-' || c == '+':
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// hasher is the hash strategy's HMAC, made on first use: a result set
// with no hashed column (the usual case) allocates none.
type hasher struct {
	key []byte
	h   hash.Hash
	sum []byte
}

func (h *hasher) appendHex(dst, v []byte) []byte {
	if h.h == nil {
		h.h = hmac.New(sha256.New, h.key)
	}
	h.h.Reset()
	h.h.Write(v)
	h.sum = h.h.Sum(h.sum[:0])
	return hex.AppendEncode(dst, h.sum[:hashHexLen/2])
}

// editor implements rows.Editor for one result set.
type editor struct {
	cols []*colMask
	hash hasher
	tmp  []byte
	out  []byte
}

func (e *editor) Text(i int, val, dst []byte) ([]byte, rows.Action, error) {
	c := e.cols[i]
	switch c.strategy() {
	case "":
		if c.detect.detect(val) == "" {
			return dst, rows.Keep, nil
		}
		c.dcount.Add(1)
		return append(dst, c.redactT...), rows.Replace, nil
	case StrategyNull:
		c.count.Add(1)
		return dst, rows.Null, nil
	case StrategyRedact:
		c.count.Add(1)
		return append(dst, c.redactT...), rows.Replace, nil
	case StrategyPartial:
		c.count.Add(1)
		switch {
		case isNumeric(c.col.Type):
			return partialNumber(dst, val, c.rule.Keep), rows.Replace, nil
		case wire.IsString(c.col.Type) && !c.col.IsJSON() && c.col.Type != mysql.MYSQL_TYPE_GEOMETRY:
			return partialString(dst, val, c.rule.Keep), rows.Replace, nil
		}
		return append(dst, c.redactT...), rows.Replace, nil
	case StrategyHash:
		c.count.Add(1)
		return e.hash.appendHex(dst, val), rows.Replace, nil
	}
	return dst, rows.Keep, nil
}

func (e *editor) Binary(i int, enc, dst []byte) ([]byte, rows.Action, error) {
	c := e.cols[i]
	st := c.strategy()
	switch st {
	case StrategyNull:
		c.count.Add(1)
		return dst, rows.Null, nil
	case StrategyRedact:
		c.count.Add(1)
		return append(dst, c.redactB...), rows.Replace, nil
	case StrategyPartial:
		if !isNumeric(c.col.Type) && !(wire.IsString(c.col.Type) && !c.col.IsJSON() && c.col.Type != mysql.MYSQL_TYPE_GEOMETRY) {
			c.count.Add(1)
			return append(dst, c.redactB...), rows.Replace, nil
		}
	}
	// Decode to the text form, apply the text strategy, encode back.
	var err error
	e.tmp, err = wire.AppendText(e.tmp[:0], enc, &c.col)
	if err != nil {
		return dst, rows.Keep, err
	}
	out, act, err := e.Text(i, e.tmp, e.out[:0])
	if err != nil || act != rows.Replace {
		return dst, act, err
	}
	e.out = out
	if st == "" {
		return append(dst, c.redactB...), rows.Replace, nil
	}
	if wire.IsString(c.col.Type) || c.toString || c.col.Type == mysql.MYSQL_TYPE_DECIMAL || c.col.Type == mysql.MYSQL_TYPE_NEWDECIMAL || c.col.Type == mysql.MYSQL_TYPE_BIT {
		return wire.AppendLenEncString(dst, out), rows.Replace, nil
	}
	// partial on a binary number
	switch c.col.Type {
	case mysql.MYSQL_TYPE_FLOAT:
		f, _ := strconv.ParseFloat(string(out), 32)
		return wire.AppendBinaryFloat(dst, c.col.Type, f), rows.Replace, nil
	case mysql.MYSQL_TYPE_DOUBLE:
		f, _ := strconv.ParseFloat(string(out), 64)
		return wire.AppendBinaryFloat(dst, c.col.Type, f), rows.Replace, nil
	}
	u, _ := strconv.ParseUint(string(out), 10, 64)
	return wire.AppendBinaryInt(dst, c.col.Type, u), rows.Replace, nil
}

// columnDef rewrites a column definition so it matches the masked values.
func (c *colMask) columnDef(def []byte) []byte {
	if c.rule == nil {
		return def
	}
	col := &c.col
	charset, length, typ, flags, dec := col.Charset, col.Length, col.Type, col.Flags, col.Decimals
	switch {
	case c.toString:
		charset, length, typ, flags, dec = 33, hashHexLen*3, mysql.MYSQL_TYPE_VAR_STRING, flags&mysql.NOT_NULL_FLAG, 0
	case c.rule.Strategy == StrategyNull:
		flags &^= mysql.NOT_NULL_FLAG
	case wire.IsString(typ):
		need := uint32(len(c.redactT))
		if c.rule.Strategy == StrategyHash {
			need = hashHexLen
		}
		if need*4 > length {
			length = need * 4
		}
	}
	if charset == col.Charset && length == col.Length && typ == col.Type && flags == col.Flags && dec == col.Decimals {
		return def
	}
	return col.SetFixed(def, nil, charset, length, typ, flags, dec)
}
