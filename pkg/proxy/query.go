package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/pkg/wire/rows"
)

// query runs a COM_QUERY through the pipeline.
func (s *session) query(p []byte, seq uint8) (reply, error) {
	sql := string(wire.Command(p).Arg())
	st := s.statement("COM_QUERY", sql, seq)
	st.st = s.srv.opts.Policy.Classify(sql, s.db, s.dialect)
	if st.st.DynamicSQL {
		resolved, text, err := s.resolveDynamic(st.st)
		if err != nil {
			return replyNone, err
		}
		st.st = resolved
		if text != "" {
			st.sql = text // what the server prepares, for the journal and masking
		}
	}
	if slices.Contains(st.st.Kinds, "EXECUTE") {
		if err := s.executing(st); err != nil {
			return replyNone, err
		}
	}
	if allPrepares(st.st.Kinds) {
		// Preparing reads nothing and changes nothing: the human is asked
		// at each EXECUTE, which is judged by what it runs.
		st.deferApproval = true
	}
	if rewritten, msg := s.checkKillSQL(sql, st.st); msg != "" {
		st.v = statement.Verdict{Rule: "kill-own-identity", Action: record.ActionDeny, Message: msg}
		return st.refuse(&st.v, record.ErrorInfo{Code: wire.ErrCodeBlocked, Message: msg}, "42000")
	} else if rewritten != "" {
		// The client killed the id its greeting gave it: the backend knows
		// that connection by its own thread id.
		sql, st.sql = rewritten, rewritten
		p = append([]byte{gm.COM_QUERY}, rewritten...)
	}
	run, r, err := s.checkLimits(st)
	if r.done() {
		return r, err
	}
	if r, err := s.guard(st); r.done() {
		return r, err
	}
	return st.forward(p, wire.ReplyResult, run, func() {
		s.notePrepares(st.st, s.tracker.Err != nil)
		if s.tracker.Err == nil && st.st.UseDB != "" {
			s.db = st.st.UseDB
		}
	})
}

// verdictKey identifies a cacheable decision within a session: the
// identity and the session's other attributes are fixed for its lifetime;
// the sql_mode is not.
type verdictKey struct {
	digest, db, command string
	dialect             sqltext.Dialect
}

// verdictCache is a session's verdicts by statement shape, for one policy
// version.
type verdictCache struct {
	m   map[verdictKey]statement.Verdict
	ver uint64
}

// decide asks the policy, reusing this session's verdict for a statement
// of the same shape (digest) when its classification says that is exact.
func (s *session) decide(st *stmtLife) statement.Verdict {
	pol := s.srv.opts.Policy
	cacheable := st.st.Cacheable && st.st.Digest != ""
	var key verdictKey
	if cacheable {
		if ver := pol.Version(); ver != s.verdicts.ver || s.verdicts.m == nil || len(s.verdicts.m) > 512 {
			s.verdicts.m = make(map[verdictKey]statement.Verdict)
			s.verdicts.ver = ver
		}
		key = verdictKey{st.st.Digest, st.db, st.command, st.dialect}
		if v, ok := s.verdicts.m[key]; ok {
			return v
		}
	}
	v := pol.Decide(s.identity.record(), st.st, statement.Session{ID: s.id, DB: st.db, User: s.hs.User, ClientAddr: s.raw.RemoteAddr().String(), Command: st.command})
	if cacheable {
		s.verdicts.m[key] = v
	}
	return v
}

// guard applies policy and masking to a classified statement, writes its
// write-ahead record and waits for a human when policy says so. Pending:
// the statement may be forwarded; anything else: it is over (the reply
// says what the client got; err ends the session when non-nil).
func (s *session) guard(st *stmtLife) (reply, error) {
	srv := s.srv
	if st.st != nil && st.st.Refused != "" {
		return st.refuseText()
	}
	// The verdict lives in the statement's life, reused, not on the heap
	// per statement.
	st.v = s.decide(st)
	v := &st.v
	st.verdict = v
	if st.deferApproval && v.Action == record.ActionApprove {
		// Preparing reads nothing and changes nothing: the human is asked at EXECUTE.
		*v = statement.Verdict{Rule: v.Rule, Action: record.ActionAllow, Message: "approval deferred to execute"}
	}
	srv.opts.Observer.Decision(v.Rule, v.Action)
	if st.st.LocalInfile && !srv.opts.AllowLocalInfile && v.Action != record.ActionDeny {
		*v = statement.Verdict{Rule: "local-infile", Action: record.ActionDeny, Message: "LOAD DATA LOCAL INFILE is disabled (set allow_local_infile)"}
	}
	switch v.Action {
	case record.ActionDeny:
		return st.block(v, wire.ErrCodeBlocked, v.ClientMessage())
	case record.ActionAllow, record.ActionApprove:
	default:
		return st.block(v, wire.ErrCodeBlocked, fmt.Sprintf("sqlwarden: blocked: unknown policy action %q", v.Action))
	}
	if !st.planned {
		if r, err := s.planMasking(st); r.done() {
			return r, err
		}
	}
	if s.admitOn {
		if msg, ok := s.admit(st); !ok {
			return s.refuseLimit(st, msg)
		}
	}
	if r, err := st.journal(); r.done() {
		return r, err
	}
	if v.Action == record.ActionApprove {
		return s.await(st)
	}
	return replyPending, nil
}

// block refuses a statement policy (or masking) denied.
func (l *stmtLife) block(v *statement.Verdict, code uint16, msg string) (reply, error) {
	return l.refuse(v, record.ErrorInfo{Code: code, Message: msg}, "42000")
}

// planMasking asks the masker how to mask the statement's results; a
// statement that would leak a masked column is refused (and journaled) here.
func (s *session) planMasking(st *stmtLife) (reply, error) {
	r, err := s.planColumnMasking(st)
	if !r.done() && st.st != nil && st.st.ShowsCredentials {
		// Whatever the masking configuration: no password hash or
		// authentication string reaches a client.
		st.plan = &credentialPlan{inner: st.plan}
	}
	return r, err
}

// planColumnMasking plans the configured column masking.
func (s *session) planColumnMasking(st *stmtLife) (reply, error) {
	if s.srv.opts.Masker == nil || st.sql == "" {
		return replyPending, nil
	}
	plan, err := s.srv.opts.Masker.Plan(s.ctx, s.identity, st.db, st.sql, st.st)
	if err != nil {
		var md *MaskDenied
		rule, msg := "masking", err.Error()
		if errors.As(err, &md) {
			rule, msg = md.Rule, md.Message
		}
		dv := &statement.Verdict{Rule: rule, Action: record.ActionDeny, Message: msg}
		return st.block(dv, wire.ErrCodeBlocked, dv.ClientMessage())
	}
	st.plan = plan
	return replyPending, nil
}

// refuseText journals and refuses a statement whose text cannot be judged
// (sqltext could not decide how the server reads it).
func (l *stmtLife) refuseText() (reply, error) {
	msg := "sqlwarden: statement refused: " + l.st.Refused
	l.v = statement.Verdict{Rule: "sql-text", Action: record.ActionDeny, Message: l.st.Refused}
	return l.refuse(&l.v, record.ErrorInfo{Code: wire.ErrCodeNotSupported, Message: msg}, "42000")
}

func (s *session) flushAfterErr() error {
	if s.client.Unflushed() > 0 {
		return s.client.Flush()
	}
	return nil
}

// await holds a statement for a human decision. The client connection just
// idles meanwhile; a client that hangs up withdraws its request.
func (s *session) await(st *stmtLife) (reply, error) {
	s.releaseLarge() // a human's time is not the large-statement budget's
	if s.srv.opts.Approver == nil {
		return st.refuse(nil, record.ErrorInfo{Code: wire.ErrCodeApprovalDenied, Message: "sqlwarden: statement needs approval but no approver is configured"}, "42000")
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	// Watch for the client going away while we wait.
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		// Peek returns when the client sends something (pipelining: fine),
		// hangs up (withdraw), or the deadline set below ends the watch.
		if _, err := s.client.Peek(1); err != nil && !isTimeout(err) {
			cancel()
		}
	}()
	a, err := s.srv.opts.Approver.Request(ctx, &ApprovalAsk{Identity: s.identity, SessionID: s.id, Statement: st.st,
		Command: st.command, SQL: st.keptSQL(), DB: st.db, Dialect: st.dialect, Params: st.params, Verdict: *st.verdict, Executes: st.runs})
	_ = s.raw.SetReadDeadline(time.Now())
	<-watchDone
	_ = s.raw.SetReadDeadline(time.Time{})
	if err != nil && a.Status == "" {
		a = Approval{Status: "denied", Reason: err.Error()}
	}
	st.approve = &a
	if a.Approved {
		return replyPending, nil
	}
	var msg string
	switch a.Status {
	case "timeout":
		msg = "sqlwarden: approval timed out: statement not executed"
	case "withdrawn":
		// Nobody to answer: journaled, and the session ends.
		st.noReply = true
		st.refuse(nil, record.ErrorInfo{Code: wire.ErrCodeApprovalDenied, Message: "sqlwarden: approval withdrawn: client disconnected"}, "")
		return replyNone, &protocolError{side: "client", err: errors.New("disconnected while awaiting approval")}
	case "pending":
		msg = fmt.Sprintf("sqlwarden: approval required: request %s pending; re-run the identical statement once approved (valid %s)", a.ID, a.RetryValid)
	case "unavailable":
		msg = "sqlwarden: approval store unavailable"
	default:
		if a.Mode == "retry" {
			msg = fmt.Sprintf("sqlwarden: approval request %s denied by %s: %s", a.ID, orDash(a.Approver), orDash(a.Reason))
		} else {
			msg = fmt.Sprintf("sqlwarden: statement denied by approver %s: %s", orDash(a.Approver), orDash(a.Reason))
		}
	}
	st.v = statement.Verdict{Rule: st.verdict.Rule, Action: record.ActionApprove, Message: a.Status, ApprovalMode: a.Mode}
	return st.refuse(&st.v, record.ErrorInfo{Code: wire.ErrCodeApprovalDenied, Message: msg}, "42000")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// initDB handles COM_INIT_DB.
func (s *session) initDB(p []byte, seq uint8) (reply, error) {
	db := string(wire.Command(p).Arg())
	st := s.statement("COM_INIT_DB", "USE `"+strings.ReplaceAll(db, "`", "``")+"`", seq)
	st.st = s.srv.opts.Policy.Classify(st.sql, s.db, s.dialect)
	if r, err := s.guard(st); r.done() {
		return r, err
	}
	return st.forward(p, wire.ReplyResult, nil, func() {
		if s.tracker.Err == nil {
			s.db = db
		}
	})
}

// fieldList handles COM_FIELD_LIST (the column definitions of a table in
// the current database), judged as the SHOW COLUMNS it is equivalent to:
// the policy sees the table, and the credential tables stay closed.
func (s *session) fieldList(p []byte, seq uint8) (reply, error) {
	table := string(wire.ParseFieldList(p))
	st := s.statement("COM_FIELD_LIST", table, seq)
	st.st = s.srv.opts.Policy.Classify("SHOW COLUMNS FROM "+quoteIdent(table), s.db, s.dialect)
	// It returns definitions, no rows: nothing to mask.
	st.planned = true
	if r, err := s.guard(st); r.done() {
		return r, err
	}
	return st.forward(p, wire.ReplyFieldList, nil, nil)
}

// forward sends a command to the backend and streams the reply to the client.
func (s *session) forward(p []byte, seq uint8, kind wire.ReplyKind, st *stmtLife) error {
	if st != nil {
		st.fwd = s.srv.opts.Now()
	}
	if s.lim.StatementTimeout != s.mstApplied {
		if err := s.syncTimeout(); err != nil {
			return s.backendLost(seq+1, err)
		}
	}
	// seq is the last physical packet's: a command of 16 MiB or more
	// started earlier.
	s.backend.Seq = wire.FirstSeq(seq, len(p))
	if err := s.backend.WritePacket(p); err != nil {
		return s.backendLost(seq+1, err)
	}
	// The watch starts before the send: FlushAwait returns when the reply
	// begins to arrive.
	watch := st != nil && s.lim.StatementTimeout > 0
	if watch {
		s.armWatchdog()
	}
	if err := s.backend.FlushAwait(); err != nil {
		if watch {
			s.disarmWatchdog()
		}
		return s.backendLost(seq+1, err)
	}
	s.srv.opts.Observer.Bytes(0, len(p)+4)
	var plan MaskPlan
	if st != nil {
		plan = st.plan
	}
	err := s.relay(kind, p[0] == gm.COM_STMT_EXECUTE, seq+1, plan, nil)
	if watch {
		s.disarmWatchdog()
		if s.timedOut() && s.cur.limHit == nil {
			// Stopped at the limit without an error to say so (a killed
			// SLEEP returns 1): the record says it.
			s.hit(record.LimitStatementTimeout)
		}
	}
	if err != nil {
		return err
	}
	// A statement that may have changed how the backend reads the next one
	// (or a reply whose status says so) is followed by reading the session
	// back: session tracking alone misses a route that turns it off.
	if s.needReread || (st != nil && st.st != nil && st.st.Reread && p[0] != gm.COM_STMT_PREPARE) {
		return s.rereadSession()
	}
	return nil
}

// backendLost ends the session after the backend failed; the client gets an
// ERR at the point of the reply it was waiting for: MariaDB's own for a
// killed connection (1927, 70100). Not 2013: that is a client library's
// code, and libmariadb reads a client-range code from a server as a
// malformed packet (2027).
func (s *session) backendLost(seq uint8, err error) error {
	s.tracker.Err = &wire.ServerError{Code: wire.ErrCodeConnKilled, State: "70100", Message: "sqlwarden: lost connection to the database: " + err.Error()}
	s.client.Seq = seq
	s.writeErr(s.tracker.Err.Code, s.tracker.Err.State, s.tracker.Err.Message)
	return &protocolError{side: "backend", err: err}
}

// cursorState remembers how to mask rows fetched later from an open cursor,
// and what its fetches have returned so far (max_rows / max_result_bytes
// count over the whole cursor).
type cursorState struct {
	cols   int
	masker RowMasker
	id     uint32
	status uint16 // server status when the cursor opened
	rows   uint64
	bytes  uint64
	done   bool // a cap ended it; the server cursor is closed
}

// relay streams one reply from the backend to the client, packet by packet.
// Rows are masked in flight when plan says so; nothing else is buffered
// except the column definitions of a masked result set.
func (s *session) relay(kind wire.ReplyKind, binary bool, seq uint8, plan MaskPlan, cursor *cursorState) error {
	t := &s.tracker
	if cursor != nil {
		t.StartFetch(cursor.cols)
	} else {
		t.Start(kind, binary)
	}
	s.client.Seq = seq
	if kind == wire.ReplyNone {
		return nil
	}
	if kind == wire.ReplyResult {
		// Until the reply ends normally, the transaction state is unknown.
		s.txKnown = false
	}
	var rm RowMasker
	if cursor != nil {
		rm = cursor.masker
	}
	// A reply over masked data hides its warnings: how many a function of
	// a masked value raised (CAST(REPLACE(SUBSTR(card, 1, 1), '4', 'x') AS
	// UNSIGNED) warns exactly when the digit is 4) is an answer.
	hideWarnings := (plan != nil && redactsErrors(plan)) || rm != nil
	warned := false
	s.digest.Reset()
	if s.srv.opts.Results.Enabled && cursor == nil {
		s.cur.results = s.srv.opts.Results.NewCollector()
	} else {
		s.cur.results = nil
	}
	rs := -1
	holding := false
	s.cols = s.cols[:0]
	sent := 0
	// max_rows / max_result_bytes: rows and row bytes the client received.
	capOn := s.capOn && kind == wire.ReplyResult
	var capRows, capBytes uint64
	var status uint16 // of the current result set, from its column EOF
	if cursor != nil {
		capRows, capBytes = cursor.rows, cursor.bytes
	}
	for !t.Done() {
		pl, _, err := s.backend.ReadPacket()
		if err != nil {
			return s.backendLost(s.client.Seq, err)
		}
		pk, err := t.Feed(pl)
		if err != nil {
			return s.backendLost(s.client.Seq, err)
		}
		out := pl
		switch pk {
		case wire.PktErr:
			if s.lim.StatementTimeout > 0 {
				out = s.timeoutErr(out, t)
			}
			if plan != nil && redactsErrors(plan) {
				// A server error can quote a value (a failed cast, a
				// duplicate key): in a statement over masked data, quoted
				// values never reach the client or the journal.
				out = redactErr(pl, t)
			}
		case wire.PktColumnCount:
			rs++
			rm = nil
			holding = plan != nil
			s.cols = s.cols[:0]
		case wire.PktColumnDef:
			if holding {
				s.cols = append(s.cols, append([]byte(nil), pl...))
				continue
			}
		case wire.PktOK:
			if s.tracking {
				if out, err = s.sessionOK(pl); err != nil {
					return err
				}
			}
			s.checkStatus(t.Status)
			if hideWarnings && wire.ClearWarnings(out) {
				warned = true
			}
		case wire.PktEOF:
			s.sessionEOF(pl)
			if hideWarnings && wire.ClearWarnings(pl) {
				warned = true
			}
			if capOn && t.InRows() {
				status, _ = wire.ParseEOF(pl)
			}
			if holding {
				holding = false
				m, err := plan.ResultSet(rs, s.cols)
				if err != nil {
					return s.backendLost(s.client.Seq, fmt.Errorf("mask result set: %w", err))
				}
				rm = m
				for i, def := range s.cols {
					if rm != nil {
						def = rm.ColumnDef(i, def)
					}
					if err := s.client.WritePacket(def); err != nil {
						return &protocolError{side: "client", err: err}
					}
				}
				if t.CursorOpen {
					s.cur.cursorMasker = rm
				}
			}
		case wire.PktRow:
			if rm != nil {
				var masked []byte
				var changed bool
				var merr error
				if t.Binary {
					masked, changed, merr = rm.Binary(pl, s.outBuf[:0])
				} else {
					masked, changed, merr = rm.Text(pl, s.outBuf[:0])
				}
				if merr != nil {
					// Never let an unmaskable row through: end the result with an ERR.
					return s.backendLost(s.client.Seq, fmt.Errorf("mask row: %w", merr))
				}
				if changed {
					// Only a rewritten row is ours to reuse: an unchanged one is pl
					// itself, which lives in the backend reader's buffer, and
					// masking the next row into it would corrupt the stream.
					out, s.outBuf = masked, masked
				}
			}
		case wire.PktLocalInfile:
			if err := s.localInfile(pl); err != nil {
				return err
			}
			continue
		}
		if capOn && pk == wire.PktRow {
			capRows++
			capBytes += uint64(len(out))
			if k, over := s.overCap(capRows, capBytes); over {
				s.srv.opts.Observer.Bytes(sent, 0)
				return s.capExceeded(k, t.Rows-1, status, cursor)
			}
		}
		if pk == wire.PktRow && !t.Binary {
			// What the client received, row by row: provable later, and
			// comparable by `sqlwarden replay`.
			if rows.EachText(out, s.digest) {
				s.digest.EndRow()
			}
			if s.cur.results.Want() {
				s.cur.results.Add(textValues(out))
			}
		}
		if err := s.client.WritePacket(out); err != nil {
			return s.clientLost(err)
		}
		sent += len(out) + 4
		if cursor == nil && (pk == wire.PktOK || pk == wire.PktEOF) && !t.Done() && !t.InRows() &&
			s.lim.StatementTimeout > 0 && s.timedOut() {
			// A statement of a batch ended after statement_timeout fired:
			// the ones after it do not reach the client.
			s.srv.opts.Observer.Bytes(sent, 0)
			return s.batchTimedOut()
		}
	}
	if cursor != nil {
		cursor.rows, cursor.bytes = capRows, capBytes
	}
	s.srv.opts.Observer.Bytes(sent, 0)
	if kind == wire.ReplyResult {
		// What a bounded write needs to know: is a transaction open? An
		// error may have ended one without saying.
		if t.Err != nil {
			s.txKnown = false
		} else {
			s.noteStatus(t.Status)
		}
	}
	if err := s.client.Flush(); err != nil {
		return s.clientLost(err)
	}
	if warned {
		return s.clearDiagnostics()
	}
	return nil
}

// clearDiagnosticsSQL reads a table because MariaDB resets the diagnostics
// area only for a statement that does (DO 0 or SELECT 1 leave it as it was).
const clearDiagnosticsSQL = "DO (SELECT 1 FROM information_schema.collations LIMIT 1)"

// clearDiagnostics empties the backend's diagnostics area after a reply
// over masked data raised warnings, so that no later SHOW WARNINGS, SHOW
// COUNT(*) WARNINGS, @@warning_count or GET DIAGNOSTICS counts them. The
// client already has its reply; this costs a round trip only then.
func (s *session) clearDiagnostics() error {
	if _, err := wire.SimpleQuery(s.backend, clearDiagnosticsSQL); err != nil {
		return &protocolError{side: "backend", err: fmt.Errorf("clear warnings over masked data: %w", err)}
	}
	return nil
}

// quoted matches what MySQL error messages quote: '...' and "..." values.
var quoted = regexp.MustCompile(`'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*"`)

// redactErr replaces every quoted value in an ERR packet's message (and in
// the tracker's copy, which the outcome record uses) with '***'.
func redactErr(pl []byte, t *wire.Tracker) []byte {
	if t.Err == nil || !quoted.MatchString(t.Err.Message) {
		return pl
	}
	t.Err.Message = quoted.ReplaceAllString(t.Err.Message, "'***'") + " (values redacted by sqlwarden masking)"
	return wire.ErrPacket(t.Err.Code, t.Err.State, t.Err.Message)
}

// textValues decodes a text-protocol row for result retention.
func textValues(row []byte) []any {
	var vals []any
	for len(row) > 0 {
		v, null, n, ok := wire.LenEncString(row)
		if !ok {
			return vals
		}
		if null {
			vals = append(vals, nil)
		} else {
			vals = append(vals, string(v))
		}
		row = row[n:]
	}
	return vals
}

// clientLost records that the client went away while its reply streamed.
func (s *session) clientLost(err error) error {
	s.tracker.Err = &wire.ServerError{Code: wire.ErrCodeBackend, State: "08S01", Message: "sqlwarden: client disconnected mid-result: " + err.Error()}
	return &protocolError{side: "client", err: err}
}

// localInfile handles the backend's request for a client file. Allowed only
// when configured and the policy let the statement through; the file always
// comes from the client, the proxy never reads one of its own.
func (s *session) localInfile(req []byte) error {
	if !s.srv.opts.AllowLocalInfile {
		// Tell the backend the file is empty and the client why nothing loaded.
		s.backend.Seq = s.client.Seq
		_ = s.backend.WritePacket(nil)
		if err := s.backend.Flush(); err != nil {
			return s.backendLost(s.client.Seq, err)
		}
		s.tracker.ResumeAfterInfile()
		for !s.tracker.Done() {
			pl, _, err := s.backend.ReadPacket()
			if err != nil {
				return s.backendLost(s.client.Seq, err)
			}
			if _, err := s.tracker.Feed(pl); err != nil {
				return s.backendLost(s.client.Seq, err)
			}
		}
		s.tracker.Err = &wire.ServerError{Code: wire.ErrCodeBlocked, State: "42000", Message: "sqlwarden: LOAD DATA LOCAL INFILE is refused"}
		s.writeErr(s.tracker.Err.Code, s.tracker.Err.State, s.tracker.Err.Message)
		return nil
	}
	if err := s.client.WritePacket(req); err != nil {
		return &protocolError{side: "client", err: err}
	}
	if err := s.client.Flush(); err != nil {
		return &protocolError{side: "client", err: err}
	}
	for {
		data, cseq, err := s.client.ReadPacket()
		if err != nil {
			return &protocolError{side: "client", err: err}
		}
		s.backend.Seq = wire.FirstSeq(cseq, len(data))
		if err := s.backend.WritePacket(data); err != nil {
			return s.backendLost(cseq+1, err)
		}
		if len(data) == 0 {
			if err := s.backend.Flush(); err != nil {
				return s.backendLost(cseq+1, err)
			}
			s.client.Seq = cseq + 1
			s.tracker.ResumeAfterInfile()
			return nil
		}
	}
}
