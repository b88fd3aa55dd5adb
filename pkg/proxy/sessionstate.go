package proxy

import (
	"errors"
	"fmt"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// The session's lexing state (sqltext.Dialect: sql_mode flags, client
// character set) is followed three ways: session tracking on the backend
// leg names every system variable a statement changed in its OK; the status
// flags of every OK and EOF say whether ANSI_QUOTES and NO_BACKSLASH_ESCAPES
// are on; and after a statement that may change the state (a SET of
// sql_mode or the client character set, EXECUTE, text the parser could not
// read, a connection reset) the proxy reads it back. A state the parser
// cannot follow ends the session.

// mariaStatusANSIQuotes is MariaDB's SERVER_STATUS_ANSI_QUOTES flag.
const mariaStatusANSIQuotes = 0x8000

// sessionOK reads the session state-change information of an OK from the
// backend and returns the OK as the client (which did not negotiate session
// tracking) expects it, rewritten in place. A change the proxy cannot
// follow replaces the OK with an ERR and ends the session.
func (s *session) sessionOK(pl []byte) ([]byte, error) {
	out, state, err := wire.StripSessionTrack(pl)
	if err != nil {
		return nil, s.backendLost(s.client.Seq, err)
	}
	if state == nil {
		return out, nil
	}
	var reason string
	err = wire.SessionSysVars(state, func(name, value []byte) {
		if reason == "" {
			reason = s.applyVar(string(name), string(value))
		}
	})
	if err != nil {
		reason = err.Error()
	}
	if reason != "" {
		return nil, s.endForSessionState(reason)
	}
	return out, nil
}

// applyVar takes a changed system variable into the session's dialect and
// says why the session cannot go on ("" if it can).
func (s *session) applyVar(name, value string) string {
	switch name {
	case "sql_mode":
		m, err := sqltext.ParseSQLMode(value)
		if err != nil {
			return err.Error()
		}
		s.dialect.Mode = m
	case "character_set_client":
		cs, err := sqltext.ClientCharset(value)
		if err != nil {
			return err.Error()
		}
		s.dialect.Charset = cs
	case "character_set_results":
		if err := sqltext.ResultsCharset(value); err != nil {
			return err.Error()
		}
	case "session_track_system_variables":
		if value != "*" {
			return "session tracking was changed (session_track_system_variables = '" + value + "')"
		}
	}
	return ""
}

// sessionEOF clears the state-changed flag of an EOF for the client and
// notes that the session must be read back; then it checks the status.
func (s *session) sessionEOF(pl []byte) {
	status, ok := wire.ParseEOF(pl)
	if !ok {
		return
	}
	if status&gm.SERVER_SESSION_STATE_CHANGED != 0 {
		status &^= gm.SERVER_SESSION_STATE_CHANGED
		wire.SetEOFStatus(pl, status)
		s.needReread = true
	}
	s.checkStatus(status)
}

// checkStatus compares the status flags that mirror lexing flags with the
// session's dialect; a difference means the proxy missed a change.
func (s *session) checkStatus(status uint16) {
	nbe := status&gm.SERVER_STATUS_NO_BACKSLASH_ESCAPED != 0
	if nbe != (s.dialect.Mode&sqltext.NoBackslashEscapes != 0) {
		s.needReread = true
	}
	if s.dialect.Flavor == sqltext.MariaDB {
		ansi := status&mariaStatusANSIQuotes != 0
		if ansi != (s.dialect.Mode&sqltext.ANSIQuotes != 0) {
			s.needReread = true
		}
	}
}

// resetSession turns session tracking on again and reads the session back
// after a connection reset.
func (s *session) resetSession() error {
	s.needReread = false
	if err := s.setupSession(); err != nil {
		var re *sqltext.RefusedError
		if errors.As(err, &re) {
			s.log.Warn("ending session: its state cannot be followed", "reason", re.Reason)
			return &protocolError{side: "session_state", err: err}
		}
		return &protocolError{side: "backend", err: err}
	}
	return nil
}

// rereadSession reads the session's lexing state back from the backend.
// A state the proxy cannot follow ends the session (the client has its
// reply; the journal has the session's end and why).
func (s *session) rereadSession() error {
	s.needReread = false
	if err := s.readSession(); err != nil {
		var re *sqltext.RefusedError
		if errors.As(err, &re) {
			s.log.Warn("ending session: its state cannot be followed", "reason", re.Reason)
			return &protocolError{side: "session_state", err: err}
		}
		return &protocolError{side: "backend", err: err}
	}
	return nil
}

// endForSessionState answers the client with an ERR in place of the reply
// packet that reported an unsupported state, and ends the session.
func (s *session) endForSessionState(reason string) error {
	msg := "sqlwarden: session ended: " + reason
	s.log.Warn("ending session: its state cannot be followed", "reason", reason)
	s.tracker.Err = &wire.ServerError{Code: wire.ErrCodeNotSupported, State: "HY000", Message: msg}
	s.writeErr(s.tracker.Err.Code, s.tracker.Err.State, msg)
	return &protocolError{side: "session_state", err: fmt.Errorf("unsupported session state: %s", reason)}
}
