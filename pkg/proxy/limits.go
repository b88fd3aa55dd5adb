package proxy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// Per-identity limits (the policy's limits section). A session resolves its
// identity's limits when it starts and again when the policy version
// changes; statements of an identity without limits pay one version
// comparison and a few flag tests.
//
//   - max_rows / max_result_bytes: counted in relay as rows stream; past the
//     cap the client gets an ERR 1226 (error) or the end of the result
//     (truncate), the backend statement is stopped with KILL QUERY on a
//     control connection, and the session reads what was in flight until the
//     reply ends, so the connection is ready for its next statement.
//   - statement_timeout: the backend session's max_statement_time (MariaDB)
//     or max_execution_time (MySQL, SELECT only), set when the session starts
//     and whenever the limit changes, plus a watchdog that kills the
//     statement at the limit plus watchdogGrace.
//   - max_statements_per_second, max_concurrent_statements, max_connections:
//     per identity per node, refused before the backend sees anything.

// watchdogGrace is how long after statement_timeout the daemon kills a
// statement the server did not stop itself.
const watchdogGrace = 500 * time.Millisecond

// resyncTimeout bounds reading the rest of a stopped statement's reply.
const resyncTimeout = 10 * time.Second

// identState is what sessions of one identity share on this node.
type identState struct {
	conns    atomic.Int64
	inflight atomic.Int64

	mu     sync.Mutex // token bucket
	tokens float64
	last   time.Time

	refs int       // sessions holding it (under Server.limMu)
	idle time.Time // when refs dropped to 0
}

// maxIdleIdents is how many identities without sessions the node remembers
// (for their token buckets) before forgetting the long-idle ones.
const maxIdleIdents = 256

func (s *Server) acquireIdent(name string) *identState {
	s.limMu.Lock()
	defer s.limMu.Unlock()
	if s.idents == nil {
		s.idents = map[string]*identState{}
	}
	st := s.idents[name]
	if st == nil {
		if len(s.idents) >= maxIdleIdents {
			// A bucket idle for a second has refilled (burst = rate): forgetting
			// it changes nothing.
			cutoff := s.opts.Now().Add(-2 * time.Second)
			for k, v := range s.idents {
				if v.refs == 0 && v.idle.Before(cutoff) {
					delete(s.idents, k)
				}
			}
		}
		st = &identState{}
		s.idents[name] = st
	}
	st.refs++
	return st
}

func (s *Server) releaseIdent(st *identState) {
	s.limMu.Lock()
	defer s.limMu.Unlock()
	st.refs--
	if st.refs == 0 {
		st.idle = s.opts.Now()
	}
}

// take removes a token from the identity's bucket (capacity and refill
// rate both `rate` per second); false when it is empty.
func (st *identState) take(rate, n int, now time.Time) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	r := float64(rate)
	if st.last.IsZero() {
		st.tokens = r
	} else if d := now.Sub(st.last); d > 0 {
		st.tokens += d.Seconds() * r
	}
	if st.tokens > r {
		st.tokens = r
	}
	st.last = now
	if st.tokens < float64(n) {
		return false
	}
	st.tokens -= float64(n)
	return true
}

// limitErr is a limit firing as the client and the journal see it.
func limitMsg(l *record.Limits, k record.LimitKind, what string) string {
	return "sqlwarden: limit " + l.By[k] + ": " + what
}

// refreshLimits resolves the identity's limits for policy version ver.
func (s *session) refreshLimits(ver uint64) {
	s.limVer = ver
	s.lim = s.srv.opts.Policy.Limits(s.identity.Name)
	l := &s.lim
	s.capOn = l.IsSet(record.LimitMaxRows) || l.IsSet(record.LimitMaxResultBytes)
	s.admitOn = l.IsSet(record.LimitMaxStatementsPerSecond) || l.IsSet(record.LimitMaxConcurrentStatements) || l.IsSet(record.LimitStatementTimeout)
}

// hit records that limit k fired on the current statement.
func (s *session) hit(k record.LimitKind) *record.LimitHit {
	h := s.lim.Hit(k)
	s.cur.limHit = h
	s.srv.opts.Observer.LimitHit(h.Name, h.Kind)
	return h
}

// mentionsTimeoutVar reports whether sql names max_statement_time or
// max_execution_time (in any case, quoted or not). It finds '_' with
// IndexByte and compares around it, so the common statement, which has
// few underscores, costs little.
func mentionsTimeoutVar(sql string) bool {
	for i := 0; ; {
		j := strings.IndexByte(sql[i:], '_')
		if j < 0 {
			return false
		}
		i += j
		// i is at an underscore: is it the one before "time"?
		if i+5 <= len(sql) && strings.EqualFold(sql[i+1:i+5], "time") {
			for _, v := range [...]string{"max_statement", "max_execution"} {
				if i >= len(v) && strings.EqualFold(sql[i-len(v):i], v) {
					return true
				}
			}
		}
		i++
	}
}

var readKinds = map[string]bool{"SELECT": true, "SHOW": true, "EXPLAIN": true, "DESCRIBE": true}

func setsTimeout(sql string, st *statement.Statement) bool {
	if !mentionsTimeoutVar(sql) {
		return false
	}
	if st == nil || st.Classification == nil || !st.Parsed {
		return true
	}
	c := st.Classification
	if len(c.Kinds) == 0 {
		return !readKinds[c.Kind]
	}
	for _, k := range c.Kinds {
		if !readKinds[k] {
			return true
		}
	}
	return false
}

func isKill(st *statement.Statement) bool {
	return st != nil && (st.KillTarget != 0 || (st.Classification != nil && st.Classification.Kind == "KILL"))
}

// admit applies the statement-level limits that refuse before the backend
// sees anything. On refusal it returns the client message; otherwise the
// statement may hold a concurrency slot (released in finish).
func (s *session) admit(st *stmtLife) (string, bool) {
	l := &s.lim
	if l.StatementTimeout > 0 && setsTimeout(st.sql, st.st) {
		s.hit(record.LimitStatementTimeout)
		return limitMsg(l, record.LimitStatementTimeout, fmt.Sprintf("statement_timeout %s applies to this identity; the session may not change max_statement_time or max_execution_time", l.StatementTimeout)), false
	}
	// A KILL is how an identity at its limit stops its own statements.
	if isKill(st.st) {
		return "", true
	}
	if l.MaxStatementsPerSecond > 0 {
		// Each statement of a multi-statement counts.
		n := 1
		if st.st != nil && st.st.Count > 1 {
			n = st.st.Count
		}
		if n > l.MaxStatementsPerSecond {
			s.hit(record.LimitMaxStatementsPerSecond)
			return limitMsg(l, record.LimitMaxStatementsPerSecond, fmt.Sprintf("max_statements_per_second %d: a multi-statement of %d statements never fits", l.MaxStatementsPerSecond, n)), false
		}
		if !s.ident.take(l.MaxStatementsPerSecond, n, s.srv.opts.Now()) {
			s.hit(record.LimitMaxStatementsPerSecond)
			return limitMsg(l, record.LimitMaxStatementsPerSecond, fmt.Sprintf("max_statements_per_second %d exceeded", l.MaxStatementsPerSecond)), false
		}
	}
	if l.MaxConcurrentStatements > 0 {
		if n := s.ident.inflight.Add(1); n > int64(l.MaxConcurrentStatements) {
			s.ident.inflight.Add(-1)
			s.hit(record.LimitMaxConcurrentStatements)
			return limitMsg(l, record.LimitMaxConcurrentStatements, fmt.Sprintf("max_concurrent_statements %d reached", l.MaxConcurrentStatements)), false
		}
		st.slot = true
	}
	return "", true
}

// refuseLimit journals a statement a limit refused and tells the client.
func (s *session) refuseLimit(st *stmtLife, msg string) (reply, error) {
	return st.refuse(nil, record.ErrorInfo{Code: wire.ErrCodeLimit, State: "42000", Message: msg}, "42000")
}

// admitConnection counts a new session against max_connections.
func (s *session) admitConnection() (string, bool) {
	l := &s.lim
	n := s.ident.conns.Add(1)
	s.connCounted = true
	if l.MaxConnections > 0 && n > int64(l.MaxConnections) {
		s.ident.conns.Add(-1)
		s.connCounted = false
		s.hit(record.LimitMaxConnections)
		return limitMsg(l, record.LimitMaxConnections, fmt.Sprintf("max_connections %d reached for identity %s", l.MaxConnections, s.identity.Name)), false
	}
	return "", true
}

// syncTimeout makes the backend session's statement-time variable match
// statement_timeout (the server enforces it; the watchdog backs it up).
func (s *session) syncTimeout() error {
	want := s.lim.StatementTimeout
	if want == s.mstApplied {
		return nil
	}
	var q string
	mariadb := s.dialect.Server.Flavor == sqltext.MariaDB
	switch {
	case want == 0 && mariadb:
		q = "SET SESSION max_statement_time = DEFAULT"
	case want == 0:
		q = "SET SESSION max_execution_time = DEFAULT"
	case mariadb:
		q = "SET SESSION max_statement_time = " + strconv.FormatFloat(want.Seconds(), 'f', 3, 64)
	default:
		ms := want.Milliseconds()
		if ms < 1 {
			ms = 1
		}
		q = "SET SESSION max_execution_time = " + strconv.FormatInt(ms, 10)
	}
	s.mstApplied = want
	if err := s.backendExec(q); err != nil {
		var se *wire.ServerError
		if errors.As(err, &se) {
			// The watchdog still enforces the limit.
			s.log.Warn("set the backend statement time limit", "sql", q, "err", err)
			return nil
		}
		return err
	}
	return nil
}

// backendExec runs one statement of the proxy's own on the backend
// session between client commands; a *mysql.ServerError is the server's
// refusal, any other error a broken connection.
func (s *session) backendExec(q string) error {
	s.backend.Seq = 0
	p := append([]byte{gm.COM_QUERY}, q...)
	if err := s.backend.WritePacket(p); err != nil {
		return err
	}
	if err := s.backend.Flush(); err != nil {
		return err
	}
	return s.readReply(wire.ReplyResult)
}

// readReply reads and discards one whole reply.
func (s *session) readReply(kind wire.ReplyKind) error {
	var t wire.Tracker
	t.Start(kind, false)
	for !t.Done() {
		pl, _, err := s.backend.ReadPacket()
		if err != nil {
			return err
		}
		pk, err := t.Feed(pl)
		if err != nil {
			return err
		}
		if pk == wire.PktLocalInfile {
			return errors.New("unexpected LOCAL INFILE request")
		}
	}
	if t.Err != nil {
		return t.Err
	}
	return nil
}

// watchdog kills a statement that outlives statement_timeout (plus
// watchdogGrace) on the backend.
type watchdog struct {
	timer *time.Timer
	mu    sync.Mutex
	gen   uint64 // statements the watchdog was armed for
	armed uint64 // gen of the statement being watched, 0 when none
	fired uint64 // gen of the statement the watchdog killed
}

// armWatchdog starts the statement_timeout watchdog for the statement just
// forwarded.
func (s *session) armWatchdog() {
	d := s.lim.StatementTimeout
	if d <= 0 {
		return
	}
	s.wd.mu.Lock()
	s.wd.gen++
	s.wd.armed = s.wd.gen
	s.wd.mu.Unlock()
	if s.wd.timer == nil {
		s.wd.timer = time.AfterFunc(d+watchdogGrace, s.watchdogFire)
	} else {
		s.wd.timer.Reset(d + watchdogGrace)
	}
}

// disarmWatchdog ends the watch once the reply is complete. A firing in
// progress holds wd.mu until its KILL is done, so the KILL never lands on a
// later statement.
func (s *session) disarmWatchdog() {
	if s.wd.timer == nil {
		return
	}
	s.wd.timer.Stop()
	s.wd.mu.Lock()
	s.wd.armed = 0
	s.wd.mu.Unlock()
}

func (s *session) watchdogFire() {
	s.wd.mu.Lock()
	defer s.wd.mu.Unlock()
	if s.wd.armed == 0 {
		return
	}
	s.wd.fired = s.wd.armed
	if err := s.srv.killQuery(s.be, s.beAddr, s.threadID); err != nil {
		s.log.Warn("statement_timeout: could not stop the statement; closing the backend connection", "err", err)
		s.backend.Close()
		return
	}
	// A KILL QUERY stops one statement: the rest of a multi-statement (a
	// SLEEP that returns 1 when killed, with no error, lets the server go
	// on) is stopped too, each as it runs, until the reply ends.
	s.wd.timer.Reset(watchdogRepeat)
}

// watchdogRepeat is how often a fired watchdog kills again while the reply
// goes on.
const watchdogRepeat = 100 * time.Millisecond

// timedOut reports whether the watchdog killed the current statement.
func (s *session) timedOut() bool {
	if s.wd.timer == nil {
		return false
	}
	s.wd.mu.Lock()
	defer s.wd.mu.Unlock()
	return s.wd.fired != 0 && s.wd.fired == s.wd.gen
}

// timeoutErr turns the server's answer to a timed-out statement into the
// client's: MariaDB's own 1969 passes as it is; a KILL by the watchdog
// (1317) and MySQL's 3024 become 1969 (70100) naming the limit.
func (s *session) timeoutErr(pl []byte, t *wire.Tracker) []byte {
	e := t.Err
	switch {
	case e.Code == wire.ErrCodeTimeout:
		s.hit(record.LimitStatementTimeout)
		return pl
	case e.Code == wire.ErrCodeMySQLQueryTimeout || (e.Code == wire.ErrCodeQueryInterrupted && s.timedOut()):
		s.hit(record.LimitStatementTimeout)
		t.Err = &wire.ServerError{Code: wire.ErrCodeTimeout, State: "70100",
			Message: limitMsg(&s.lim, record.LimitStatementTimeout, "statement exceeded statement_timeout "+s.lim.StatementTimeout.String())}
		return wire.ErrPacket(t.Err.Code, t.Err.State, t.Err.Message)
	}
	return pl
}

// batchTimedOut ends a multi-statement's reply once statement_timeout has
// fired, at the end of the result set it was in: the client gets ERR 1969
// in place of the rest, which the server is stopped from running (KILL
// QUERY, again every watchdogRepeat: a statement quick enough to finish
// between two may still run) and whose replies are read and dropped.
func (s *session) batchTimedOut() error {
	s.hit(record.LimitStatementTimeout)
	final := &wire.ServerError{Code: wire.ErrCodeTimeout, State: "70100",
		Message: limitMsg(&s.lim, record.LimitStatementTimeout, "statement exceeded statement_timeout "+s.lim.StatementTimeout.String()+"; the rest of the batch was stopped")}
	if err := s.client.WritePacket(wire.ErrPacket(final.Code, final.State, final.Message)); err != nil {
		return s.clientLost(err)
	}
	if err := s.client.Flush(); err != nil {
		return s.clientLost(err)
	}
	err := s.stopBackend()
	s.tracker.Err = final
	return err
}

// overCap reports which of max_rows / max_result_bytes the result passed.
func (s *session) overCap(rows, bytes uint64) (record.LimitKind, bool) {
	l := &s.lim
	if l.MaxRows > 0 && rows > l.MaxRows {
		return record.LimitMaxRows, true
	}
	if l.MaxResultBytes > 0 && bytes > l.MaxResultBytes {
		return record.LimitMaxResultBytes, true
	}
	return 0, false
}

// capExceeded ends a result at max_rows or max_result_bytes: the client
// gets an ERR (error mode) or the end of the result (truncate), the
// statement is stopped on the backend, and the reply's rest is read and
// dropped. sentRows is how many rows of this reply the client received;
// status is the server status of the current result set.
func (s *session) capExceeded(k record.LimitKind, sentRows uint64, status uint16, cursor *cursorState) error {
	l := &s.lim
	truncate := l.TruncateRows
	what := fmt.Sprintf("result exceeds max_rows %d", l.MaxRows)
	if k == record.LimitMaxResultBytes {
		truncate = l.TruncateBytes
		what = fmt.Sprintf("result exceeds max_result_bytes %d", l.MaxResultBytes)
	}
	s.hit(k)
	var final *wire.ServerError
	if truncate {
		s.cur.truncated = true
		more := cursor == nil && status&gm.SERVER_MORE_RESULTS_EXISTS != 0
		st := status &^ gm.SERVER_MORE_RESULTS_EXISTS
		if cursor != nil {
			st = cursor.status | gm.SERVER_STATUS_LAST_ROW_SEND
		}
		if more {
			st |= gm.SERVER_MORE_RESULTS_EXISTS
		}
		if err := s.client.WritePacket(wire.EOFPacket(0, st)); err != nil {
			return s.clientLost(err)
		}
		if more {
			// The statements after this one will not run: say so rather than
			// let the client believe they did.
			final = &wire.ServerError{Code: wire.ErrCodeLimit, State: "42000", Message: limitMsg(l, k, what+"; the result was truncated and the statements after it were not run")}
		}
	} else {
		final = &wire.ServerError{Code: wire.ErrCodeLimit, State: "42000", Message: limitMsg(l, k, what)}
	}
	if final != nil {
		if err := s.client.WritePacket(wire.ErrPacket(final.Code, final.State, final.Message)); err != nil {
			return s.clientLost(err)
		}
	}
	if err := s.client.Flush(); err != nil {
		return s.clientLost(err)
	}
	err := s.stopBackend()
	if err == nil && cursor != nil {
		cursor.done = true
		err = s.closeCursor(cursor.id)
	}
	t := &s.tracker
	t.Rows, t.Err = sentRows, final
	return err
}

// stopBackend stops the statement whose reply is streaming (KILL QUERY on
// the control connection) and reads the reply to its end: what was in
// flight, then the server's ERR 1317 (or the normal end, when the
// statement finished first).
func (s *session) stopBackend() error {
	t := &s.tracker
	if t.Done() {
		return nil
	}
	if err := s.srv.killQuery(s.be, s.beAddr, s.threadID); err != nil {
		s.log.Warn("stop statement at limit", "err", err)
		return &protocolError{side: "backend", err: err}
	}
	_ = s.backend.Conn.SetReadDeadline(time.Now().Add(resyncTimeout))
	defer s.backend.Conn.SetReadDeadline(time.Time{}) //nolint:errcheck // best effort
	for !t.Done() {
		pl, seq, err := s.backend.ReadPacket()
		if err != nil {
			return &protocolError{side: "backend", err: fmt.Errorf("resync after KILL QUERY: %w", err)}
		}
		pk, err := t.Feed(pl)
		if err != nil {
			return &protocolError{side: "backend", err: fmt.Errorf("resync after KILL QUERY: %w", err)}
		}
		if pk == wire.PktLocalInfile {
			// A later statement of the batch wants a client file: send none.
			s.backend.Seq = seq + 1
			if err := s.backend.WritePacket(nil); err != nil {
				return &protocolError{side: "backend", err: err}
			}
			if err := s.backend.Flush(); err != nil {
				return &protocolError{side: "backend", err: err}
			}
			t.ResumeAfterInfile()
		}
	}
	return nil
}

// closeCursor closes the server cursor of a statement whose fetches
// passed a cap, so no later fetch can read past it.
func (s *session) closeCursor(id uint32) error {
	s.backend.Seq = 0
	p := wire.StmtCommand(gm.COM_STMT_RESET, id)
	if err := s.backend.WritePacket(p); err != nil {
		return &protocolError{side: "backend", err: err}
	}
	if err := s.backend.Flush(); err != nil {
		return &protocolError{side: "backend", err: err}
	}
	if err := s.readReply(wire.ReplyResult); err != nil {
		var se *wire.ServerError
		if errors.As(err, &se) {
			s.log.Warn("close cursor at limit", "err", err)
			return nil
		}
		return &protocolError{side: "backend", err: err}
	}
	return nil
}
