package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestLenEncInt(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		v    uint64
		null bool
		n    int
		ok   bool
	}{
		{"1 byte", []byte{0xfa}, 250, false, 1, true},
		{"NULL", []byte{0xfb}, 0, true, 1, true},
		{"2 bytes", []byte{0xfc, 0x34, 0x12}, 0x1234, false, 3, true},
		{"3 bytes", []byte{0xfd, 0x56, 0x34, 0x12}, 0x123456, false, 4, true},
		{"8 bytes", []byte{0xfe, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01}, 0x0102030405060708, false, 9, true},
		{"0xff is no integer (an ERR header)", []byte{0xff}, 0, false, 0, false},
		{"empty", nil, 0, false, 0, false},
		{"2-byte prefix cut short", []byte{0xfc, 0x01}, 0, false, 0, false},
		{"8-byte prefix cut short", []byte{0xfe, 1, 2, 3}, 0, false, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, null, n, ok := LenEncInt(tc.b)
			if v != tc.v || null != tc.null || n != tc.n || ok != tc.ok {
				t.Fatalf("got %d %v %d %v", v, null, n, ok)
			}
		})
	}
}

func TestLenEncString(t *testing.T) {
	s, null, n, ok := LenEncString([]byte{0x03, 'a', 'b', 'c', 'x'}) // "abc" then a trailing byte
	if string(s) != "abc" || null || n != 4 || !ok {
		t.Fatalf("got %q %v %d %v", s, null, n, ok)
	}
	if _, _, _, ok := LenEncString([]byte{0x05, 'a'}); ok { // length 5, 1 byte present
		t.Fatal("accepted a string longer than its packet")
	}
	if _, null, _, ok := LenEncString([]byte{0xfb}); !null || !ok { // NULL
		t.Fatal("NULL not reported")
	}
	if _, _, _, ok := LenEncString([]byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}); ok { // 2^64-1 bytes
		t.Fatal("accepted a huge length")
	}
}

func TestParseOK(t *testing.T) {
	ok, err := ParseOK([]byte{
		0x00,             // OK
		0xfc, 0x10, 0x27, // affected rows 10000
		0x05,       // last insert id 5
		0x02, 0x00, // status AUTOCOMMIT
		0x01, 0x00, // 1 warning
		'i', 'n', 'f', 'o', // info, ignored
	})
	if err != nil || ok.AffectedRows != 10000 || ok.InsertID != 5 || ok.Status != 2 || ok.Warnings != 1 {
		t.Fatalf("%+v %v", ok, err)
	}
	for _, bad := range [][]byte{
		{},                 // empty
		{0x00, 0xfc, 0x10}, // affected rows cut short
		{0x00, 0x01, 0x00}, // no status
		{0x00, 0xff},       // 0xff is not a length
	} {
		if _, err := ParseOK(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseOK(% x) = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestParseErr(t *testing.T) {
	tests := []struct {
		name  string
		p     []byte
		code  uint16
		state string
		msg   string
		bad   bool
	}{
		{"protocol 41", []byte{
			0xff,       // ERR
			0x15, 0x04, // code 1045
			'#', '2', '8', '0', '0', '0', // SQL state marker and state
			'd', 'e', 'n', 'i', 'e', 'd', // message
		}, 1045, "28000", "denied", false},
		{"no SQL state (during handshake)", []byte{
			0xff,       // ERR
			0x10, 0x04, // code 1040
			'b', 'u', 's', 'y', // message
		}, 1040, "", "busy", false},
		{"code only", []byte{0xff, 0x01, 0x00}, 1, "", "", false},
		{"cut short", []byte{0xff, 0x01}, 0, "", "", true},
		{"not an ERR", []byte{0x00, 0x01, 0x00}, 0, "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseErr(tc.p)
			if tc.bad {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || e.Code != tc.code || e.State != tc.state || e.Message != tc.msg {
				t.Fatalf("%+v %v", e, err)
			}
		})
	}
	// What the proxy sends parses back.
	e, err := ParseErr(ErrPacket(ErrCodeBlocked, "", "sqlwarden: blocked"))
	if err != nil || e.Code != ErrCodeBlocked || e.State != "HY000" || e.Message != "sqlwarden: blocked" {
		t.Fatalf("%+v %v", e, err)
	}
}

func TestColumnName(t *testing.T) {
	name, err := ColumnName(pktColID)
	if err != nil || string(name) != "id" {
		t.Fatalf("%q %v", name, err)
	}
	if _, err := ColumnName(pktColID[:12]); !errors.Is(err, ErrMalformed) { // cut inside the name
		t.Fatalf("err = %v", err)
	}
}

func TestEOF(t *testing.T) {
	if st, ok := ParseEOF(pktEOFMore); !ok || st != 0x0a {
		t.Fatalf("%x %v", st, ok)
	}
	// A row whose first value is 250+ bytes long starts with 0xfc, not
	// 0xfe; but one starting with an 8-byte length is 0xfe and >= 9 bytes.
	row := append([]byte{0xfe, 0, 0, 0, 0, 0, 0, 0, 0}, 'x')
	if IsEOF(row) {
		t.Fatal("long row taken for EOF")
	}
}

// FuzzLenEnc: decoding arbitrary bytes never reads past them, and integers
// round-trip through AppendLenEncInt.
func FuzzLenEnc(f *testing.F) {
	f.Add([]byte{0xfc, 0x34, 0x12}, uint64(0))
	f.Add([]byte{0xfe, 1, 2, 3, 4, 5, 6, 7, 8}, uint64(1<<63))
	f.Add([]byte{0xfb}, uint64(250))
	f.Add([]byte{0x03, 'a', 'b', 'c'}, uint64(251))
	f.Add([]byte{0xfd, 0xff, 0xff}, uint64(1<<24))
	f.Fuzz(func(t *testing.T, b []byte, v uint64) {
		if x, null, n, ok := LenEncInt(b); ok {
			if n > len(b) || n == 0 || (null && x != 0) {
				t.Fatalf("LenEncInt(% x) = %d %v %d", b, x, null, n)
			}
		}
		if s, _, n, ok := LenEncString(b); ok {
			if n > len(b) || !bytes.Equal(s, b[n-len(s):n]) {
				t.Fatalf("LenEncString(% x) = %q %d", b, s, n)
			}
		}
		// The inlined one-byte forms decode as the general path does.
		x1, null1, n1, ok1 := LenEncInt(b)
		x2, null2, n2, ok2 := lenEncIntLong(b)
		if ok1 != ok2 || (ok1 && (x1 != x2 || null1 != null2 || n1 != n2)) {
			t.Fatalf("LenEncInt(% x) = %d %v %d %v, general path %d %v %d %v", b, x1, null1, n1, ok1, x2, null2, n2, ok2)
		}
		s1, snull1, sn1, sok1 := LenEncString(b)
		s2, snull2, sn2, sok2 := lenEncStringLong(b)
		if sok1 != sok2 || (sok1 && (!bytes.Equal(s1, s2) || snull1 != snull2 || sn1 != sn2)) {
			t.Fatalf("LenEncString(% x) = %q %d %v, general path %q %d %v", b, s1, sn1, sok1, s2, sn2, sok2)
		}
		enc := AppendLenEncInt(nil, v)
		got, null, n, ok := LenEncInt(enc)
		if !ok || null || got != v || n != len(enc) {
			t.Fatalf("round trip of %d: % x → %d %v %d %v", v, enc, got, null, n, ok)
		}
		str := AppendLenEncString(nil, b)
		s, _, n, ok := LenEncString(str)
		if !ok || !bytes.Equal(s, b) || n != len(str) {
			t.Fatalf("string round trip of % x", b)
		}
	})
}

// FuzzParseOK, FuzzParseErr and FuzzColumnName: no panic on any input, and
// only ErrMalformed as an error.
func FuzzParseOK(f *testing.F) {
	f.Add([]byte{0x00, 0xfc, 0x10, 0x27, 0x05, 0x02, 0x00, 0x01, 0x00})
	f.Add([]byte{0x00, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 0x00, 0x02, 0x00, 0x00, 0x00})
	f.Add([]byte{0x00})
	f.Add([]byte{EOFHeader, 1, 0, 2, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		ok, err := ParseOK(p)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
		// ClearWarnings changes at most the warning count, of an OK or EOF.
		c := append([]byte(nil), p...)
		ClearWarnings(c)
		if IsEOF(p) {
			if len(p) >= 3 && (c[1] != 0 || c[2] != 0 || !bytes.Equal(c[3:], p[3:]) || c[0] != p[0]) {
				t.Fatalf("EOF % x became % x", p, c)
			}
			return
		}
		if err == nil && p[0] == OKHeader {
			after, err := ParseOK(c)
			ok.Warnings = 0
			if err != nil || after != ok {
				t.Fatalf("OK %+v became %+v (%v)", ok, after, err)
			}
		}
		if len(c) != len(p) {
			t.Fatalf("length changed: % x → % x", p, c)
		}
	})
}

func FuzzParseErr(f *testing.F) {
	f.Add([]byte{0xff, 0x15, 0x04, '#', '2', '8', '0', '0', '0', 'x'})
	f.Add([]byte{0xff, 0x10, 0x04, '#'})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		e, err := ParseErr(p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			return
		}
		if len(e.State) != 0 && len(e.State) != 5 {
			t.Fatalf("state %q", e.State)
		}
	})
}

func FuzzColumnName(f *testing.F) {
	f.Add(append([]byte(nil), pktColID...))
	f.Add([]byte{0x03, 'd', 'e', 'f', 0x00, 0x00, 0x00, 0xfc, 0x01})
	f.Add([]byte{0xfb, 0xfb, 0xfb, 0xfb, 0xfb})
	f.Fuzz(func(t *testing.T, def []byte) {
		name, err := ColumnName(def)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			return
		}
		if len(name) > len(def) {
			t.Fatalf("name of %d bytes from %d", len(name), len(def))
		}
	})
}

func TestSetOKStatus(t *testing.T) {
	ok := OKPacket(300, 70000, 0x0003, 2) // affected and insert id take multi-byte lenenc ints
	if !SetOKStatus(ok, 0x0002) {
		t.Fatal("SetOKStatus refused a well-formed OK")
	}
	got, err := ParseOK(ok)
	if err != nil || got.Status != 0x0002 || got.AffectedRows != 300 || got.InsertID != 70000 || got.Warnings != 2 {
		t.Fatalf("after SetOKStatus: %+v %v", got, err)
	}
	for _, bad := range [][]byte{nil, {ErrHeader, 1, 2}, {OKHeader, 0xfc, 1}, {OKHeader, 0, 0, 2}} {
		if SetOKStatus(bad, 1) {
			t.Errorf("SetOKStatus(% x) = true", bad)
		}
	}
}

func TestClearWarnings(t *testing.T) {
	ok := OKPacket(300, 70000, 0x0003, 2)
	eofOK := append([]byte{EOFHeader}, ok[1:]...) // how a result ends under CLIENT_DEPRECATE_EOF
	eof := []byte{EOFHeader, 5, 0, 0x22, 0}
	for name, p := range map[string][]byte{"OK": ok, "EOF-as-OK": eofOK, "EOF": eof} {
		if !ClearWarnings(p) {
			t.Errorf("%s: ClearWarnings saw no warnings", name)
		}
		if ClearWarnings(p) {
			t.Errorf("%s: warnings left after ClearWarnings", name)
		}
	}
	if got, err := ParseOK(ok); err != nil || got.Warnings != 0 || got.Status != 0x0003 || got.AffectedRows != 300 || got.InsertID != 70000 {
		t.Fatalf("OK after ClearWarnings: %+v %v", got, err)
	}
	if st, _ := ParseEOF(eof); st != 0x0022 {
		t.Fatalf("EOF status after ClearWarnings: %#x", st)
	}
	for _, bad := range [][]byte{nil, {ErrHeader, 1, 2}, {OKHeader, 0xfc, 1}, {OKHeader, 0, 0, 2}, {0x03, 'x', 0, 0, 0, 1}} {
		c := append([]byte(nil), bad...)
		if ClearWarnings(c) || !bytes.Equal(c, bad) {
			t.Errorf("ClearWarnings(% x) changed or claimed it", bad)
		}
	}
}

func TestPrepareOK(t *testing.T) {
	want := PrepareOK{StmtID: 0x01020304, NumCols: 300, NumParams: 2, Warnings: 1}
	got, err := ParsePrepareOK(PrepareOKPacket(want))
	if err != nil || got != want {
		t.Fatalf("ParsePrepareOK(PrepareOKPacket(%+v)) = %+v, %v", want, got, err)
	}
	for _, bad := range [][]byte{nil, {OKHeader, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0}, {ErrHeader, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}} {
		if _, err := ParsePrepareOK(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParsePrepareOK(% x): %v", bad, err)
		}
	}
}

// FuzzParsePrepareOK: what decodes re-encodes to the same first 12 bytes.
func FuzzParsePrepareOK(f *testing.F) {
	f.Add(PrepareOKPacket(PrepareOK{StmtID: 1, NumCols: 2, NumParams: 3}))
	f.Add([]byte{OKHeader, 1})
	f.Fuzz(func(t *testing.T, p []byte) {
		ok, err := ParsePrepareOK(p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			return
		}
		enc := PrepareOKPacket(ok)
		enc[9] = p[9] // the filler is not kept
		if !bytes.Equal(enc, p[:12]) {
			t.Fatalf("% x re-encodes to % x", p[:12], enc)
		}
	})
}

func TestLenEncIntSize(t *testing.T) {
	for _, v := range []uint64{0, 250, 251, 0xffff, 0x10000, 0xffffff, 0x1000000, 1 << 63} {
		if got, want := LenEncIntSize(v), len(AppendLenEncInt(nil, v)); got != want {
			t.Errorf("LenEncIntSize(%d) = %d, AppendLenEncInt writes %d", v, got, want)
		}
	}
}
