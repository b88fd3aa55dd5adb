package proxy

import (
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// A statement's life, for every command that carries one (COM_QUERY,
// COM_INIT_DB, COM_FIELD_LIST, COM_PROCESS_KILL, COM_STMT_*, and the
// commands the proxy refuses): journal → decide → forward → relay →
// outcome, owned by one stmtLife. Whatever ends the statement, it ends
// through here, and the answer says what the client was written.
//
// The journal policy is one for all of them: the statement record is
// written (synchronously) before anything reaches the backend, and a
// journal that refuses it refuses the statement: ERR 1180, never
// forwarded. The outcome record follows asynchronously, after the client
// has its reply. A command the server never answers (COM_STMT_CLOSE,
// COM_STMT_SEND_LONG_DATA, COM_QUIT) never gets an ERR from the proxy
// either: a stray packet would be read as the reply to the client's next
// command.

// reply says what the client was written for a command.
type reply uint8

const (
	// replyPending: nothing yet; the statement goes on (guard passed it).
	replyPending reply = iota
	// replyNone: nothing was written and nothing will be: the command has
	// no reply (forwarded or refused), or the client is gone.
	replyNone
	// replyRefused: the proxy's ERR was written; the backend never saw the
	// statement.
	replyRefused
	// replyRelayed: the statement was forwarded and its reply (or an ERR in
	// its place, when the backend failed) relayed.
	replyRelayed
)

// done reports whether the statement is over (not pending).
func (r reply) done() bool { return r != replyPending }

// written reports whether a reply was written to the client.
func (r reply) written() bool { return r == replyRefused || r == replyRelayed }

func (r reply) String() string {
	switch r {
	case replyPending:
		return "pending"
	case replyNone:
		return "none"
	case replyRefused:
		return "refused"
	case replyRelayed:
		return "relayed"
	}
	return "unknown"
}

// stmtLife is one statement from its command to its outcome record. A
// session runs one statement at a time, so it keeps one (session.cur) and
// reuses it: starting a statement allocates nothing, and the journal,
// which encodes a record before Append returns and keeps nothing of it,
// is lent the records and the values their pointers point to.
type stmtLife struct {
	s   *session
	seq uint8 // the command's sequence id: a reply starts at seq+1
	// noReply marks a command the server never answers: a refusal is
	// journaled but nothing is written to the client, whose next read
	// belongs to its next command.
	noReply bool

	id      uint64
	command string
	sql     string
	// db and dialect are where and how the statement's names and text are
	// read: the session's at the command, a prepared statement's at its
	// PREPARE (the server binds it there, whatever USE or SET follow).
	db      string
	dialect sqltext.Dialect
	// runs is what an EXECUTE of SQL-level prepared statements runs (their
	// texts): the approver reads it, and an approval holds for it only.
	runs    string
	st      *statement.Statement
	params  []record.Param
	verdict *statement.Verdict
	approve *Approval
	plan    MaskPlan
	planned bool // masking already planned (at PREPARE)
	// deferApproval: a policy "approve" becomes "allow" here and is asked
	// at each EXECUTE (PREPARE reads nothing and changes nothing).
	deferApproval bool
	journaled     bool // the statement record is written
	start         time.Time
	fwd           time.Time // when forwarding started
	// blocked: the statement never reached the backend, and why; failed:
	// it ended in a protocol error before reaching it.
	blocked *record.ErrorInfo
	failed  *record.ErrorInfo
	errInfo record.ErrorInfo // what blocked or failed points to
	slot    bool             // holds a max_concurrent_statements slot (released in finish)

	limHit    *record.LimitHit // the limit that fired on this statement
	truncated bool             // the result was truncated at a limit
	// results keeps rows for the outcome; cursorMasker masks rows of the
	// cursor an EXECUTE opened.
	results      *record.ResultCollector
	cursorMasker RowMasker

	// What the records point to, held here so they cost no allocation.
	v           statement.Verdict
	rec         record.Record
	recRows     uint64
	recAffected uint64
	recDur      int64
	recPolicy   record.Decision
}

// statement starts the session's next statement.
func (s *session) statement(command, sql string, seq uint8) *stmtLife {
	l := &s.cur
	*l = stmtLife{s: s, seq: seq, command: command, sql: sql, db: s.db, dialect: s.dialect, start: s.srv.opts.Now()}
	return l
}

// silentStatement starts a statement whose command has no reply.
func (s *session) silentStatement(command, sql string) *stmtLife {
	l := s.statement(command, sql, 0)
	l.noReply = true
	return l
}

// keptSQL is the statement's text as the journal and approvers get it: a
// statement whose literals may be a password keeps its shape (digest) only.
func (l *stmtLife) keptSQL() string {
	if l.st == nil || !(l.st.SetsPassword || sqltext.MentionsPassword(l.sql)) {
		return l.sql
	}
	if l.st.Digest != "" {
		return l.st.Digest
	}
	return "(a statement naming a password; its text is not kept)"
}

// journal writes the statement's write-ahead record. On a journal failure
// the statement is over: refused (ERR 1180, unless the command has no
// reply) and its outcome journaled; the answer says what the client got.
// Otherwise it is replyPending.
func (l *stmtLife) journal() (reply, error) {
	s := l.s
	s.statements++
	l.id = s.statements
	rec := &l.rec
	*rec = record.Record{Event: record.EventStatement, SessionID: s.id, StatementID: l.id, Command: l.command,
		DB: l.db, Params: l.params}
	rec.SetSQL(l.keptSQL())
	if l.st != nil {
		rec.Digest = l.st.Digest
		rec.Statement = l.st.Classification
	}
	if s.identity != nil && s.identity.Attribute != nil && l.sql != "" {
		rec.Attribution = s.identity.Attribute(l.sql)
	}
	if err := s.srv.append(rec); err != nil {
		s.log.Error("audit statement", "err", err)
		l.errInfo = record.ErrorInfo{Code: wire.ErrCodeAuditFailed, Message: "sqlwarden: audit journal unavailable, statement refused: " + err.Error()}
		l.blocked = &l.errInfo
		l.finish()
		return l.writeErr(l.errInfo.Code, "HY000", l.errInfo.Message)
	}
	l.journaled = true
	return replyPending, nil
}

// refuse ends a statement the backend never sees: journaled (the statement
// unless it already is, then its outcome, blocked by v with e), and the
// client gets an ERR with e's code and message and SQLSTATE state, unless
// the command has no reply.
func (l *stmtLife) refuse(v *statement.Verdict, e record.ErrorInfo, state string) (reply, error) {
	if v != nil {
		l.verdict = v
	}
	if !l.journaled {
		if r, err := l.journal(); r.done() {
			return r, err
		}
	}
	l.errInfo = e
	l.blocked = &l.errInfo
	l.finish()
	return l.writeErr(e.Code, state, e.Message)
}

// deny refuses a statement by a protocol rule (rule "protocol").
func (l *stmtLife) deny(code uint16, state, msg string) (reply, error) {
	l.v = statement.Verdict{Rule: "protocol", Action: record.ActionDeny, Message: msg}
	return l.refuse(&l.v, record.ErrorInfo{Code: code, Message: msg}, state)
}

// fail journals a statement that ended in a protocol error the caller
// answers (or ends the session for) itself.
func (l *stmtLife) fail(code uint16, msg string) {
	if r, _ := l.journal(); r.done() {
		return
	}
	l.errInfo = record.ErrorInfo{Code: code, Message: msg}
	l.failed = &l.errInfo
	l.finish()
}

// writeErr answers the statement with the proxy's ERR, or with nothing
// when its command has no reply.
func (l *stmtLife) writeErr(code uint16, state, msg string) (reply, error) {
	if l.noReply {
		return replyNone, nil
	}
	l.s.writeErrSeq(l.seq+1, code, state, msg)
	return replyRefused, l.s.flushAfterErr()
}

// forward runs a judged and journaled statement on the backend: bounded by
// run (max_affected_rows) when set, the reply relayed to the client. after,
// when set, runs once a reply arrived whole, before the outcome is
// journaled, to bring the connection's state up to date with it.
func (l *stmtLife) forward(p []byte, kind wire.ReplyKind, run *boundedRun, after func()) (reply, error) {
	s := l.s
	s.releaseLarge() // judged and journaled: the server's time is not the budget's
	if l.st != nil && l.st.ChangesSchema {
		if sc, ok := s.srv.opts.Masker.(schemaChanges); ok {
			// Masking follows tables and views: results planned against the
			// schema before this statement are masked whole until it is done.
			defer sc.SchemaChange()()
		}
	}
	var err error
	if run != nil {
		err = s.forwardBounded(p, l.seq, l, run)
	} else {
		err = s.forward(p, l.seq, kind, l)
	}
	if err == nil && after != nil {
		after()
	}
	l.finish()
	return replyRelayed, err
}

// send forwards a statement whose command the server never answers.
func (l *stmtLife) send(p []byte) (reply, error) {
	s := l.s
	l.fwd = s.srv.opts.Now()
	s.tracker.Start(wire.ReplyNone, false)
	err := s.send(p)
	if err != nil {
		l.errInfo = record.ErrorInfo{Code: wire.ErrCodeBackend, Message: "sqlwarden: lost connection to the database: " + err.Error()}
		l.failed = &l.errInfo
	}
	l.finish()
	return replyNone, err
}

// fetch forwards a COM_STMT_FETCH and relays the rows of cursor.
func (l *stmtLife) fetch(p []byte, cursor *cursorState) (reply, error) {
	s := l.s
	l.fwd = s.srv.opts.Now()
	err := s.forwardFetch(p, l.seq, cursor)
	l.finish()
	return replyRelayed, err
}

// forwardFetch sends a COM_STMT_FETCH and relays its rows.
func (s *session) forwardFetch(p []byte, seq uint8, cursor *cursorState) error {
	s.backend.Seq = wire.FirstSeq(seq, len(p))
	if err := s.backend.WritePacket(p); err != nil {
		return s.backendLost(seq+1, err)
	}
	if err := s.backend.Flush(); err != nil {
		return s.backendLost(seq+1, err)
	}
	if s.lim.StatementTimeout > 0 {
		s.armWatchdog()
		defer s.disarmWatchdog()
	}
	return s.relay(wire.ReplyResult, true, seq+1, nil, cursor)
}

// finish writes the outcome record, from the tracker's summary of the reply
// unless the statement was blocked or failed.
func (l *stmtLife) finish() {
	s := l.s
	now := s.srv.opts.Now()
	t := &s.tracker
	l.recDur = now.Sub(l.start).Microseconds()
	rec := &l.rec
	*rec = record.Record{Event: record.EventOutcome, SessionID: s.id, StatementID: l.id, DurationUS: &l.recDur}
	if l.slot {
		s.ident.inflight.Add(-1)
		l.slot = false
	}
	if l.limHit != nil {
		rec.Limit, rec.Truncated = l.limHit, l.truncated
	}
	switch {
	case l.blocked != nil:
		rec.Status = record.StatusBlocked
		rec.Error = l.blocked
	case l.failed != nil:
		rec.Status = record.StatusError
		rec.Error = l.failed
	case t.Err != nil:
		rec.Status = record.StatusError
		rec.Error = &record.ErrorInfo{Code: t.Err.Code, State: t.Err.State, Message: t.Err.Message}
	default:
		rec.Status = record.StatusSuccess
		l.recRows, l.recAffected = t.Rows, t.Affected
		rec.Rows, rec.AffectedRows = &l.recRows, &l.recAffected
		// The journal encodes the record before Append returns, so the
		// tracker's slice can be lent, not copied.
		rec.Columns = t.Columns
		if t.Rows > 0 && s.digest.Rows() == t.Rows {
			rec.ResultDigest = s.digest.Sum()
		}
		if l.results != nil {
			l.results.Apply(rec)
			l.results = nil
		}
	}
	if l.verdict != nil {
		l.recPolicy = record.Decision{Rule: l.verdict.Rule, Action: l.verdict.Action, Message: l.verdict.Message}
		rec.Policy = &l.recPolicy
		if l.approve != nil {
			rec.Policy.Approver = l.approve.Approver
			rec.Policy.Reason = l.approve.Reason
			rec.Policy.ApprovalID = l.approve.ID
		}
	}
	if l.plan != nil {
		rec.Masked = l.plan.Summary()
		var n uint64
		for _, m := range rec.Masked {
			n += m.Count
		}
		if n > 0 {
			s.srv.opts.Observer.Masked(n)
		}
	}
	kind := "OTHER"
	if l.st != nil && l.st.Classification != nil {
		kind = l.st.Classification.Kind
	} else if l.command != "COM_QUERY" {
		kind = l.command
	}
	var added time.Duration
	if !l.fwd.IsZero() {
		added = l.fwd.Sub(l.start)
	}
	s.srv.opts.Observer.Statement(kind, rec.Status, now.Sub(l.start), added)
	if err := s.srv.appendAsync(rec); err != nil {
		s.log.Error("audit outcome", "err", err)
	}
}
