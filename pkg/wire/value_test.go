package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"testing"

	gm "github.com/go-mysql-org/go-mysql/mysql"
)

// TestBinaryValueText: one binary value read as a row's column and as an
// EXECUTE parameter. The text is the same except where the protocol makes
// it differ: a row's fraction of a second follows its column's decimals, a
// parameter's is written in full when sent.
func TestBinaryValueText(t *testing.T) {
	dt := []byte{11, 0xe8, 0x07, 0x02, 0x1d, 0x17, 0x3b, 0x3a, 0x40, 0xe2, 0x01, 0x00} // 2024-02-29 23:59:58.123456
	dtZero := []byte{11, 0xe8, 0x07, 0x02, 0x1d, 0x17, 0x3b, 0x3a, 0, 0, 0, 0}
	for _, c := range []struct {
		name      string
		typ       byte
		decimals  byte
		enc       []byte
		row       string
		param     any
		paramSame bool
	}{
		{"datetime(3) with microseconds", gm.MYSQL_TYPE_DATETIME, 3, dt, "2024-02-29 23:59:58.123", "2024-02-29 23:59:58.123456", false},
		{"datetime(6)", gm.MYSQL_TYPE_DATETIME, 6, dt, "2024-02-29 23:59:58.123456", nil, true},
		{"computed datetime, zero microseconds", gm.MYSQL_TYPE_DATETIME, 0x1f, dtZero, "2024-02-29 23:59:58", "2024-02-29 23:59:58.000000", false},
		{"computed datetime with microseconds", gm.MYSQL_TYPE_TIMESTAMP, 0x27, dt, "2024-02-29 23:59:58.123456", nil, true},
		{"datetime without time", gm.MYSQL_TYPE_DATETIME, 0, []byte{4, 0xe8, 0x07, 0x02, 0x1d}, "2024-02-29 00:00:00", nil, true},
		{"zero datetime", gm.MYSQL_TYPE_DATETIME, 0, []byte{0}, "0000-00-00 00:00:00", nil, true},
		{"date", gm.MYSQL_TYPE_DATE, 0, []byte{4, 0xe8, 0x07, 0x02, 0x1d}, "2024-02-29", nil, true},
		{"zero date", gm.MYSQL_TYPE_DATE, 0, []byte{0}, "0000-00-00", nil, true},
		{"time under ten hours", gm.MYSQL_TYPE_TIME, 0, []byte{8, 0, 0, 0, 0, 0, 1, 2, 3}, "01:02:03", nil, true},
		{"negative time over a day", gm.MYSQL_TYPE_TIME, 0, []byte{8, 1, 1, 0, 0, 0, 2, 3, 4}, "-26:03:04", nil, true},
		{"time(6)", gm.MYSQL_TYPE_TIME, 6, []byte{12, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0}, "00:00:00.000005", nil, true},
		{"time(2) with microseconds", gm.MYSQL_TYPE_TIME, 2, []byte{12, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0xe2, 0x01, 0x00}, "00:00:00.12", "00:00:00.123456", false},
		{"zero time", gm.MYSQL_TYPE_TIME, 0, []byte{0}, "00:00:00", nil, true},
		{"year", gm.MYSQL_TYPE_YEAR, 0, []byte{0xcf, 0x07}, "1999", uint64(1999), false},
		{"signed int", gm.MYSQL_TYPE_LONG, 0, []byte{0xfe, 0xff, 0xff, 0xff}, "-2", int64(-2), false},
		{"decimal", gm.MYSQL_TYPE_NEWDECIMAL, 2, []byte{4, '9', '.', '9', '9'}, "9.99", nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			end, err := BinaryValueEnd(c.enc, 0, c.typ)
			if err != nil || end != len(c.enc) {
				t.Fatalf("BinaryValueEnd = %d, %v", end, err)
			}
			got, err := AppendText(nil, c.enc, &Column{Type: c.typ, Decimals: c.decimals})
			if err != nil || string(got) != c.row {
				t.Fatalf("row text = %q, %v; want %q", got, err, c.row)
			}
			want := c.param
			if c.paramSame {
				want = c.row
			}
			v, n, err := decodeBinaryValue(c.enc, c.typ, false)
			if err != nil || n != len(c.enc) || v != want {
				t.Fatalf("parameter = %#v (%d bytes), %v; want %#v", v, n, err, want)
			}
		})
	}
}

// TestParamTypeAsServerReads: a parameter of a type that is no number or
// temporal value is read as a length-encoded string, as the server reads it.
func TestParamTypeAsServerReads(t *testing.T) {
	for _, typ := range []byte{gm.MYSQL_TYPE_NEWDATE, 0x40, gm.MYSQL_TYPE_NEWDECIMAL, gm.MYSQL_TYPE_BLOB} {
		v, n, err := decodeBinaryValue([]byte{2, 'a', 'b', 'x'}, typ, false)
		if err != nil || n != 3 || v != "ab" {
			t.Errorf("type 0x%02x: %#v %d %v", typ, v, n, err)
		}
	}
	// 0xfb is a length for a parameter (NULL is in the bitmap), never for a row value.
	if v, n, err := decodeBinaryValue([]byte{0xfb}, gm.MYSQL_TYPE_VAR_STRING, false); err != nil || n != 1 || v != "" {
		t.Errorf("0xfb parameter: %#v %d %v", v, n, err)
	}
	if _, err := BinaryValueEnd([]byte{0xfb}, 0, gm.MYSQL_TYPE_VAR_STRING); !errors.Is(err, ErrMalformed) {
		t.Errorf("0xfb row value: %v", err)
	}
}

func TestAppendPadded(t *testing.T) {
	for _, v := range []int64{0, 7, -5, 1999, 12345, -12345} {
		if got, want := string(appendPadded(nil, v, 4)), fmt.Sprintf("%04d", v); got != want {
			t.Errorf("appendPadded(%d) = %q, want %q", v, got, want)
		}
	}
}

// FuzzBinaryValue: a value BinaryValueEnd delimits never reaches past its
// input, reads as text (a float's text encodes back to its bytes), and a number or temporal parameter of the same type
// takes the same bytes and has the same text as a row value of a column
// whose scale is what the parameter sent (six digits or none).
func FuzzBinaryValue(f *testing.F) {
	f.Add([]byte{11, 0xe8, 0x07, 0x02, 0x1d, 0x17, 0x3b, 0x3a, 0x40, 0xe2, 0x01, 0x00}, byte(gm.MYSQL_TYPE_DATETIME), byte(3))
	f.Add([]byte{12, 1, 1, 0, 0, 0, 2, 3, 4, 0xff, 0xff, 0xff, 0xff}, byte(gm.MYSQL_TYPE_TIME), byte(0x1f))
	f.Add([]byte{0xfc, 2, 0, 'a', 'b'}, byte(gm.MYSQL_TYPE_BLOB), byte(0))
	f.Add([]byte{0xcf, 0x07}, byte(gm.MYSQL_TYPE_YEAR), byte(0))
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, byte(gm.MYSQL_TYPE_DOUBLE), byte(0))
	f.Fuzz(func(t *testing.T, b []byte, typ, decimals byte) {
		end, err := BinaryValueEnd(b, 0, typ)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			return
		}
		if end > len(b) {
			t.Fatalf("value of %d bytes from %d", end, len(b))
		}
		c := Column{Type: typ, Decimals: decimals}
		text, err := AppendText(nil, b[:end], &c)
		if err != nil {
			t.Fatalf("AppendText of a delimited value: %v", err)
		}
		if typ == gm.MYSQL_TYPE_FLOAT || typ == gm.MYSQL_TYPE_DOUBLE {
			// The text form is exact: it encodes back to the same bytes
			// (a NaN's payload aside).
			bits := 64
			if typ == gm.MYSQL_TYPE_FLOAT {
				bits = 32
			}
			f, err := strconv.ParseFloat(string(text), bits)
			if err != nil {
				t.Fatalf("float text %q: %v", text, err)
			}
			if !math.IsNaN(f) && !bytes.Equal(AppendBinaryFloat(nil, typ, f), b[:end]) {
				t.Fatalf("% x reads as %q, which encodes to % x", b[:end], text, AppendBinaryFloat(nil, typ, f))
			}
		}
		if paramType(typ) != typ {
			return
		}
		v, n, err := decodeBinaryValue(b, typ, false)
		if err != nil || n != end {
			t.Fatalf("parameter took %d bytes (%v), row value %d", n, err, end)
		}
		switch typ {
		case gm.MYSQL_TYPE_DATE, gm.MYSQL_TYPE_DATETIME, gm.MYSQL_TYPE_TIMESTAMP, gm.MYSQL_TYPE_TIME:
			c.Decimals = 6
			full, _ := AppendText(nil, b[:end], &c)
			c.Decimals = 0
			none, _ := AppendText(nil, b[:end], &c)
			switch {
			case (b[0] == 11 || b[0] == 12) && binary.LittleEndian.Uint32(b[end-4:]) > 999999:
				// Microseconds no server sends: a parameter keeps every
				// digit sent, a row the first six.
			case b[0] == 11 || b[0] == 12:
				if v != string(full) {
					t.Fatalf("parameter %q, row at full scale %q", v, full)
				}
			default:
				if v != string(none) {
					t.Fatalf("parameter %q, row without fraction %q", v, none)
				}
			}
		case gm.MYSQL_TYPE_TINY, gm.MYSQL_TYPE_SHORT, gm.MYSQL_TYPE_LONG, gm.MYSQL_TYPE_INT24, gm.MYSQL_TYPE_LONGLONG:
			if fmt.Sprint(v) != string(text) {
				t.Fatalf("parameter %v, row %q", v, text)
			}
		}
	})
}
