package wire

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// Reply packets used below, annotated once.
var (
	pktOK = []byte{
		0x00,       // OK
		0x02,       // affected rows 2
		0x07,       // last insert id 7
		0x02, 0x00, // status: AUTOCOMMIT
		0x00, 0x00, // warnings
	}
	pktOKMore = []byte{
		0x00,       // OK
		0x01,       // affected rows 1
		0x00,       // last insert id
		0x0a, 0x00, // status: AUTOCOMMIT|MORE_RESULTS_EXISTS
		0x00, 0x00, // warnings
	}
	pktErr = []byte{
		0xff,       // ERR
		0x7a, 0x04, // error code 1146
		'#', '4', '2', 'S', '0', '2', // SQL state
		'n', 'o', ' ', 't', 'a', 'b', 'l', 'e', // message
	}
	pktEOF = []byte{
		0xfe,       // EOF
		0x00, 0x00, // warnings
		0x02, 0x00, // status: AUTOCOMMIT
	}
	pktEOFMore = []byte{
		0xfe,       // EOF
		0x00, 0x00, // warnings
		0x0a, 0x00, // status: AUTOCOMMIT|MORE_RESULTS_EXISTS
	}
	pktEOFCursor = []byte{
		0xfe,       // EOF
		0x00, 0x00, // warnings
		0x42, 0x00, // status: AUTOCOMMIT|CURSOR_EXISTS
	}
	pktCount1 = []byte{0x01} // column count 1
	pktColID  = []byte{
		0x03, 'd', 'e', 'f', // catalog
		0x02, 'd', 'b', // schema
		0x01, 't', // table
		0x01, 't', // org_table
		0x02, 'i', 'd', // name
		0x02, 'i', 'd', // org_name
		0x0c,       // length of fixed fields
		0x3f, 0x00, // charset binary
		0x0b, 0x00, 0x00, 0x00, // column length
		0x03,       // MYSQL_TYPE_LONG
		0x00, 0x00, // flags
		0x00,       // decimals
		0x00, 0x00, // filler
	}
	pktTextRow   = []byte{0x01, '1'}                          // one lenenc text value "1"
	pktBinRow    = []byte{0x00, 0x00, 0x01, 0x00, 0x00, 0x00} // binary row: header, NULL bitmap, LONG 1
	pktPrepareOK = []byte{
		0x00,                   // OK
		0x05, 0x00, 0x00, 0x00, // statement id 5
		0x01, 0x00, // 1 column
		0x02, 0x00, // 2 parameters
		0x00,       // filler
		0x00, 0x00, // warnings
	}
	pktParamDef = []byte{0x03, 'd', 'e', 'f', 0x00, 0x00, 0x00, 0x01, '?', 0x00, 0x0c, 0x3f, 0x00, 0, 0, 0, 0, 0xfd, 0, 0, 0, 0, 0}
	pktInfile   = append([]byte{0xfb}, "/tmp/rows.csv"...) // LOCAL INFILE request
)

func TestTracker(t *testing.T) {
	tests := []struct {
		name    string
		kind    ReplyKind
		binary  bool
		packets [][]byte
		kinds   []PacketKind
		check   func(t *testing.T, tr *Tracker)
		err     bool // the last packet is rejected
	}{
		{name: "OK", kind: ReplyResult, packets: [][]byte{pktOK}, kinds: []PacketKind{PktOK},
			check: func(t *testing.T, tr *Tracker) {
				if tr.Affected != 2 || tr.InsertID != 7 {
					t.Errorf("affected %d insert id %d", tr.Affected, tr.InsertID)
				}
			}},
		{name: "ERR", kind: ReplyResult, packets: [][]byte{pktErr}, kinds: []PacketKind{PktErr},
			check: func(t *testing.T, tr *Tracker) {
				if tr.Err == nil || tr.Err.Code != 1146 || tr.Err.State != "42S02" || tr.Err.Message != "no table" {
					t.Errorf("err %+v", tr.Err)
				}
			}},
		{name: "text result set", kind: ReplyResult, packets: [][]byte{pktCount1, pktColID, pktEOF, pktTextRow, pktTextRow, pktEOF},
			kinds: []PacketKind{PktColumnCount, PktColumnDef, PktEOF, PktRow, PktRow, PktEOF},
			check: func(t *testing.T, tr *Tracker) {
				if tr.Rows != 2 || !reflect.DeepEqual(tr.Columns, []string{"id"}) || tr.ResultSets != 1 {
					t.Errorf("rows %d columns %v sets %d", tr.Rows, tr.Columns, tr.ResultSets)
				}
			}},
		{name: "multi-results: result set, OK, result set (CALL)", kind: ReplyResult,
			packets: [][]byte{pktCount1, pktColID, pktEOF, pktTextRow, pktEOFMore, pktOKMore, pktCount1, pktColID, pktEOF, pktEOF},
			kinds:   []PacketKind{PktColumnCount, PktColumnDef, PktEOF, PktRow, PktEOF, PktOK, PktColumnCount, PktColumnDef, PktEOF, PktEOF},
			check: func(t *testing.T, tr *Tracker) {
				if tr.ResultSets != 2 || tr.Rows != 1 || tr.Affected != 1 || len(tr.Columns) != 1 {
					t.Errorf("sets %d rows %d affected %d columns %v", tr.ResultSets, tr.Rows, tr.Affected, tr.Columns)
				}
			}},
		{name: "error in the middle of rows", kind: ReplyResult, packets: [][]byte{pktCount1, pktColID, pktEOF, pktTextRow, pktErr},
			kinds: []PacketKind{PktColumnCount, PktColumnDef, PktEOF, PktRow, PktErr}},
		{name: "binary rows", kind: ReplyResult, binary: true, packets: [][]byte{pktCount1, pktColID, pktEOF, pktBinRow, pktEOF},
			kinds: []PacketKind{PktColumnCount, PktColumnDef, PktEOF, PktRow, PktEOF}},
		{name: "binary row without its 0x00 header", kind: ReplyResult, binary: true, packets: [][]byte{pktCount1, pktColID, pktEOF, pktTextRow},
			kinds: []PacketKind{PktColumnCount, PktColumnDef, PktEOF}, err: true},
		{name: "cursor opened: no rows until FETCH", kind: ReplyResult, binary: true, packets: [][]byte{pktCount1, pktColID, pktEOFCursor},
			kinds: []PacketKind{PktColumnCount, PktColumnDef, PktEOF},
			check: func(t *testing.T, tr *Tracker) {
				if !tr.CursorOpen {
					t.Error("cursor not noticed")
				}
			}},
		{name: "prepare with params and columns", kind: ReplyPrepare,
			packets: [][]byte{pktPrepareOK, pktParamDef, pktParamDef, pktEOF, pktColID, pktEOF},
			kinds:   []PacketKind{PktPrepareOK, PktParamDef, PktParamDef, PktEOF, PktColumnDef, PktEOF},
			check: func(t *testing.T, tr *Tracker) {
				if tr.StmtID != 5 || tr.NumParams != 2 || tr.NumCols != 1 {
					t.Errorf("stmt %d params %d cols %d", tr.StmtID, tr.NumParams, tr.NumCols)
				}
			}},
		{name: "prepare without params or columns", kind: ReplyPrepare,
			packets: [][]byte{{0x00, 0x09, 0, 0, 0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}}, kinds: []PacketKind{PktPrepareOK}},
		{name: "prepare error", kind: ReplyPrepare, packets: [][]byte{pktErr}, kinds: []PacketKind{PktErr}},
		{name: "COM_SET_OPTION answers with a bare EOF", kind: ReplyResult, packets: [][]byte{pktEOF}, kinds: []PacketKind{PktEOF}},
		{name: "COM_FIELD_LIST", kind: ReplyFieldList, packets: [][]byte{pktColID, pktColID, pktEOF},
			kinds: []PacketKind{PktColumnDef, PktColumnDef, PktEOF}},
		{name: "COM_STATISTICS", kind: ReplyRaw, packets: [][]byte{[]byte("Uptime: 5  Threads: 1")}, kinds: []PacketKind{PktRaw}},
		{name: "COM_STATISTICS refused", kind: ReplyRaw, packets: [][]byte{pktErr}, kinds: []PacketKind{PktErr},
			check: func(t *testing.T, tr *Tracker) {
				if tr.Err == nil || tr.Err.Code != 1146 {
					t.Errorf("err %+v", tr.Err)
				}
			}},
		{name: "LOCAL INFILE request", kind: ReplyResult, packets: [][]byte{pktInfile}, kinds: []PacketKind{PktLocalInfile}},
		{name: "empty packet", kind: ReplyResult, packets: [][]byte{{}}, err: true},
		{name: "column count 0", kind: ReplyResult, packets: [][]byte{{0x00 + 0x00}}, err: true},
		{name: "missing EOF after columns", kind: ReplyResult, packets: [][]byte{pktCount1, pktColID, pktTextRow},
			kinds: []PacketKind{PktColumnCount, PktColumnDef}, err: true},
		{name: "packet after the end", kind: ReplyResult, packets: [][]byte{pktOK, pktOK}, kinds: []PacketKind{PktOK}, err: true},
		{name: "short prepare OK", kind: ReplyPrepare, packets: [][]byte{{0x00, 0x01, 0x00}}, err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tr Tracker
			tr.Start(tc.kind, tc.binary)
			var kinds []PacketKind
			for i, p := range tc.packets {
				k, err := tr.Feed(p)
				if err != nil {
					if tc.err && i == len(tc.packets)-1 {
						if !errors.Is(err, ErrMalformed) {
							t.Fatalf("err = %v, want ErrMalformed", err)
						}
						if !reflect.DeepEqual(kinds, tc.kinds) {
							t.Fatalf("kinds %v, want %v", kinds, tc.kinds)
						}
						return
					}
					t.Fatalf("packet %d: %v", i, err)
				}
				kinds = append(kinds, k)
			}
			if tc.err {
				t.Fatal("last packet accepted")
			}
			if !reflect.DeepEqual(kinds, tc.kinds) {
				t.Fatalf("kinds %v, want %v", kinds, tc.kinds)
			}
			if tc.kind != ReplyResult || kinds[len(kinds)-1] != PktLocalInfile {
				if !tr.Done() {
					t.Fatal("reply not done")
				}
			}
			if tc.check != nil {
				tc.check(t, &tr)
			}
		})
	}
}

// wideReply builds a text result set of n columns named c0..: the column
// count, n definitions, EOF, one row of n empty strings, EOF.
func wideReply(count []byte, n int) [][]byte {
	ps := [][]byte{count}
	for i := 0; i < n; i++ {
		ps = append(ps, pktColID)
	}
	return append(ps, pktEOF, make([]byte, n), pktEOF)
}

// TestTrackerWide: column counts in each length-encoded form, the ones a
// server sends from 251 columns on among them.
func TestTrackerWide(t *testing.T) {
	tests := []struct {
		name  string
		count []byte
		n     int
	}{
		{"250, one byte", []byte{0xfa}, 250},
		{"251, 0xfc form", []byte{0xfc, 0xfb, 0x00}, 251},
		{"300, 0xfc form", []byte{0xfc, 0x2c, 0x01}, 300},
		{"4097, 0xfc form", []byte{0xfc, 0x01, 0x10}, 4097},
		{"65535, 0xfc form", []byte{0xfc, 0xff, 0xff}, 65535},
		{"65536, 0xfd form", []byte{0xfd, 0x00, 0x00, 0x01}, 65536},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tr Tracker
			tr.Start(ReplyResult, false)
			ps := wideReply(tc.count, tc.n)
			for i, p := range ps {
				k, err := tr.Feed(p)
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				want := PktColumnDef
				switch {
				case i == 0:
					want = PktColumnCount
				case i == tc.n+1 || i == tc.n+3:
					want = PktEOF
				case i == tc.n+2:
					want = PktRow
				}
				if k != want {
					t.Fatalf("packet %d is %v, want %v", i, k, want)
				}
			}
			if !tr.Done() || tr.Cols() != tc.n || tr.Rows != 1 || len(tr.Columns) != min(tc.n, 512) {
				t.Fatalf("done %v cols %d rows %d names %d", tr.Done(), tr.Cols(), tr.Rows, len(tr.Columns))
			}
		})
	}
	// The 0xfe form is nine bytes; a shorter 0xfe packet is an EOF.
	var tr Tracker
	tr.Start(ReplyResult, false)
	if k, err := tr.Feed([]byte{0xfe, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00}); err != nil || k != PktColumnCount || tr.Cols() != 1<<24 {
		t.Fatalf("0xfe column count: %v %v cols %d", k, err, tr.Cols())
	}
	for _, bad := range [][]byte{
		{0xfc, 0x2c},                   // truncated 0xfc form
		{0xfd, 0x00, 0x00},             // truncated 0xfd form
		{0xfe, 0, 0, 0, 0, 1, 0, 0, 0}, // 2^32 columns
	} {
		tr.Start(ReplyResult, false)
		if _, err := tr.Feed(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("column count % x: err %v, want ErrMalformed", bad, err)
		}
	}
}

func TestTrackerLocalInfileResumes(t *testing.T) {
	var tr Tracker
	tr.Start(ReplyResult, false)
	if k, err := tr.Feed(pktInfile); err != nil || k != PktLocalInfile {
		t.Fatalf("%v %v", k, err)
	}
	tr.ResumeAfterInfile()
	if k, err := tr.Feed(pktOK); err != nil || k != PktOK || !tr.Done() || tr.Affected != 2 {
		t.Fatalf("%v %v done=%v", k, err, tr.Done())
	}
}

func TestTrackerFetch(t *testing.T) {
	var tr Tracker
	tr.StartFetch(1)
	for _, p := range [][]byte{pktBinRow, pktBinRow, pktEOF} {
		if _, err := tr.Feed(p); err != nil {
			t.Fatal(err)
		}
	}
	if !tr.Done() || tr.Rows != 2 {
		t.Fatalf("done %v rows %d", tr.Done(), tr.Rows)
	}
}

// FuzzTracker feeds arbitrary packet sequences (each packet prefixed by a
// one-byte length) for each reply kind: no panic, and no packet is accepted
// after the reply is done.
func FuzzTracker(f *testing.F) {
	seq := func(kind byte, ps ...[]byte) []byte {
		b := []byte{kind}
		for _, p := range ps {
			b = append(b, byte(len(p)))
			b = append(b, p...)
		}
		return b
	}
	f.Add(seq(0, pktCount1, pktColID, pktEOF, pktTextRow, pktEOFMore, pktOKMore, pktCount1, pktColID, pktEOF, pktEOF))
	f.Add(seq(1, pktPrepareOK, pktParamDef, pktParamDef, pktEOF, pktColID, pktEOF))
	f.Add(seq(2, pktColID, pktEOF))
	f.Add(seq(3, []byte("Uptime: 1")))
	f.Add(seq(0x10, pktCount1, pktColID, pktEOFCursor))
	f.Add(seq(0, pktInfile, pktOK))
	f.Add(seq(0, pktEOF))
	// Column counts in the 0xfc, 0xfd and 0xfe forms.
	f.Add(seq(0, []byte{0xfc, 0x01, 0x01}, pktColID, pktColID, pktEOF))
	f.Add(seq(0, []byte{0xfc, 0xfb, 0x00}, pktColID, pktEOF, pktTextRow, pktEOF))
	f.Add(seq(0x10, []byte{0xfd, 0x00, 0x00, 0x01}, pktColID, pktEOF, pktBinRow))
	f.Add(seq(0, []byte{0xfe, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00}, pktColID))
	f.Add(seq(0, []byte{0xfc, 0xff}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		var tr Tracker
		tr.Start(ReplyKind(b[0]%4), b[0]&0x10 != 0)
		b = b[1:]
		for len(b) > 0 {
			n := int(b[0])
			b = b[1:]
			if n > len(b) {
				n = len(b)
			}
			p := b[:n]
			b = b[n:]
			done := tr.Done()
			k, err := tr.Feed(p)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v is not ErrMalformed", err)
				}
				return
			}
			if done {
				t.Fatalf("packet accepted after the end of the reply")
			}
			if k == PktLocalInfile {
				tr.ResumeAfterInfile()
			}
			if tr.Rows > 1<<20 || len(tr.Columns) > 512 {
				t.Fatalf("unbounded growth: %d rows %d columns", tr.Rows, len(tr.Columns))
			}
		}
	})
}

// TestTrackerColumnNamesReused: the same result set again names its
// columns without allocating, and different names are not mixed up.
func TestTrackerColumnNamesReused(t *testing.T) {
	col := func(name string) []byte {
		var b []byte
		for _, s := range []string{"def", "shop", "users", "users", name, name} {
			b = AppendLenEncString(b, []byte(s))
		}
		return append(b, 0x0c, 45, 0, 0, 1, 0, 0, 253, 0, 0, 0, 0, 0)
	}
	reply := func(names ...string) [][]byte {
		p := [][]byte{{byte(len(names))}}
		for _, n := range names {
			p = append(p, col(n))
		}
		return append(p, EOFPacket(0, 2), EOFPacket(0, 2))
	}
	var tr Tracker
	feed := func(pkts [][]byte) {
		tr.Start(ReplyResult, false)
		for _, p := range pkts {
			if _, err := tr.Feed(p); err != nil {
				t.Fatal(err)
			}
		}
		if !tr.Done() {
			t.Fatal("reply not done")
		}
	}
	a, b := reply("id", "email"), reply("id", "name", "email")
	feed(a)
	if n := testing.AllocsPerRun(50, func() { feed(a) }); n != 0 {
		t.Errorf("%v allocations for the same columns again", n)
	}
	feed(b)
	if got := strings.Join(tr.Columns, ","); got != "id,name,email" {
		t.Fatalf("columns %s", got)
	}
	feed(a)
	if got := strings.Join(tr.Columns, ","); got != "id,email" {
		t.Fatalf("columns %s", got)
	}
}
