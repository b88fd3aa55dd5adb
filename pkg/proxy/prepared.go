package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// prepared is a server-side prepared statement as the proxy tracks it: the
// SQL and its classification from PREPARE, the decision enforced at EXECUTE.
type prepared struct {
	sql       string
	db        string          // the database at PREPARE: the statement's names were bound there
	dialect   sqltext.Dialect // how its text was read
	st        *statement.Statement
	plan      MaskPlan
	numParams int
	numCols   int
	types     []byte
	long      map[int]*longData
	cursor    *cursorState
}

// preparedTable is the session's server-side prepared statements, by id.
type preparedTable struct {
	m       map[uint32]*prepared
	lastID  uint32 // the statement MariaDB's id 0xFFFFFFFF means, when hasLast
	hasLast bool
}

type longData struct {
	buf  []byte
	size int
	sum  hash.Hash // SHA-256 of every byte uploaded
}

// prepare handles COM_STMT_PREPARE: classified and decided now, through
// the same guard (and verdict cache) as a query; statements policy denies
// are refused before the database sees them; those that need approval are
// held at each EXECUTE, with their parameters.
func (s *session) prepare(p []byte, seq uint8) (reply, error) {
	// Whatever happens below, the server's "statement prepared last" is
	// this one only if it is prepared: a refused or failed PREPARE leaves
	// none, so a pipelined EXECUTE of id 0xFFFFFFFF can never run an
	// earlier statement in its place.
	s.stmts.hasLast = false
	sql := string(wire.Command(p).Arg())
	st := s.statement("COM_STMT_PREPARE", sql, seq)
	st.st = s.srv.opts.Policy.Classify(sql, s.db, s.dialect)
	st.deferApproval = true
	// (A text that cannot be judged passes checkLimits and is refused by guard.)
	if _, r, err := s.checkLimits(st); r.done() {
		return r, err
	}
	if r, err := s.guard(st); r.done() {
		return r, err
	}
	return st.forward(p, wire.ReplyPrepare, nil, func() {
		t := &s.tracker
		if t.Err == nil && t.StmtID != lastStmtID {
			s.stmts.m[t.StmtID] = &prepared{sql: sql, db: st.db, dialect: st.dialect, st: st.st, plan: st.plan, numParams: int(t.NumParams), numCols: int(t.NumCols)}
			s.stmts.lastID, s.stmts.hasLast = t.StmtID, true
		}
	})
}

// lastStmtID is the statement id MariaDB reads as "the statement prepared
// last" (LAST_STMT_ID in its sql_prepare.cc) in every COM_STMT_* command:
// the last COM_STMT_PREPARE that succeeded; none after one that failed.
const lastStmtID = 0xFFFFFFFF

// resolveStmt finds the statement a COM_STMT_* command names. Id
// 0xFFFFFFFF is resolved to the last prepared statement and rewritten in
// p to its real id, so the backend runs exactly the statement judged here
// whatever it believes was prepared last. A nil result is an id the proxy
// does not know: such a command is never forwarded.
func (s *session) resolveStmt(p []byte) (uint32, *prepared) {
	id, err := wire.ParseStmtID(p)
	if err != nil {
		return id, nil
	}
	if id == lastStmtID {
		if !s.stmts.hasLast {
			return id, nil
		}
		id = s.stmts.lastID
		wire.SetStmtID(p, id)
	}
	return id, s.stmts.m[id]
}

// forget drops a closed statement.
func (s *session) forget(id uint32) {
	delete(s.stmts.m, id)
	if s.stmts.hasLast && s.stmts.lastID == id {
		s.stmts.hasLast = false
	}
}

// unknownStmt refuses a command that names a statement the proxy does not
// know, with the server's own error code for it.
func (s *session) unknownStmt(seq uint8, command string, id uint32) (reply, error) {
	return s.statement(command, "", seq).deny(wire.ErrCodeUnknownStmt, "HY000", unknownStmtMsg(command, id))
}

// dropUnknown is unknownStmt for a command without a reply (COM_STMT_CLOSE,
// COM_STMT_SEND_LONG_DATA): it is not forwarded, and the client, which
// waits for no reply, gets none.
func (s *session) dropUnknown(command string, id uint32) (reply, error) {
	return s.silentStatement(command, "").deny(wire.ErrCodeUnknownStmt, "HY000", unknownStmtMsg(command, id))
}

// dropMalformed is dropUnknown for a command without a reply that cannot
// be read: journaled, not forwarded, nothing written — the server ignores
// such a packet too, and the session goes on with the client's next command.
func (s *session) dropMalformed(command string, err error) (reply, error) {
	return s.silentStatement(command, "").deny(wire.ErrCodeMalformed, "HY000", "sqlwarden: malformed "+command+": "+err.Error())
}

func unknownStmtMsg(command string, id uint32) string {
	if id == lastStmtID {
		return fmt.Sprintf("sqlwarden: %s names the last prepared statement (id %d) but none is prepared", command, id)
	}
	return fmt.Sprintf("sqlwarden: unknown prepared statement id %d given to %s", id, command)
}

// execute handles COM_STMT_EXECUTE: the parameters are decoded by type and
// journaled with the prepared SQL before the database sees them.
func (s *session) execute(p []byte, seq uint8) (reply, error) {
	if _, err := wire.ParseStmtID(p); err != nil {
		return s.refuse(seq, "COM_STMT_EXECUTE", "", wire.ErrCodeMalformed, "sqlwarden: malformed COM_STMT_EXECUTE")
	}
	id, ps := s.resolveStmt(p)
	if ps == nil {
		return s.unknownStmt(seq, "COM_STMT_EXECUTE", id)
	}
	sentLong := ps.long != nil
	ex, params, err := wire.ParseExecute(p, ps.numParams, ps.types, func(i int) (wire.Param, bool) {
		ld := ps.long[i]
		if ld == nil {
			return wire.Param{}, false
		}
		return ld.param(), true
	})
	if err != nil {
		ps.long = nil
		r, rerr := s.refuse(seq, "COM_STMT_EXECUTE", ps.sql, wire.ErrCodeMalformed, "sqlwarden: "+err.Error())
		if rerr != nil || !sentLong {
			return r, rerr
		}
		return r, s.resetLongData(id)
	}
	ps.types = append(ps.types[:0], ex.Types...)
	st := s.statement("COM_STMT_EXECUTE", ps.sql, seq)
	st.db, st.dialect = ps.db, ps.dialect
	st.st, st.plan, st.params = ps.st, ps.plan, auditParams(params)
	ps.long = nil
	// Masking was planned at PREPARE (a denial there refused the PREPARE),
	// and is planned again when tables or views changed since.
	st.planned = !isStale(ps.plan)
	run, r, err := s.checkLimits(st)
	if !r.done() {
		r, err = s.guard(st)
	}
	if r.done() {
		if err == nil && sentLong {
			// Refused before the backend saw it: what it holds goes.
			return r, s.resetLongData(id)
		}
		return r, err
	}
	ps.plan = st.plan // planned again if it was stale
	// The server closes a statement's open cursor when it runs it again.
	ps.cursor = nil
	return st.forward(p, wire.ReplyResult, run, func() {
		if s.tracker.CursorOpen {
			ps.cursor = &cursorState{cols: ps.numCols, masker: st.cursorMasker, id: id, status: s.tracker.Status}
		}
	})
}

// param is the uploaded value as the journal keeps it: whole up to
// MaxParamBytes, else its first MaxParamBytes with the size and the
// SHA-256 of all of it.
func (ld *longData) param() wire.Param {
	p := wire.Param{Value: string(ld.buf)}
	if ld.size > len(ld.buf) {
		p.Truncated, p.Size, p.SHA256 = true, ld.size, hex.EncodeToString(ld.sum.Sum(nil))
	}
	return p
}

func auditParams(ps []wire.Param) []record.Param {
	if len(ps) == 0 {
		return nil
	}
	out := make([]record.Param, len(ps))
	for i, p := range ps {
		out[i] = record.Param{Type: p.Type, Value: p.Value, Truncated: p.Truncated, Size: p.Size, SHA256: p.SHA256}
	}
	return out
}

// longData handles COM_STMT_SEND_LONG_DATA: forwarded (no reply), and kept
// (up to MaxParamBytes, with the full size) for the EXECUTE record.
//
// Its data is journaled with the EXECUTE, not here: nothing can refuse it,
// and the client hears nothing either way.
func (s *session) longData(p []byte) (reply, error) {
	ld, err := wire.ParseLongData(p)
	if err != nil {
		return s.dropMalformed("COM_STMT_SEND_LONG_DATA", err)
	}
	id, ps := s.resolveStmt(p)
	if ps == nil {
		return s.dropUnknown("COM_STMT_SEND_LONG_DATA", id)
	}
	param := int(ld.Param)
	if param < ps.numParams {
		if ps.long == nil {
			ps.long = map[int]*longData{}
		}
		held := ps.long[param]
		if held == nil {
			held = &longData{sum: sha256.New()}
			ps.long[param] = held
		}
		data := ld.Data
		held.size += len(data)
		held.sum.Write(data)
		if room := wire.MaxParamBytes - len(held.buf); room > 0 {
			if len(data) > room {
				data = data[:room]
			}
			held.buf = append(held.buf, data...)
		}
	}
	return replyNone, s.send(p)
}

// send forwards a command the server never answers.
func (s *session) send(p []byte) error {
	s.backend.Seq = 0
	if err := s.backend.WritePacket(p); err != nil {
		return &protocolError{side: "backend", err: err}
	}
	if err := s.backend.Flush(); err != nil {
		return &protocolError{side: "backend", err: err}
	}
	return nil
}

// closeStmt handles COM_STMT_CLOSE. The server never answers it, so
// nothing is ever written to the client here: a refusal (the journal is
// unavailable) is only journaled and logged, and the statement stays open on
// the backend, as the proxy's table still says.
func (s *session) closeStmt(p []byte) (reply, error) {
	if _, err := wire.ParseStmtID(p); err != nil {
		return s.dropMalformed("COM_STMT_CLOSE", err)
	}
	id, ps := s.resolveStmt(p)
	if ps == nil {
		return s.dropUnknown("COM_STMT_CLOSE", id)
	}
	st := s.silentStatement("COM_STMT_CLOSE", ps.sql)
	if r, err := st.journal(); r.done() {
		return r, err
	}
	s.forget(id)
	return st.send(p)
}

// resetLongData clears what the backend holds from COM_STMT_SEND_LONG_DATA
// for a statement whose EXECUTE was refused before reaching it. MariaDB
// appends long data until an EXECUTE or COM_STMT_RESET, so the client's next
// execution would otherwise run with both uploads joined. The reset's reply
// is the proxy's own: the client already has its ERR.
func (s *session) resetLongData(id uint32) error {
	s.backend.Seq = 0
	if err := s.backend.WritePacket(wire.StmtCommand(gm.COM_STMT_RESET, id)); err != nil {
		return &protocolError{side: "backend", err: err}
	}
	if err := s.backend.Flush(); err != nil {
		return &protocolError{side: "backend", err: err}
	}
	if _, _, err := s.backend.ReadPacket(); err != nil {
		return &protocolError{side: "backend", err: err}
	}
	if ps := s.stmts.m[id]; ps != nil {
		ps.cursor = nil // a reset closes the statement's cursor too
	}
	return nil
}

// resetStmt handles COM_STMT_RESET.
func (s *session) resetStmt(p []byte, seq uint8) (reply, error) {
	if _, err := wire.ParseStmtID(p); err != nil {
		return s.refuse(seq, "COM_STMT_RESET", "", wire.ErrCodeMalformed, "sqlwarden: malformed COM_STMT_RESET")
	}
	id, ps := s.resolveStmt(p)
	if ps == nil {
		return s.unknownStmt(seq, "COM_STMT_RESET", id)
	}
	ps.long = nil
	ps.cursor = nil
	return s.simple(p, seq, "COM_STMT_RESET", ps.sql, wire.ReplyResult)
}

// fetch handles COM_STMT_FETCH on an open cursor; rows are masked with the
// plan of the EXECUTE that opened it.
func (s *session) fetch(p []byte, seq uint8) (reply, error) {
	if _, err := wire.ParseStmtID(p); err != nil {
		return s.refuse(seq, "COM_STMT_FETCH", "", wire.ErrCodeMalformed, "sqlwarden: malformed COM_STMT_FETCH")
	}
	id, ps := s.resolveStmt(p)
	if ps == nil {
		return s.unknownStmt(seq, "COM_STMT_FETCH", id)
	}
	if ps.cursor == nil {
		// Rows only ever come from a cursor an EXECUTE judged here opened.
		return s.statement("COM_STMT_FETCH", ps.sql, seq).deny(wire.ErrCodeNoCursor, "HY000",
			fmt.Sprintf("sqlwarden: prepared statement %d has no open cursor", id))
	}
	st := s.statement("COM_STMT_FETCH", ps.sql, seq)
	st.st, st.plan = ps.st, ps.plan
	if r, err := st.journal(); r.done() {
		return r, err
	}
	r, err := st.fetch(p, ps.cursor)
	if ps.cursor != nil && ps.cursor.done {
		ps.cursor = nil
	}
	return r, err
}
