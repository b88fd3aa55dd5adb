package wire

import (
	"fmt"
	"math"

	gm "github.com/go-mysql-org/go-mysql/mysql"
)

// ReplyKind says what shape of reply a command gets.
type ReplyKind uint8

const (
	ReplyResult    ReplyKind = iota // OK, ERR or result sets (COM_QUERY, COM_STMT_EXECUTE, COM_STMT_FETCH, ...)
	ReplyPrepare                    // COM_STMT_PREPARE
	ReplyFieldList                  // COM_FIELD_LIST: column definitions until EOF
	ReplyRaw                        // one packet with no header byte (COM_STATISTICS)
	ReplyNone                       // no reply (COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA, COM_QUIT)
)

// PacketKind classifies one reply packet.
type PacketKind uint8

const (
	PktOK PacketKind = iota
	PktErr
	PktEOF
	PktColumnCount
	PktColumnDef
	PktParamDef
	PktRow
	PktLocalInfile
	PktPrepareOK
	PktRaw
)

type replyState uint8

const (
	stFirst replyState = iota
	stParams
	stParamsEOF
	stColumns
	stColumnsEOF
	stRows
	stDone
)

// Tracker follows a reply packet by packet, so the proxy can stream it while
// knowing where result sets start and end, and sums what the audit outcome
// needs. It never holds a row.
type Tracker struct {
	kind  ReplyKind
	state replyState
	left  uint64 // definitions left in the current block
	cols  uint64 // columns in the current result set
	// Binary is set when rows are binary-protocol (prepared statements).
	Binary bool

	// ResultSets counts result sets that started; Index is the current one.
	ResultSets int
	Rows       uint64
	Affected   uint64
	InsertID   uint64
	Status     uint16
	Err        *ServerError
	Columns    []string // names of the first result set's columns

	// For COM_STMT_PREPARE replies.
	StmtID    uint32
	NumParams uint16
	NumCols   uint16

	// CursorOpen reports a COM_STMT_EXECUTE that opened a cursor: its rows
	// come later, through COM_STMT_FETCH.
	CursorOpen bool
}

// Start resets t for a new reply.
func (t *Tracker) Start(kind ReplyKind, binary bool) {
	cols := t.Columns[:0]
	*t = Tracker{kind: kind, Binary: binary, Columns: cols}
	if kind == ReplyFieldList {
		t.state = stColumns
		t.left = ^uint64(0)
	}
}

// Done reports whether the reply is complete.
func (t *Tracker) Done() bool { return t.state == stDone || t.kind == ReplyNone }

// Feed classifies the next logical packet of the reply.
func (t *Tracker) Feed(p []byte) (PacketKind, error) {
	bad := func(what string) (PacketKind, error) {
		return 0, fmt.Errorf("parse reply: %w: %s", ErrMalformed, what)
	}
	if len(p) == 0 {
		return bad("empty packet")
	}
	switch t.state {
	case stDone:
		return bad("packet after end of reply")
	case stFirst:
		if t.kind == ReplyRaw {
			t.state = stDone
			if p[0] == ErrHeader { // the statistics text never starts with 0xff
				e, err := ParseErr(p)
				if err != nil {
					return 0, err
				}
				t.Err = e
				return PktErr, nil
			}
			return PktRaw, nil
		}
		switch p[0] {
		case OKHeader:
			if t.kind == ReplyPrepare {
				pok, err := ParsePrepareOK(p)
				if err != nil {
					return bad("prepare OK")
				}
				t.StmtID, t.NumCols, t.NumParams = pok.StmtID, pok.NumCols, pok.NumParams
				t.cols = uint64(t.NumCols)
				switch {
				case t.NumParams > 0:
					t.state, t.left = stParams, uint64(t.NumParams)
				case t.NumCols > 0:
					t.state, t.left = stColumns, uint64(t.NumCols)
				default:
					t.state = stDone
				}
				return PktPrepareOK, nil
			}
			ok, err := ParseOK(p)
			if err != nil {
				return 0, err
			}
			t.Affected += ok.AffectedRows
			t.InsertID = ok.InsertID
			t.Status = ok.Status
			t.endResult()
			return PktOK, nil
		case ErrHeader:
			e, err := ParseErr(p)
			if err != nil {
				return 0, err
			}
			t.Err = e
			t.state = stDone
			return PktErr, nil
		case LocalInfileHeader:
			// The client now sends the file, then the server replies OK/ERR:
			// the proxy handles that exchange and resumes with stFirst.
			return PktLocalInfile, nil
		case EOFHeader:
			// COM_SET_OPTION (and COM_DEBUG) answer with a bare EOF (under 9
			// bytes); a 9-byte packet is the 0xfe form of a column count.
			if status, ok := ParseEOF(p); ok {
				t.Status = status
				t.state = stDone
				return PktEOF, nil
			}
		}
		// The count is length-encoded: 0xfc and 0xfd forms from 251
		// columns on. A server sends more than 65,535 for a wide enough
		// select list (prepared statements stop there: their count is 16
		// bits); nothing here is sized by it, so only 0 and counts past 32
		// bits are refused.
		n, null, _, ok := LenEncInt(p)
		if !ok || null || n == 0 || n > math.MaxUint32 {
			return bad("column count")
		}
		t.ResultSets++
		t.cols, t.left = n, n
		t.state = stColumns
		return PktColumnCount, nil
	case stParams:
		t.left--
		if t.left == 0 {
			t.state = stParamsEOF
		}
		return PktParamDef, nil
	case stParamsEOF:
		if !IsEOF(p) {
			return bad("expected EOF after parameter definitions")
		}
		if t.NumCols > 0 {
			t.state, t.left = stColumns, uint64(t.NumCols)
		} else {
			t.state = stDone
		}
		return PktEOF, nil
	case stColumns:
		if t.kind == ReplyFieldList {
			if IsEOF(p) {
				t.state = stDone
				return PktEOF, nil
			}
			if p[0] == ErrHeader {
				e, err := ParseErr(p)
				if err != nil {
					return 0, err
				}
				t.Err, t.state = e, stDone
				return PktErr, nil
			}
			return PktColumnDef, nil
		}
		if t.ResultSets <= 1 && t.kind == ReplyResult && len(t.Columns) < 512 {
			if name, err := ColumnName(p); err == nil {
				t.Columns = appendName(t.Columns, name)
			}
		}
		t.left--
		if t.left == 0 {
			t.state = stColumnsEOF
		}
		return PktColumnDef, nil
	case stColumnsEOF:
		status, ok := ParseEOF(p)
		if !ok {
			return bad("expected EOF after column definitions")
		}
		if t.kind == ReplyPrepare {
			t.state = stDone
			return PktEOF, nil
		}
		if status&gm.SERVER_STATUS_CURSOR_EXISTS != 0 {
			t.CursorOpen = true
			t.Status = status
			t.state = stDone
			return PktEOF, nil
		}
		t.state = stRows
		return PktEOF, nil
	case stRows:
		if p[0] == ErrHeader {
			e, err := ParseErr(p)
			if err != nil {
				return 0, err
			}
			t.Err, t.state = e, stDone
			return PktErr, nil
		}
		if status, ok := ParseEOF(p); ok {
			t.Status = status
			t.endResult()
			return PktEOF, nil
		}
		if t.Binary && p[0] != OKHeader {
			return bad("binary row header")
		}
		t.Rows++
		return PktRow, nil
	}
	return bad("state")
}

// appendName appends a column name, reusing the string an earlier reply
// left at the same index when it is equal (Start keeps the backing array):
// a statement run again names the same columns without allocating.
func appendName(cols []string, name []byte) []string {
	if n := len(cols); n < cap(cols) && cols[:n+1][n] == string(name) {
		return cols[:n+1]
	}
	return append(cols, string(name))
}

// Cols is the number of columns of the current result set.
func (t *Tracker) Cols() int { return int(t.cols) }

// InRows reports whether the next packets are rows of a result set.
func (t *Tracker) InRows() bool { return t.state == stRows }

// ResumeAfterInfile returns to waiting for the OK/ERR that follows a LOCAL
// INFILE upload.
func (t *Tracker) ResumeAfterInfile() { t.state = stFirst }

func (t *Tracker) endResult() {
	if t.Status&gm.SERVER_MORE_RESULTS_EXISTS != 0 {
		t.state = stFirst
		return
	}
	t.state = stDone
}

// StartFetch prepares t for the rows of a COM_STMT_FETCH on an open cursor.
func (t *Tracker) StartFetch(cols int) {
	t.Start(ReplyResult, true)
	t.state = stRows
	t.cols = uint64(cols)
}
