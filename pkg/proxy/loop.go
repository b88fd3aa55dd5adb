package proxy

import (
	"errors"
	"fmt"
	"os"
	"time"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// errEnd ends the loop after a clean close.
var errEnd = errors.New("end of session")

// loop reads client commands until the client quits or a connection fails.
// It returns the session.end reason.
func (s *session) loop() string {
	for {
		s.mu.Lock()
		draining, gone := s.draining, s.backendGone
		s.busy = false
		s.mu.Unlock()
		if gone {
			return "backend_closed"
		}
		if draining {
			return "shutdown"
		}
		p, seq, err := s.client.ReadPacket()
		if err != nil {
			s.mu.Lock()
			draining, gone := s.draining, s.backendGone
			s.mu.Unlock()
			if gone && errors.Is(err, os.ErrDeadlineExceeded) {
				return "backend_closed"
			}
			if draining && errors.Is(err, os.ErrDeadlineExceeded) {
				return "shutdown"
			}
			if isClosed(err) {
				return "client_closed"
			}
			if errors.Is(err, wire.ErrTooLarge) {
				s.log.Warn("client packet too large", "err", err)
				s.writeErrSeq(seq+1, wire.ErrCodeTooLarge, "08S01", "sqlwarden: packet larger than max_packet_size")
				s.auditProtocolErrorCode("COM_UNKNOWN", wire.ErrCodeTooLarge, err)
				return "packet_too_large"
			}
			s.log.Info("read client", "err", err)
			s.auditProtocolError("COM_UNKNOWN", err)
			return "client_error"
		}
		s.mu.Lock()
		s.busy = true
		s.mu.Unlock()
		if len(p) == 0 {
			s.writeErrSeq(seq+1, wire.ErrCodeMalformed, "08S01", "sqlwarden: malformed packet: empty command")
			s.auditProtocolError("COM_UNKNOWN", fmt.Errorf("%w: empty command", wire.ErrMalformed))
			return "malformed_packet"
		}
		if err := s.command(p, seq); err != nil {
			if errors.Is(err, errEnd) {
				return "quit"
			}
			var pe *protocolError
			if errors.As(err, &pe) {
				s.log.Info("protocol error", "side", pe.side, "err", pe.err)
				if pe.side == "backend" && s.hungUp(pe.err) {
					return "backend_closed"
				}
				return pe.side + "_error"
			}
			if isClosed(err) {
				return "client_closed"
			}
			s.log.Info("session error", "err", err)
			return "error"
		}
	}
}

// hungUp reports whether a backend failure is the backend closing the
// session (as opposed to breaking the protocol).
func (s *session) hungUp(err error) bool {
	s.mu.Lock()
	gone := s.backendGone
	s.mu.Unlock()
	return gone || isClosed(err)
}

// protocolError ends a session because one side broke the protocol or
// went away mid-reply.
type protocolError struct {
	side string // client | backend
	err  error
}

func (e *protocolError) Error() string { return e.side + ": " + e.err.Error() }
func (e *protocolError) Unwrap() error { return e.err }

func (s *session) writeErrSeq(seq uint8, code uint16, state, msg string) {
	s.client.Seq = seq
	s.writeErr(code, state, msg)
}

func (s *session) auditProtocolError(command string, err error) {
	s.auditProtocolErrorCode(command, wire.ErrCodeMalformed, err)
}

func (s *session) auditProtocolErrorCode(command string, code uint16, err error) {
	s.statements++
	id := s.statements
	_ = s.srv.append(&record.Record{Event: record.EventStatement, SessionID: s.id, StatementID: id, Command: command, DB: s.db})
	_ = s.srv.appendAsync(&record.Record{Event: record.EventOutcome, SessionID: s.id, StatementID: id, Status: record.StatusError,
		Error: &record.ErrorInfo{Code: code, Message: "sqlwarden: " + err.Error()}})
}

// command handles one client command. A returned error ends the session.
func (s *session) command(p []byte, seq uint8) error {
	if v := s.srv.opts.Policy.Version(); v != s.limVer {
		s.refreshLimits(v)
	}
	cmd := p[0]
	switch cmd {
	case gm.COM_QUIT:
		return errEnd
	case gm.COM_QUERY:
		return s.query(p, seq)
	case gm.COM_INIT_DB:
		return s.initDB(p, seq)
	case gm.COM_PING:
		// Carries nothing and reads nothing: forwarded (so the client learns
		// whether the backend is alive) but not journaled.
		return s.forward(p, seq, wire.ReplyResult, nil)
	case gm.COM_FIELD_LIST:
		return s.fieldList(p, seq)
	case gm.COM_STATISTICS:
		return s.simple(p, seq, "COM_STATISTICS", "", wire.ReplyRaw)
	case gm.COM_SET_OPTION:
		return s.simple(p, seq, "COM_SET_OPTION", "", wire.ReplyResult)
	case gm.COM_RESET_CONNECTION:
		err := s.simple(p, seq, "COM_RESET_CONNECTION", "", wire.ReplyResult)
		if err == nil && s.tracker.Err == nil {
			s.stmts = map[uint32]*prepared{}
			// The reset restored the server's default statement time limit;
			// the next forward sets statement_timeout's again.
			s.mstApplied = 0
			s.hasLast = false
			err = s.afterReset()
			if err == nil {
				// It also put session variables (session tracking too) back
				// to the server's defaults.
				err = s.resetSession()
			}
		}
		return err
	case gm.COM_PROCESS_KILL:
		target, err := wire.ParseKill(p)
		if err != nil {
			return s.refuse(seq, wire.CommandName(cmd), "", wire.ErrCodeMalformed, "sqlwarden: malformed COM_PROCESS_KILL")
		}
		thread, msg := s.resolveKill(uint64(target))
		if msg != "" {
			return s.refuse(seq, "COM_PROCESS_KILL", fmt.Sprintf("KILL %d", target), wire.ErrCodeBlocked, msg)
		}
		p = wire.KillCommand(thread)
		return s.simple(p, seq, "COM_PROCESS_KILL", fmt.Sprintf("KILL %d", thread), wire.ReplyResult)
	case gm.COM_STMT_PREPARE:
		return s.prepare(p, seq)
	case gm.COM_STMT_EXECUTE:
		return s.execute(p, seq)
	case gm.COM_STMT_SEND_LONG_DATA:
		return s.longData(p)
	case gm.COM_STMT_CLOSE:
		return s.closeStmt(p)
	case gm.COM_STMT_RESET:
		return s.resetStmt(p, seq)
	case gm.COM_STMT_FETCH:
		return s.fetch(p, seq)
	case gm.COM_CHANGE_USER:
		return s.refuse(seq, "COM_CHANGE_USER", "", wire.ErrCodeNotSupported,
			"sqlwarden: COM_CHANGE_USER is not supported: a connection's identity is fixed by its workload")
	case gm.COM_BINLOG_DUMP, gm.COM_BINLOG_DUMP_GTID, gm.COM_REGISTER_SLAVE, gm.COM_TABLE_DUMP:
		return s.refuse(seq, wire.CommandName(cmd), "", wire.ErrCodeNotSupported,
			"sqlwarden: replication commands are not allowed through the proxy")
	default:
		return s.refuse(seq, wire.CommandName(cmd), "", wire.ErrCodeNotSupported,
			fmt.Sprintf("sqlwarden: command %s is not supported", wire.CommandName(cmd)))
	}
}

// refuse answers a command with an ERR and journals why.
func (s *session) refuse(seq uint8, command, sql string, code uint16, msg string) error {
	return s.refuseState(seq, command, sql, code, "42000", msg)
}

// refuseState is refuse with the ERR's SQLSTATE.
func (s *session) refuseState(seq uint8, command, sql string, code uint16, state, msg string) error {
	s.statements++
	id := s.statements
	rec := &record.Record{Event: record.EventStatement, SessionID: s.id, StatementID: id, Command: command, DB: s.db}
	rec.SetSQL(sql)
	if err := s.srv.append(rec); err != nil {
		s.log.Error("audit refused command", "err", err)
	}
	if err := s.srv.appendAsync(&record.Record{Event: record.EventOutcome, SessionID: s.id, StatementID: id, Status: record.StatusBlocked,
		Error: &record.ErrorInfo{Code: code, Message: msg}, Policy: &record.Decision{Action: record.ActionDeny, Rule: "protocol", Message: msg}}); err != nil {
		s.log.Error("audit refused command", "err", err)
	}
	s.writeErrSeq(seq+1, code, state, msg)
	if s.client.W.Buffered() > 0 {
		return s.client.Flush()
	}
	return nil
}

// simple journals and forwards a command that needs no policy decision.
func (s *session) simple(p []byte, seq uint8, command, sql string, kind wire.ReplyKind) error {
	st := &stmtAudit{command: command, sql: sql}
	if err := s.begin(st, seq); err != nil {
		s.finish(st)
		return s.flushAfterErr()
	}
	if err := s.forward(p, seq, kind, nil); err != nil {
		s.finish(st)
		return err
	}
	s.finish(st)
	return nil
}

// stmtAudit carries one statement through the pipeline.
type stmtAudit struct {
	id      uint64
	command string
	sql     string
	st      *statement.Statement
	params  []record.Param
	verdict *statement.Verdict
	approve *Approval
	plan    MaskPlan
	planned bool // masking already planned (at PREPARE)
	start   time.Time
	fwd     time.Time // when forwarding started
	blocked *record.ErrorInfo
	// noReply marks a command the server never answers (COM_STMT_CLOSE):
	// a refusal is journaled but nothing is written to the client, whose
	// next read belongs to its next command.
	noReply bool
	slot    bool // holds a max_concurrent_statements slot (released in finish)
}

// begin writes the statement's write-ahead record. On a journal failure the
// statement is not forwarded, st.blocked says why, the client gets an ERR
// (unless the command has no reply) and begin returns errAuditRefused; the
// caller finishes the statement and the session continues.
func (s *session) begin(st *stmtAudit, seq uint8) error {
	s.statements++
	st.id = s.statements
	if st.start.IsZero() {
		st.start = s.srv.opts.Now()
	}
	rec := &s.rec
	*rec = record.Record{Event: record.EventStatement, SessionID: s.id, StatementID: st.id, Command: st.command,
		DB: s.db, Params: st.params}
	rec.SetSQL(st.sql)
	if st.st != nil {
		rec.Digest = st.st.Digest
		rec.Statement = st.st.Classification
	}
	if s.identity != nil && s.identity.Attribute != nil && st.sql != "" {
		rec.Attribution = s.identity.Attribute(st.sql)
	}
	if err := s.srv.append(rec); err != nil {
		s.log.Error("audit statement", "err", err)
		st.blocked = &record.ErrorInfo{Code: wire.ErrCodeAuditFailed, Message: "sqlwarden: audit journal unavailable, statement refused: " + err.Error()}
		if !st.noReply {
			s.writeErrSeq(seq+1, st.blocked.Code, "HY000", st.blocked.Message)
		}
		return errAuditRefused
	}
	return nil
}

var errAuditRefused = errors.New("statement refused: audit journal unavailable")

// finish writes the outcome record from the tracker's summary.
func (s *session) finish(st *stmtAudit) {
	now := s.srv.opts.Now()
	t := &s.tracker
	s.recDur = now.Sub(st.start).Microseconds()
	rec := &s.rec
	*rec = record.Record{Event: record.EventOutcome, SessionID: s.id, StatementID: st.id, DurationUS: &s.recDur}
	if st.slot {
		s.ident.inflight.Add(-1)
		st.slot = false
	}
	if s.limHit != nil {
		rec.Limit, rec.Truncated = s.limHit, s.truncated
		s.limHit, s.truncated = nil, false
	}
	switch {
	case st.blocked != nil:
		rec.Status = record.StatusBlocked
		rec.Error = st.blocked
	case t.Err != nil:
		rec.Status = record.StatusError
		rec.Error = &record.ErrorInfo{Code: t.Err.Code, State: t.Err.State, Message: t.Err.Message}
	default:
		rec.Status = record.StatusSuccess
		s.recRows, s.recAffected = t.Rows, t.Affected
		rec.Rows, rec.AffectedRows = &s.recRows, &s.recAffected
		// The journal encodes the record before Append returns, so the
		// tracker's slice can be lent, not copied.
		rec.Columns = t.Columns
		if t.Rows > 0 && s.digest.Rows() == t.Rows {
			rec.ResultDigest = s.digest.Sum()
		}
		if s.results != nil {
			s.results.Apply(rec)
			s.results = nil
		}
	}
	if st.verdict != nil {
		s.recPolicy = record.Decision{Rule: st.verdict.Rule, Action: st.verdict.Action, Message: st.verdict.Message}
		rec.Policy = &s.recPolicy
		if st.approve != nil {
			rec.Policy.Approver = st.approve.Approver
			rec.Policy.Reason = st.approve.Reason
			rec.Policy.ApprovalID = st.approve.ID
		}
	}
	if st.plan != nil {
		rec.Masked = st.plan.Summary()
		var n uint64
		for _, m := range rec.Masked {
			n += m.Count
		}
		if n > 0 {
			s.srv.opts.Observer.Masked(n)
		}
	}
	kind := "OTHER"
	if st.st != nil && st.st.Classification != nil {
		kind = st.st.Classification.Kind
	} else if st.command != "COM_QUERY" {
		kind = st.command
	}
	var added time.Duration
	if !st.fwd.IsZero() {
		added = st.fwd.Sub(st.start)
	}
	s.srv.opts.Observer.Statement(kind, rec.Status, now.Sub(st.start), added)
	if err := s.srv.appendAsync(rec); err != nil {
		s.log.Error("audit outcome", "err", err)
	}
}
