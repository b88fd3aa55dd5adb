package proxy

import (
	"fmt"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// prepared is a server-side prepared statement as the proxy tracks it: the
// SQL and its classification from PREPARE, the decision enforced at EXECUTE.
type prepared struct {
	sql       string
	st        *statement.Statement
	plan      MaskPlan
	numParams int
	numCols   int
	types     []byte
	long      map[int]*longData
	cursor    *cursorState
}

type longData struct {
	buf  []byte
	size int
}

// prepare handles COM_STMT_PREPARE: classified and decided now; statements
// policy denies are refused before the database sees them; those that need
// approval are held at each EXECUTE, with their parameters.
func (s *session) prepare(p []byte, seq uint8) error {
	// Whatever happens below, the server's "statement prepared last" is
	// this one only if it is prepared: a refused or failed PREPARE leaves
	// none, so a pipelined EXECUTE of id 0xFFFFFFFF can never run an
	// earlier statement in its place.
	s.hasLast = false
	sql := string(wire.Command(p).Arg())
	st := &stmtAudit{command: "COM_STMT_PREPARE", sql: sql, start: s.srv.opts.Now()}
	st.st = s.srv.opts.Policy.Classify(sql, s.db, s.dialect)
	if st.st.Refused != "" {
		return s.refuseText(st, seq)
	}
	if ok, _, err := s.checkLimits(st, seq); !ok {
		return err
	}
	v := s.srv.opts.Policy.Decide(s.identity.record(), st.st, statement.Session{ID: s.id, DB: s.db, User: s.hs.User, ClientAddr: s.raw.RemoteAddr().String(), Command: st.command})
	if v.Action == record.ActionApprove {
		// Preparing reads nothing and changes nothing: the human is asked at EXECUTE.
		v = statement.Verdict{Rule: v.Rule, Action: record.ActionAllow, Message: "approval deferred to execute"}
	}
	if v.Action == record.ActionDeny {
		return s.block(st, seq, &v, wire.ErrCodeBlocked, v.ClientMessage())
	}
	if ok, err := s.guardPrepared(st, seq, v); !ok {
		return err
	}
	if err := s.forward(p, seq, wire.ReplyPrepare, st); err != nil {
		s.finish(st)
		return err
	}
	t := &s.tracker
	if t.Err == nil && t.StmtID != lastStmtID {
		s.stmts[t.StmtID] = &prepared{sql: sql, st: st.st, plan: st.plan, numParams: int(t.NumParams), numCols: int(t.NumCols)}
		s.lastID, s.hasLast = t.StmtID, true
	}
	s.finish(st)
	return nil
}

// guardPrepared is guard for PREPARE with an already-made decision.
func (s *session) guardPrepared(st *stmtAudit, seq uint8, v statement.Verdict) (bool, error) {
	st.verdict = &v
	s.srv.opts.Observer.Decision(v.Rule, v.Action)
	if ok, err := s.planMasking(st, seq); !ok {
		return false, err
	}
	if s.admitOn {
		if msg, ok := s.admit(st); !ok {
			return false, s.refuseLimit(st, seq, msg)
		}
	}
	if err := s.begin(st, seq); err != nil {
		s.finish(st)
		return false, s.flushAfterErr()
	}
	return true, nil
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
		if !s.hasLast {
			return id, nil
		}
		id = s.lastID
		wire.SetStmtID(p, id)
	}
	return id, s.stmts[id]
}

// forget drops a closed statement.
func (s *session) forget(id uint32) {
	delete(s.stmts, id)
	if s.hasLast && s.lastID == id {
		s.hasLast = false
	}
}

// unknownStmt refuses a command that names a statement the proxy does not
// know, with the server's own error code for it.
func (s *session) unknownStmt(seq uint8, command string, id uint32) error {
	return s.refuseState(seq, command, "", wire.ErrCodeUnknownStmt, "HY000", unknownStmtMsg(command, id))
}

func unknownStmtMsg(command string, id uint32) string {
	if id == lastStmtID {
		return fmt.Sprintf("sqlwarden: %s names the last prepared statement (id %d) but none is prepared", command, id)
	}
	return fmt.Sprintf("sqlwarden: unknown prepared statement id %d given to %s", id, command)
}

// dropUnknown journals a reply-less command (COM_STMT_CLOSE,
// COM_STMT_SEND_LONG_DATA) that names a statement the proxy does not know:
// it is not forwarded, and the client, which waits for no reply, gets none.
func (s *session) dropUnknown(command string, id uint32) {
	s.statements++
	n := s.statements
	msg := unknownStmtMsg(command, id)
	if err := s.srv.append(&record.Record{Event: record.EventStatement, SessionID: s.id, StatementID: n, Command: command, DB: s.db}); err != nil {
		s.log.Error("audit dropped command", "err", err)
	}
	if err := s.srv.appendAsync(&record.Record{Event: record.EventOutcome, SessionID: s.id, StatementID: n, Status: record.StatusBlocked,
		Error: &record.ErrorInfo{Code: wire.ErrCodeUnknownStmt, Message: msg}, Policy: &record.Decision{Action: record.ActionDeny, Rule: "protocol", Message: msg}}); err != nil {
		s.log.Error("audit dropped command", "err", err)
	}
}

// execute handles COM_STMT_EXECUTE: the parameters are decoded by type and
// journaled with the prepared SQL before the database sees them.
func (s *session) execute(p []byte, seq uint8) error {
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
		return wire.Param{Value: string(ld.buf), Truncated: ld.size > len(ld.buf), Size: sizeIfTruncated(ld)}, true
	})
	if err != nil {
		ps.long = nil
		if rerr := s.refuse(seq, "COM_STMT_EXECUTE", ps.sql, wire.ErrCodeMalformed, "sqlwarden: "+err.Error()); rerr != nil || !sentLong {
			return rerr
		}
		return s.resetLongData(id)
	}
	ps.types = append(ps.types[:0], ex.Types...)
	st := &stmtAudit{command: "COM_STMT_EXECUTE", sql: ps.sql, st: ps.st, plan: ps.plan, start: s.srv.opts.Now(), params: auditParams(params)}
	ps.long = nil
	// Masking was planned at PREPARE (a denial there refused the PREPARE).
	st.planned = true
	proceed, run, gerr := s.checkLimits(st, seq)
	if proceed {
		proceed, gerr = s.guard(st, seq)
	}
	if !proceed {
		if gerr == nil && sentLong {
			return s.resetLongData(id)
		}
		return gerr
	}
	s.cursorMasker = nil
	// The server closes a statement's open cursor when it runs it again.
	ps.cursor = nil
	if run != nil {
		err = s.forwardBounded(p, seq, st, run)
	} else {
		err = s.forward(p, seq, wire.ReplyResult, st)
	}
	if err != nil {
		s.finish(st)
		return err
	}
	if s.tracker.CursorOpen {
		ps.cursor = &cursorState{cols: ps.numCols, masker: s.cursorMasker, id: id, status: s.tracker.Status}
	}
	s.finish(st)
	return nil
}

func sizeIfTruncated(ld *longData) int {
	if ld.size > len(ld.buf) {
		return ld.size
	}
	return 0
}

func auditParams(ps []wire.Param) []record.Param {
	if len(ps) == 0 {
		return nil
	}
	out := make([]record.Param, len(ps))
	for i, p := range ps {
		out[i] = record.Param{Type: p.Type, Value: p.Value, Truncated: p.Truncated, Size: p.Size}
	}
	return out
}

// longData handles COM_STMT_SEND_LONG_DATA: forwarded (no reply), and kept
// (up to MaxParamBytes, with the full size) for the EXECUTE record.
func (s *session) longData(p []byte) error {
	ld, err := wire.ParseLongData(p)
	if err != nil {
		s.auditProtocolError("COM_STMT_SEND_LONG_DATA", err)
		return &protocolError{side: "client", err: wire.ErrMalformed}
	}
	id, ps := s.resolveStmt(p)
	if ps == nil {
		s.dropUnknown("COM_STMT_SEND_LONG_DATA", id)
		return nil
	}
	param := int(ld.Param)
	if param < ps.numParams {
		if ps.long == nil {
			ps.long = map[int]*longData{}
		}
		held := ps.long[param]
		if held == nil {
			held = &longData{}
			ps.long[param] = held
		}
		data := ld.Data
		held.size += len(data)
		if room := wire.MaxParamBytes - len(held.buf); room > 0 {
			if len(data) > room {
				data = data[:room]
			}
			held.buf = append(held.buf, data...)
		}
	}
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
func (s *session) closeStmt(p []byte) error {
	if _, err := wire.ParseStmtID(p); err != nil {
		s.auditProtocolError("COM_STMT_CLOSE", err)
		return &protocolError{side: "client", err: wire.ErrMalformed}
	}
	id, ps := s.resolveStmt(p)
	if ps == nil {
		s.dropUnknown("COM_STMT_CLOSE", id)
		return nil
	}
	st := &stmtAudit{command: "COM_STMT_CLOSE", sql: ps.sql, start: s.srv.opts.Now(), noReply: true}
	if err := s.begin(st, 0); err != nil {
		s.finish(st)
		return nil
	}
	s.forget(id)
	s.backend.Seq = 0
	if err := s.backend.WritePacket(p); err != nil {
		return &protocolError{side: "backend", err: err}
	}
	if err := s.backend.Flush(); err != nil {
		return &protocolError{side: "backend", err: err}
	}
	s.tracker.Start(wire.ReplyNone, false)
	s.finish(st)
	return nil
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
	if ps := s.stmts[id]; ps != nil {
		ps.cursor = nil // a reset closes the statement's cursor too
	}
	return nil
}

// resetStmt handles COM_STMT_RESET.
func (s *session) resetStmt(p []byte, seq uint8) error {
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
func (s *session) fetch(p []byte, seq uint8) error {
	if _, err := wire.ParseStmtID(p); err != nil {
		return s.refuse(seq, "COM_STMT_FETCH", "", wire.ErrCodeMalformed, "sqlwarden: malformed COM_STMT_FETCH")
	}
	id, ps := s.resolveStmt(p)
	if ps == nil {
		return s.unknownStmt(seq, "COM_STMT_FETCH", id)
	}
	if ps.cursor == nil {
		// Rows only ever come from a cursor an EXECUTE judged here opened.
		return s.refuseState(seq, "COM_STMT_FETCH", ps.sql, wire.ErrCodeNoCursor, "HY000",
			fmt.Sprintf("sqlwarden: prepared statement %d has no open cursor", id))
	}
	st := &stmtAudit{command: "COM_STMT_FETCH", sql: ps.sql, st: ps.st, plan: ps.plan, start: s.srv.opts.Now()}
	if err := s.begin(st, seq); err != nil {
		s.finish(st)
		return s.flushAfterErr()
	}
	st.fwd = s.srv.opts.Now()
	s.backend.Seq = wire.FirstSeq(seq, len(p))
	if err := s.backend.WritePacket(p); err != nil {
		return s.backendLost(seq+1, err)
	}
	if err := s.backend.Flush(); err != nil {
		return s.backendLost(seq+1, err)
	}
	if s.lim.StatementTimeout > 0 {
		s.armWatchdog()
	}
	err := s.relay(wire.ReplyResult, true, seq+1, nil, ps.cursor)
	if s.lim.StatementTimeout > 0 {
		s.disarmWatchdog()
	}
	if ps.cursor != nil && ps.cursor.done {
		ps.cursor = nil
	}
	s.finish(st)
	return err
}
