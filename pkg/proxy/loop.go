package proxy

import (
	"errors"
	"fmt"
	"os"

	gm "github.com/go-mysql-org/go-mysql/mysql"

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
		// Between commands neither leg holds a buffer: an idle session
		// keeps only the small one its client leg waits in.
		if s.backend != nil {
			s.backend.Release()
		}
		s.client.Idle()
		if s.freeLarge {
			s.freeLarge = false
			s.srv.large.free()
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
			if errors.Is(err, wire.ErrOutOfOrder) {
				s.writeErrSeq(seq+1, wire.ErrCodeOutOfOrder, "08S01", "sqlwarden: "+err.Error())
				s.auditProtocolErrorCode("COM_UNKNOWN", wire.ErrCodeOutOfOrder, err)
				return "malformed_packet"
			}
			s.log.Info("read client", "err", err)
			s.auditProtocolError("COM_UNKNOWN", err)
			return "client_error"
		}
		if first := wire.FirstSeq(seq, len(p)); first != 0 {
			// Every command starts a new exchange at 0: the server would
			// refuse it the same way and drop the session.
			err := fmt.Errorf("command with sequence id %d, want 0: %w", first, wire.ErrOutOfOrder)
			s.writeErrSeq(seq+1, wire.ErrCodeOutOfOrder, "08S01", "sqlwarden: "+err.Error())
			s.auditProtocolErrorCode("COM_UNKNOWN", wire.ErrCodeOutOfOrder, err)
			return "malformed_packet"
		}
		s.mu.Lock()
		s.busy = true
		s.mu.Unlock()
		if len(p) == 0 {
			s.writeErrSeq(seq+1, wire.ErrCodeMalformed, "08S01", "sqlwarden: malformed packet: empty command")
			s.auditProtocolError("COM_UNKNOWN", fmt.Errorf("%w: empty command", wire.ErrMalformed))
			return "malformed_packet"
		}
		if (p[0] == gm.COM_QUERY || p[0] == gm.COM_STMT_PREPARE) && len(p)-1 > s.srv.opts.MaxStatement {
			// Read whole (the stream stays in step), never parsed.
			msg := fmt.Sprintf("sqlwarden: statement of %d bytes is larger than max_statement_size (%d): send large values as parameters", len(p)-1, s.srv.opts.MaxStatement)
			if _, err := s.refuse(seq, wire.CommandName(p[0]), "", wire.ErrCodeTooLarge, msg); err != nil {
				return "error" // the journal failed: refused, and the session ends
			}
			continue
		}
		run := func() error { return s.command(p, seq) }
		if len(p) > largeStatement {
			run = func() error { return s.large(len(p), func() error { return s.command(p, seq) }) }
		}
		if err := run(); err != nil {
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

// auditProtocolErrorCode journals a command that broke the protocol; the
// caller answers it (or not) and ends the session.
func (s *session) auditProtocolErrorCode(command string, code uint16, err error) {
	s.silentStatement(command, "").fail(code, "sqlwarden: "+err.Error())
}

// command handles one client command. A returned error ends the session.
// The reply says what the client was written; a command the server never
// answers must never get one from the proxy.
func (s *session) command(p []byte, seq uint8) error {
	r, err := s.dispatch(p, seq)
	if r.written() && noReply(p[0]) {
		// Never on purpose: the client would read it as its next reply.
		s.log.Error("reply written to a command without one", "command", wire.CommandName(p[0]), "reply", r.String())
	}
	return err
}

// noReply reports a command the server never answers.
func noReply(cmd byte) bool {
	return cmd == gm.COM_QUIT || cmd == gm.COM_STMT_CLOSE || cmd == gm.COM_STMT_SEND_LONG_DATA
}

func (s *session) dispatch(p []byte, seq uint8) (reply, error) {
	if v := s.srv.opts.Policy.Version(); v != s.limVer {
		s.refreshLimits(v)
	}
	cmd := p[0]
	switch cmd {
	case gm.COM_QUIT:
		return replyNone, errEnd
	case gm.COM_QUERY:
		return s.query(p, seq)
	case gm.COM_INIT_DB:
		return s.initDB(p, seq)
	case gm.COM_PING:
		// Carries nothing and reads nothing: forwarded (so the client learns
		// whether the backend is alive) but not journaled.
		return replyRelayed, s.forward(p, seq, wire.ReplyResult, nil)
	case gm.COM_FIELD_LIST:
		return s.fieldList(p, seq)
	case gm.COM_STATISTICS:
		return s.simple(p, seq, "COM_STATISTICS", "", wire.ReplyRaw)
	case gm.COM_SET_OPTION:
		return s.simple(p, seq, "COM_SET_OPTION", "", wire.ReplyResult)
	case gm.COM_RESET_CONNECTION:
		r, err := s.simple(p, seq, "COM_RESET_CONNECTION", "", wire.ReplyResult)
		if err == nil && r == replyRelayed && s.tracker.Err == nil {
			s.stmts.m = map[uint32]*prepared{}
			// The reset restored the server's default statement time limit;
			// the next forward sets statement_timeout's again.
			s.mstApplied = 0
			s.stmts.hasLast = false
			err = s.afterReset()
			if err == nil {
				// It also put session variables (session tracking too) back
				// to the server's defaults.
				err = s.resetSession()
			}
		}
		return r, err
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
func (s *session) refuse(seq uint8, command, sql string, code uint16, msg string) (reply, error) {
	return s.statement(command, sql, seq).deny(code, "42000", msg)
}

// simple journals and forwards a command that needs no policy decision.
func (s *session) simple(p []byte, seq uint8, command, sql string, kind wire.ReplyKind) (reply, error) {
	l := s.statement(command, sql, seq)
	if r, err := l.journal(); r.done() {
		return r, err
	}
	return l.forward(p, kind, nil, nil)
}
