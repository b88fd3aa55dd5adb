package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseExecute(t *testing.T) {
	long := strings.Repeat("z", MaxParamBytes+10)
	tests := []struct {
		name      string
		p         []byte
		numParams int
		prevTypes []byte
		longData  map[int]Param
		want      []Param
		err       bool
	}{
		{
			name: "no parameters",
			p: []byte{
				0x17,                   // COM_STMT_EXECUTE
				0x01, 0x00, 0x00, 0x00, // statement id 1
				0x00,                   // flags: CURSOR_TYPE_NO_CURSOR
				0x01, 0x00, 0x00, 0x00, // iterations 1
			},
			want: nil,
		},
		{
			name: "integers, a string and a NULL",
			p: []byte{
				0x17,                   // COM_STMT_EXECUTE
				0x07, 0x00, 0x00, 0x00, // statement id 7
				0x00,                   // flags
				0x01, 0x00, 0x00, 0x00, // iterations
				0x10,       // NULL bitmap: parameter 4 is NULL
				0x01,       // new params bound
				0x01, 0x00, // MYSQL_TYPE_TINY
				0x02, 0x80, // MYSQL_TYPE_SHORT unsigned
				0x03, 0x00, // MYSQL_TYPE_LONG
				0x08, 0x00, // MYSQL_TYPE_LONGLONG
				0xfd, 0x00, // MYSQL_TYPE_VAR_STRING
				0xff,       // TINY -1
				0xff, 0xff, // SHORT UNSIGNED 65535
				0x2a, 0x00, 0x00, 0x00, // LONG 42
				0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, // LONGLONG math.MinInt64
				// parameter 4 is NULL: no bytes
			},
			numParams: 5,
			want: []Param{{Type: "TINYINT", Value: int64(-1)}, {Type: "SMALLINT UNSIGNED", Value: uint64(65535)},
				{Type: "INT", Value: int64(42)}, {Type: "BIGINT", Value: int64(-1 << 63)}, {Type: "VARCHAR"}},
		},
		{
			name: "double, float, date-time, time and a string",
			p: []byte{
				0x17,                   // COM_STMT_EXECUTE
				0x01, 0x00, 0x00, 0x00, // statement id
				0x00,                   // flags
				0x01, 0x00, 0x00, 0x00, // iterations
				0x00,       // NULL bitmap
				0x01,       // new params bound
				0x05, 0x00, // MYSQL_TYPE_DOUBLE
				0x04, 0x00, // MYSQL_TYPE_FLOAT
				0x0c, 0x00, // MYSQL_TYPE_DATETIME
				0x0b, 0x00, // MYSQL_TYPE_TIME
				0x0f, 0x00, // MYSQL_TYPE_VARCHAR
				0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f, // 1.5
				0x00, 0x00, 0x20, 0xc0, // -2.5
				0x0b, 0xe8, 0x07, 0x02, 0x1d, 0x17, 0x3b, 0x3a, 0x40, 0xe2, 0x01, 0x00, // 2024-02-29 23:59:58.123456
				0x08, 0x01, 0x01, 0x00, 0x00, 0x00, 0x02, 0x03, 0x04, // -26:03:04 (1 day 2 hours, negative)
				0x04, 'p', 'e', 'a', 'r', // lenenc "pear"
			},
			numParams: 5,
			want: []Param{{Type: "DOUBLE", Value: 1.5}, {Type: "FLOAT", Value: -2.5}, {Type: "DATETIME", Value: "2024-02-29 23:59:58.123456"},
				{Type: "TIME", Value: "-26:03:04"}, {Type: "VARCHAR", Value: "pear"}},
		},
		{
			name: "types from the previous execution",
			p: []byte{
				0x17,                   // COM_STMT_EXECUTE
				0x01, 0x00, 0x00, 0x00, // statement id
				0x00,                   // flags
				0x01, 0x00, 0x00, 0x00, // iterations
				0x00,                   // NULL bitmap
				0x00,                   // params not re-bound
				0x05, 0x00, 0x00, 0x00, // LONG 5
			},
			numParams: 1,
			prevTypes: []byte{0x03, 0x00}, // MYSQL_TYPE_LONG
			want:      []Param{{Type: "INT", Value: int64(5)}},
		},
		{
			name: "long data parameter is not in the packet",
			p: []byte{
				0x17,                   // COM_STMT_EXECUTE
				0x01, 0x00, 0x00, 0x00, // statement id
				0x00,                   // flags
				0x01, 0x00, 0x00, 0x00, // iterations
				0x00,       // NULL bitmap
				0x01,       // new params bound
				0xfc, 0x00, // MYSQL_TYPE_BLOB (sent as long data)
				0x03, 0x00, // MYSQL_TYPE_LONG
				0x09, 0x00, 0x00, 0x00, // LONG 9
			},
			numParams: 2,
			longData:  map[int]Param{0: {Value: "head", Truncated: true, Size: 1 << 20}},
			want:      []Param{{Type: "BLOB", Value: "head", Truncated: true, Size: 1 << 20}, {Type: "INT", Value: int64(9)}},
		},
		{
			// The server binds the long data whatever the NULL bit says, so
			// the journal must not record NULL for it.
			name: "long data wins over the NULL bitmap",
			p: []byte{
				0x17,                   // COM_STMT_EXECUTE
				0x01, 0x00, 0x00, 0x00, // statement id
				0x00,                   // flags
				0x01, 0x00, 0x00, 0x00, // iterations
				0x01,       // NULL bitmap: parameter 0 NULL
				0x01,       // new params bound
				0xfe, 0x00, // MYSQL_TYPE_STRING
			},
			numParams: 1,
			longData:  map[int]Param{0: {Value: "NOT_WHAT_WAS_APPROVED"}},
			want:      []Param{{Type: "CHAR", Value: "NOT_WHAT_WAS_APPROVED"}},
		},
		{
			name: "string over the audit limit is truncated with its size",
			p: append([]byte{
				0x17,                   // COM_STMT_EXECUTE
				0x01, 0x00, 0x00, 0x00, // statement id
				0x00,                   // flags
				0x01, 0x00, 0x00, 0x00, // iterations
				0x00,       // NULL bitmap
				0x01,       // new params bound
				0xfe, 0x00, // MYSQL_TYPE_STRING
				0xfc, 0x0a, 0x04, // lenenc length 1034
			}, long...),
			numParams: 1,
			want:      []Param{{Type: "CHAR", Value: long[:MaxParamBytes], Truncated: true, Size: len(long), SHA256: sha256Hex(long)}},
		},
		{
			name: "types never bound",
			p: []byte{
				0x17,                   // COM_STMT_EXECUTE
				0x01, 0x00, 0x00, 0x00, // statement id
				0x00,                   // flags
				0x01, 0x00, 0x00, 0x00, // iterations
				0x00, // NULL bitmap
				0x00, // params not bound, and no earlier types
			},
			numParams: 1,
			err:       true,
		},
		{
			name: "value cut short",
			p: []byte{
				0x17,                   // COM_STMT_EXECUTE
				0x01, 0x00, 0x00, 0x00, // statement id
				0x00,                   // flags
				0x01, 0x00, 0x00, 0x00, // iterations
				0x00,       // NULL bitmap
				0x01,       // new params bound
				0x08, 0x00, // MYSQL_TYPE_LONGLONG
				0x01, 0x02, // 2 of 8 bytes
			},
			numParams: 1,
			err:       true,
		},
		{
			name: "bad datetime length",
			p: []byte{
				0x17,                   // COM_STMT_EXECUTE
				0x01, 0x00, 0x00, 0x00, // statement id
				0x00,                   // flags
				0x01, 0x00, 0x00, 0x00, // iterations
				0x00,       // NULL bitmap
				0x01,       // new params bound
				0x0a, 0x00, // MYSQL_TYPE_DATE
				0x05, 1, 2, 3, 4, 5, // length 5 is not a valid date length
			},
			numParams: 1,
			err:       true,
		},
		{
			name:      "header too short",
			p:         []byte{0x17, 0x01, 0x00},
			numParams: 0,
			err:       true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ld func(int) (Param, bool)
			if tc.longData != nil {
				ld = func(i int) (Param, bool) { p, ok := tc.longData[i]; return p, ok }
			}
			ex, got, err := ParseExecute(tc.p, tc.numParams, tc.prevTypes, ld)
			if tc.err {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ex.Iterations != 1 || ex.StmtID == 0 {
				t.Errorf("header %+v", ex)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("params\n got %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

// TestParseExecuteMaxParams: 65,535 parameters (an 8,192-byte NULL bitmap),
// alternately NULL and the empty string, and strings whose length takes
// the 0xfc and 0xfd forms.
func TestParseExecuteMaxParams(t *testing.T) {
	const n = 65535
	p := []byte{
		0x17,                   // COM_STMT_EXECUTE
		0x01, 0x00, 0x00, 0x00, // statement id 1
		0x00,                   // flags
		0x01, 0x00, 0x00, 0x00, // iterations
	}
	bitmap := make([]byte, (n+7)/8)
	for i := 0; i < n; i += 2 {
		bitmap[i/8] |= 1 << (i % 8) // even parameters are NULL
	}
	p = append(p, bitmap...)
	p = append(p, 0x01) // new params bound
	for i := 0; i < n; i++ {
		p = append(p, 0xfd, 0x00) // MYSQL_TYPE_VAR_STRING
	}
	for i := 1; i < n; i += 2 {
		switch i {
		case 1:
			p = append(p, 0xfc, 0x2c, 0x01) // 300 bytes, 0xfc form
			p = append(p, bytes.Repeat([]byte("x"), 300)...)
		case 3:
			p = append(p, 0xfd, 0x00, 0x00, 0x01) // 65,536 bytes, 0xfd form
			p = append(p, bytes.Repeat([]byte("y"), 1<<16)...)
		default:
			p = append(p, 0x00) // the empty string
		}
	}
	_, got, err := ParseExecute(p, n, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d params", len(got))
	}
	for i, q := range got {
		var want any
		switch {
		case i%2 == 0:
			want = nil
		case i == 1:
			want = strings.Repeat("x", 300)
		case i == 3:
			want = strings.Repeat("y", MaxParamBytes)
		default:
			want = ""
		}
		if q.Value != want || q.Type != "VARCHAR" {
			t.Fatalf("param %d = %+v", i, q)
		}
	}
	if !got[3].Truncated || got[3].Size != 1<<16 {
		t.Fatalf("0xfd-length param: %+v", got[3])
	}
	if _, _, err := ParseExecute(p[:len(p)-1], n, nil, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("one byte short: %v", err)
	}
}

// FuzzParseExecute: arbitrary EXECUTE packets never panic; decoded string
// values respect the audit limit; the types returned are the bound ones.
func FuzzParseExecute(f *testing.F) {
	f.Add([]byte{0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0x10, 0x01, 0x01, 0x00, 0x02, 0x80, 0x03, 0x00, 0x08, 0x00, 0xfd, 0x00,
		0xff, 0xff, 0xff, 0x2a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80}, uint16(5), []byte(nil))
	f.Add([]byte{0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0x00, 0x00, 0x05, 0, 0, 0}, uint16(1), []byte{0x03, 0x00})
	f.Add([]byte{0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0x00, 0x01, 0x0c, 0x00, 0x0b, 0xe8, 0x07, 2, 29, 23, 59, 58, 0x40, 0xe2, 1, 0}, uint16(1), []byte(nil))
	f.Add([]byte{0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0x00, 0x01, 0x0b, 0x00, 0x0c, 1, 1, 0, 0, 0, 2, 3, 4, 0x40, 0xe2, 1, 0}, uint16(1), []byte(nil))
	f.Add([]byte{0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0x00, 0x01, 0xfe, 0x00, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, uint16(1), []byte(nil))
	// String values whose length takes the 0xfc and 0xfd forms.
	f.Add(append([]byte{0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0x00, 0x01, 0xfd, 0x00, 0xfc, 0xfb, 0x00}, bytes.Repeat([]byte("a"), 251)...), uint16(1), []byte(nil))
	f.Add(append([]byte{0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0x00, 0x01, 0xfc, 0x00, 0xfd, 0x00, 0x00, 0x01}, bytes.Repeat([]byte("b"), 1<<16)...), uint16(1), []byte(nil))
	f.Add([]byte{0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0x00, 0x01, 0xfd, 0x00, 0xfc, 0xff}, uint16(1), []byte(nil))
	f.Fuzz(func(t *testing.T, p []byte, numParams uint16, prev []byte) {
		n := int(numParams)
		ex, params, err := ParseExecute(p, n, prev, func(i int) (Param, bool) { return Param{Value: "ld"}, i == 1 })
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if n > 0 && (len(params) != n || len(ex.Types) != 2*n) {
			t.Fatalf("%d params, %d type bytes for %d parameters", len(params), len(ex.Types), n)
		}
		for _, q := range params {
			if s, ok := q.Value.(string); ok && len(s) > MaxParamBytes {
				t.Fatalf("value of %d bytes kept", len(s))
			}
			if q.Truncated && q.Size <= MaxParamBytes {
				t.Fatalf("truncated with size %d", q.Size)
			}
		}
		if nb := (n + 7) / 8; n > 0 && p[10+nb] == 1 && !bytes.Equal(ex.Types, p[11+nb:11+nb+2*n]) {
			// Types were bound in this packet: they are what it says.
			t.Fatalf("types % x not from the packet", ex.Types)
		}
	})
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
