package proxy

import (
	"fmt"
	"github.com/sqlwarden/sqlwarden/pkg/record"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/statement"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// kindMsg is the client's text for limit k refusing: "sqlwarden: limit
// <entry>: <kind>: <reason>".
func kindMsg(l *record.Limits, k record.LimitKind, reason string) string {
	return limitMsg(l, k, k.String()+": "+reason)
}

// refuseKind refuses a statement before the database sees it: ERR 1226 and
// an outcome naming limit k.
func (s *session) refuseKind(st *stmtLife, k record.LimitKind, reason string) (reply, error) {
	s.hit(k)
	return s.refuseLimit(st, kindMsg(&s.lim, k, reason))
}

// checkLimits applies read_only and max_affected_rows to a classified
// statement before policy sees it. A reply that is done: the statement was
// refused (err ends the session when non-nil); otherwise the run says how a
// max_affected_rows limit wants the statement run.
func (s *session) checkLimits(st *stmtLife) (*boundedRun, reply, error) {
	l := &s.lim
	if !l.ReadOnly && !s.roApplied && !l.IsSet(record.LimitMaxAffectedRows) || st.st.Refused != "" {
		// (A text that cannot be judged is refused by guard.)
		return nil, replyPending, nil
	}
	if err := s.syncReadOnly(); err != nil {
		if pe, ok := err.(*protocolError); ok {
			return nil, replyRefused, s.backendLost(st.seq+1, pe.err)
		}
		r, err := s.refuseKind(st, record.LimitReadOnly, "cannot put the database session in read-only mode: "+err.Error())
		return nil, r, err
	}
	if l.ReadOnly {
		why, tables := s.srv.opts.Policy.ReadOnly(st.sql, st.st, st.db, s.sqlPrepared)
		if why == "" {
			var err error
			if why, err = s.readOnlyViews(tables, 0); err != nil {
				why = err.Error()
			}
		}
		if why != "" {
			r, err := s.refuseKind(st, record.LimitReadOnly, why)
			return nil, r, err
		}
	}
	if l.IsSet(record.LimitMaxAffectedRows) {
		run, why, err := s.boundWrite(st)
		if err != nil {
			r, err := s.refuseKind(st, record.LimitMaxAffectedRows, err.Error())
			return nil, r, err
		}
		if why != "" {
			r, err := s.refuseKind(st, record.LimitMaxAffectedRows, why)
			return nil, r, err
		}
		return run, replyPending, nil
	}
	return nil, replyPending, nil
}

// maxViewDepth bounds how deep views over views are followed.
const maxViewDepth = 4

// readOnlyViews judges the definitions of the views among tables: reading a
// view runs its SELECT, whose functions could write.
func (s *session) readOnlyViews(tables []statement.TableRef, depth int) (string, error) {
	pol := s.srv.opts.Policy
	for _, t := range tables {
		if t.Schema == "" {
			continue
		}
		info, err := s.srv.tableInfo(s.be, s.beAddr, t.Schema, t.Name)
		if err != nil {
			return "", err
		}
		if !info.view {
			continue
		}
		name := t.Schema + "." + t.Name
		if depth >= maxViewDepth {
			return "view " + name + ": views nested too deeply", nil
		}
		if info.definition == "" {
			return "view " + name + ": its definition is not visible to sqlwarden's database account (grant it SHOW VIEW)", nil
		}
		// The server stores definitions in its canonical form: backquoted
		// names, standard strings.
		d := s.dialect
		d.Mode = 0
		st := pol.Classify(info.definition, t.Schema, d)
		why, inner := pol.ReadOnly(info.definition, st, t.Schema, nil)
		if why == "" {
			why, err = s.readOnlyViews(inner, depth+1)
		}
		if err != nil {
			return "", err
		}
		if why != "" {
			return "view " + name + ": " + why, nil
		}
	}
	return "", nil
}

// sqlPrepared is the text of a statement this session prepared with SQL
// PREPARE, by lower-case name.
func (s *session) sqlPrepared(name string) (string, bool) {
	p, ok := s.sqlPrep[name]
	return p.Text, ok
}

// preparedStatement is the SQL-level prepared statement of that name
// (lower case), with the database it was prepared in.
func (s *session) preparedStatement(name string) (statement.Prepare, bool) {
	p, ok := s.sqlPrep[name]
	return p, ok
}

// notePrepares keeps the SQL-level prepared statements of the session: what
// a successful text defined, and forgets every name a failed one touched
// (a failed PREPARE drops the old statement of that name).
func (s *session) notePrepares(st *statement.Statement, failed bool) {
	if len(st.Prepares) == 0 && len(st.Deallocates) == 0 {
		return
	}
	if s.sqlPrep == nil {
		s.sqlPrep = map[string]statement.Prepare{}
	}
	for _, p := range st.Prepares {
		if failed || p.Dynamic {
			delete(s.sqlPrep, p.Name)
			continue
		}
		s.sqlPrep[p.Name] = p
	}
	for _, n := range st.Deallocates {
		delete(s.sqlPrep, n)
	}
}

// syncReadOnly puts the backend session in the READ ONLY transaction mode
// while the identity's read_only limit is on, so that what the parser cannot
// see (a stored function that writes) is refused by the server itself; and
// restores the server's default when a reload turns it off. The mode is
// session-wide: inside a transaction it applies from the next one.
func (s *session) syncReadOnly() error {
	on := s.lim.ReadOnly
	if on == s.roApplied {
		return nil
	}
	sql := "SET SESSION TRANSACTION READ ONLY"
	if !on {
		sql = "SET SESSION tx_read_only = @@global.tx_read_only"
	}
	ok, serr, err := s.ownExec(sql)
	if err != nil {
		return &protocolError{side: "backend", err: err}
	}
	if serr != nil {
		return fmt.Errorf("%s: %s", sql, serr.Message)
	}
	s.noteStatus(ok.Status)
	s.roApplied = on
	return nil
}

// ownExec runs one statement of the proxy's own on the backend and
// reads its reply (an OK, an ERR, or a result set that is discarded).
func (s *session) ownExec(sql string) (wire.OK, *wire.ServerError, error) {
	s.backend.Seq = 0
	if err := s.backend.WritePacket(append([]byte{gm.COM_QUERY}, sql...)); err != nil {
		return wire.OK{}, nil, err
	}
	if err := s.backend.Flush(); err != nil {
		return wire.OK{}, nil, err
	}
	return s.readOwnReply()
}

// readOwnReply reads one reply of a statement the proxy sent itself.
func (s *session) readOwnReply() (wire.OK, *wire.ServerError, error) {
	var t wire.Tracker
	t.Start(wire.ReplyResult, false)
	var ok wire.OK
	for !t.Done() {
		pl, _, err := s.backend.ReadPacket()
		if err != nil {
			return ok, nil, err
		}
		pk, err := t.Feed(pl)
		if err != nil {
			return ok, nil, err
		}
		switch pk {
		case wire.PktOK:
			if ok, err = wire.ParseOK(pl); err != nil {
				return ok, nil, err
			}
		case wire.PktLocalInfile:
			return ok, nil, fmt.Errorf("%w: unexpected LOCAL INFILE request", wire.ErrMalformed)
		}
	}
	if t.Err != nil {
		return ok, t.Err, nil
	}
	ok.Status = t.Status
	return ok, nil, nil
}

// noteStatus remembers the transaction state the backend last reported.
func (s *session) noteStatus(status uint16) {
	s.txStatus, s.txKnown = status, true
}

// afterReset re-applies the session's limits to a backend session that
// COM_RESET_CONNECTION returned to its defaults.
func (s *session) afterReset() error {
	s.roApplied = false
	s.sqlPrep = nil
	if !s.lim.ReadOnly {
		return nil
	}
	err := s.syncReadOnly()
	if pe, ok := err.(*protocolError); ok {
		return pe
	}
	if err != nil {
		// The next statement retries, and is refused if it fails again.
		s.log.Warn("read-only mode after reset", "err", err)
	}
	return nil
}
