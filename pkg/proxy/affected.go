package proxy

import (
	"fmt"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/statement"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// savepointName is the savepoint a bounded write inside the client's
// transaction runs under.
const savepointName = "sqlwarden_max_affected_rows"

// The transaction a bounded write opens ends without chaining a new one or
// releasing the connection, whatever the session's completion_type.
const (
	commitSQL   = "COMMIT AND NO CHAIN NO RELEASE"
	rollbackSQL = "ROLLBACK AND NO CHAIN NO RELEASE"
)

// boundedRun is a write a max_affected_rows limit runs in a transaction or
// savepoint of its own.
type boundedRun struct {
	max uint64
}

// boundWrite decides how a max_affected_rows limit treats a statement:
// nil for a statement that writes no rows, a run for a single write to
// transactional tables, or why it is refused.
func (s *session) boundWrite(st *stmtLife) (*boundedRun, string, error) {
	pol := s.srv.opts.Policy
	b := pol.BoundWrite(st.st, st.db)
	if b.Execute != "" && b.Refuse == "" {
		p, ok := s.sqlPrep[statement.FoldName(b.Execute)]
		if !ok {
			return nil, "EXECUTE of " + b.Execute + ", which was not prepared from a literal text in this session", nil
		}
		b = pol.BoundWrite(pol.Classify(p.Text, p.DB, p.Dialect), p.DB)
		if b.Execute != "" {
			return nil, "EXECUTE of a prepared EXECUTE", nil
		}
	}
	if b.Refuse != "" {
		return nil, b.Refuse, nil
	}
	if !b.Write {
		return nil, "", nil
	}
	for _, t := range b.Tables {
		if t.Schema == "" {
			continue // no database selected: the server refuses it
		}
		info, err := s.srv.tableInfo(s.be, s.beAddr, t.Schema, t.Name)
		if err != nil {
			return nil, "", err
		}
		switch {
		case !info.found:
			// A temporary table of this session (it vanishes with the
			// session) or no table at all (the server refuses the write).
		case info.view:
			return nil, fmt.Sprintf("%s.%s is a view: the engine of the table it writes cannot be checked", t.Schema, t.Name), nil
		case !transactional(info.engine):
			return nil, fmt.Sprintf("%s.%s uses the %s engine, whose writes cannot be rolled back", t.Schema, t.Name, info.engine), nil
		case info.triggers:
			return nil, fmt.Sprintf("%s.%s has triggers: the rows they change are not counted", t.Schema, t.Name), nil
		case info.cascades:
			return nil, fmt.Sprintf("%s.%s is the parent of a foreign key with ON DELETE/UPDATE CASCADE or SET NULL: the rows it changes in other tables are not counted", t.Schema, t.Name), nil
		}
	}
	return &boundedRun{max: s.lim.MaxAffectedRows}, "", nil
}

// inTransaction reports a backend session whose next write joins a
// transaction (one is open, or autocommit is off).
func inTransaction(status uint16) bool {
	return status&gm.SERVER_STATUS_IN_TRANS != 0 || status&gm.SERVER_STATUS_AUTOCOMMIT == 0
}

// forwardBounded runs a write under max_affected_rows. Outside a transaction
// with autocommit on: START TRANSACTION, the statement, then COMMIT, or
// ROLLBACK when it changed too many rows; inside one: SAVEPOINT, the
// statement, then RELEASE SAVEPOINT, or ROLLBACK TO SAVEPOINT. The first
// command travels with the statement, so the extra cost is the one round
// trip that ends it. The client sees the statement's own OK (affected rows,
// insert id, warnings, and the transaction state it would have had) or ERR,
// or an ERR 1226 naming the limit.
func (s *session) forwardBounded(p []byte, seq uint8, st *stmtLife, run *boundedRun) error {
	st.fwd = s.srv.opts.Now()
	if s.lim.StatementTimeout != s.mstApplied {
		if err := s.syncTimeout(); err != nil {
			return s.backendLost(seq+1, err)
		}
	}
	s.digest.Reset()
	s.cur.results = nil
	savepoint, probed := false, false
	if s.txKnown {
		savepoint = inTransaction(s.txStatus)
	} else {
		// The last reply was an error, which may have ended a transaction
		// (a deadlock rolls it back): ask before choosing. Outside a
		// transaction with autocommit on, this SAVEPOINT does nothing.
		ok, serr, err := s.ownExec("SAVEPOINT " + savepointName)
		if err != nil {
			return s.backendLost(seq+1, err)
		}
		if serr != nil {
			return s.failBounded(seq, st, serr, "SAVEPOINT")
		}
		s.noteStatus(ok.Status)
		savepoint = inTransaction(ok.Status)
		probed = savepoint
	}
	first := ""
	if !savepoint {
		first = "START TRANSACTION"
	} else if !probed {
		first = "SAVEPOINT " + savepointName
	}
	if first != "" {
		s.backend.Seq = 0
		if err := s.backend.WritePacket(append([]byte{gm.COM_QUERY}, first...)); err != nil {
			return s.backendLost(seq+1, err)
		}
	}
	s.backend.Seq = wire.FirstSeq(seq, len(p))
	if err := s.backend.WritePacket(p); err != nil {
		return s.backendLost(seq+1, err)
	}
	if err := s.backend.Flush(); err != nil {
		return s.backendLost(seq+1, err)
	}
	s.srv.opts.Observer.Bytes(0, len(p)+4)
	var firstErr *wire.ServerError
	if first != "" {
		_, serr, err := s.readOwnReply()
		if err != nil {
			return s.backendLost(seq+1, err)
		}
		firstErr = serr
	}
	if s.lim.StatementTimeout > 0 {
		s.armWatchdog()
	}
	reply, rows, err := s.readBounded(seq, p[0] == gm.COM_STMT_EXECUTE)
	if s.lim.StatementTimeout > 0 {
		s.disarmWatchdog()
	}
	if err != nil {
		return err
	}
	t := &s.tracker
	if firstErr != nil {
		// The statement ran unguarded: say so rather than pretend.
		s.log.Error("max_affected_rows: could not open a transaction", "command", first, "err", firstErr.Message)
		if t.Err == nil && !rows && t.Affected > run.max {
			s.hit(record.LimitMaxAffectedRows)
			t.Err = &wire.ServerError{Code: wire.ErrCodeLimit, State: "42000", Message: kindMsg(&s.lim, record.LimitMaxAffectedRows,
				fmt.Sprintf("statement changed %d rows, more than %d, and could not be rolled back: %s failed: %s", t.Affected, run.max, first, firstErr.Message))}
			return s.replyClient(wire.ErrPacket(t.Err.Code, t.Err.State, t.Err.Message))
		}
		s.txKnown = false
		return s.replyClient(reply)
	}
	switch {
	case t.Err != nil:
		// The server undid the failed statement; end what we opened.
		end := rollbackSQL
		if savepoint {
			end = "RELEASE SAVEPOINT " + savepointName
		}
		if err := s.endBounded(end, true); err != nil {
			return s.backendLost(s.client.Seq, err)
		}
		return s.replyClient(reply)
	case rows:
		if err := s.undoBounded(savepoint); err != nil {
			return s.backendLost(s.client.Seq, err)
		}
		s.hit(record.LimitMaxAffectedRows)
		t.Err = &wire.ServerError{Code: wire.ErrCodeLimit, State: "42000", Message: kindMsg(&s.lim, record.LimitMaxAffectedRows,
			"statement returned rows, so the rows it changed cannot be counted: rolled back")}
		return s.replyClient(wire.ErrPacket(t.Err.Code, t.Err.State, t.Err.Message))
	case t.Affected > run.max:
		if err := s.undoBounded(savepoint); err != nil {
			return s.backendLost(s.client.Seq, err)
		}
		s.hit(record.LimitMaxAffectedRows)
		t.Err = &wire.ServerError{Code: wire.ErrCodeLimit, State: "42000", Message: kindMsg(&s.lim, record.LimitMaxAffectedRows,
			fmt.Sprintf("statement changed %d rows, more than %d: rolled back", t.Affected, run.max))}
		return s.replyClient(wire.ErrPacket(t.Err.Code, t.Err.State, t.Err.Message))
	}
	if savepoint {
		if err := s.endBounded("RELEASE SAVEPOINT "+savepointName, true); err != nil {
			return s.backendLost(s.client.Seq, err)
		}
		return s.replyClient(reply)
	}
	ok, serr, err := s.ownExec(commitSQL)
	if err != nil {
		return s.backendLost(s.client.Seq, err)
	}
	if serr != nil {
		// A COMMIT that fails (a deadlock) is the statement's failure.
		s.txKnown = false
		t.Err = serr
		return s.replyClient(wire.ErrPacket(serr.Code, serr.State, serr.Message))
	}
	s.noteStatus(ok.Status)
	// The client sees the state it would have without the transaction.
	const txBits = gm.SERVER_STATUS_IN_TRANS | gm.SERVER_STATUS_AUTOCOMMIT | gm.SERVER_STATUS_IN_TRANS_READONLY
	wire.SetOKStatus(reply, t.Status&^txBits|ok.Status&txBits)
	return s.replyClient(reply)
}

// readBounded reads the reply of a bounded write into s.tracker. A LOCAL
// INFILE exchange runs as usual; the final OK or ERR is returned, not sent
// (nil when the proxy already answered the client). rows reports a result
// set (discarded).
func (s *session) readBounded(seq uint8, binary bool) ([]byte, bool, error) {
	t := &s.tracker
	t.Start(wire.ReplyResult, binary)
	s.client.Seq = seq + 1
	var last []byte
	rows := false
	for !t.Done() {
		pl, _, err := s.backend.ReadPacket()
		if err != nil {
			return nil, false, s.backendLost(s.client.Seq, err)
		}
		pk, err := t.Feed(pl)
		if err != nil {
			return nil, false, s.backendLost(s.client.Seq, err)
		}
		switch pk {
		case wire.PktLocalInfile:
			if err := s.localInfile(pl); err != nil {
				return nil, false, err
			}
			if t.Err != nil && t.Done() {
				// Refused by the proxy: the client has its ERR already.
				return nil, false, nil
			}
		case wire.PktOK:
			last = append(last[:0], pl...)
		case wire.PktErr:
			out := pl
			if s.lim.StatementTimeout > 0 {
				// A statement_timeout firing reads as that limit.
				out = s.timeoutErr(pl, t)
			}
			last = append(last[:0], out...)
		case wire.PktColumnCount:
			rows = true
		}
	}
	return last, rows, nil
}

// undoBounded rolls back a write that went over the limit.
func (s *session) undoBounded(savepoint bool) error {
	if !savepoint {
		return s.endBounded(rollbackSQL, false)
	}
	// Both travel together: the second cannot fail if the first did not.
	s.backend.Seq = 0
	if err := s.backend.WritePacket(append([]byte{gm.COM_QUERY}, "ROLLBACK TO SAVEPOINT "+savepointName...)); err != nil {
		return err
	}
	s.backend.Seq = 0
	if err := s.backend.WritePacket(append([]byte{gm.COM_QUERY}, "RELEASE SAVEPOINT "+savepointName...)); err != nil {
		return err
	}
	if err := s.backend.Flush(); err != nil {
		return err
	}
	_, serr1, err := s.readOwnReply()
	if err != nil {
		return err
	}
	ok, serr2, err := s.readOwnReply()
	if err != nil {
		return err
	}
	if serr1 != nil || serr2 != nil {
		s.log.Error("max_affected_rows: roll back to savepoint", "rollback", serr1, "release", serr2)
		s.txKnown = false
		return nil
	}
	s.noteStatus(ok.Status)
	return nil
}

// endBounded ends the transaction or savepoint a bounded write opened.
// tolerant ignores an error (a savepoint a deadlock took away).
func (s *session) endBounded(sql string, tolerant bool) error {
	ok, serr, err := s.ownExec(sql)
	if err != nil {
		return err
	}
	if serr != nil {
		if !tolerant {
			s.log.Error("max_affected_rows: end transaction", "command", sql, "err", serr.Message)
		}
		s.txKnown = false
		return nil
	}
	s.noteStatus(ok.Status)
	return nil
}

// replyClient sends the statement's final packet to the client.
func (s *session) replyClient(pl []byte) error {
	if pl != nil {
		if err := s.client.WritePacket(pl); err != nil {
			return s.clientLost(err)
		}
		s.srv.opts.Observer.Bytes(len(pl)+4, 0)
	}
	if err := s.client.Flush(); err != nil {
		return s.clientLost(err)
	}
	return nil
}

// failBounded answers a statement that could not be bounded because the
// proxy's own command failed.
func (s *session) failBounded(seq uint8, st *stmtLife, serr *wire.ServerError, command string) error {
	s.txKnown = false
	s.hit(record.LimitMaxAffectedRows)
	s.tracker.Start(wire.ReplyResult, false)
	s.tracker.Err = &wire.ServerError{Code: wire.ErrCodeLimit, State: "42000", Message: kindMsg(&s.lim, record.LimitMaxAffectedRows,
		fmt.Sprintf("%s failed, so the statement was not run: %s", command, serr.Message))}
	s.client.Seq = seq + 1
	return s.replyClient(wire.ErrPacket(s.tracker.Err.Code, s.tracker.Err.State, s.tracker.Err.Message))
}
