package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	gm "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/pingcap/tidb/pkg/parser/charset"

	"github.com/sqlwarden/sqlwarden/pkg/host"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// session is one proxied client connection.
type session struct {
	srv *Server
	log *slog.Logger
	id  string

	raw     net.Conn
	client  *wire.Conn
	backend *wire.Conn
	// tracking: the backend leg negotiated CLIENT_SESSION_TRACK and reports
	// every system variable a statement changes in its OK.
	tracking bool
	// needReread: a reply said the session's lexing state may have changed
	// in a way the proxy did not follow; read it back before the next command.
	needReread bool

	ctx    context.Context
	cancel context.CancelFunc

	identity *Identity
	hs       *wire.HandshakeResponse
	origin   *host.Origin
	db       string
	threadID uint32
	connID   uint32 // the id the greeting gave the client
	// freeLarge: the last command was a large statement; largeHeld: the
	// bytes of the large-statement budget it holds (large.go)
	freeLarge bool
	largeHeld int64
	beName    string // the backend's name
	caps      uint32 // negotiated with the client
	// dialect is how the backend reads this session's SQL: its flavour and
	// version, and the session's sql_mode flags and client character set.
	dialect sqltext.Dialect

	statements uint64
	// pending: counted as not logged in yet (from pendingFrom).
	pending     bool
	pendingFrom netip.Addr

	stmts    preparedTable
	tracker  wire.Tracker
	outBuf   []byte
	cols     [][]byte
	digest   *record.RowDigest
	verdicts verdictCache
	// cur is the statement running now (lifecycle.go).
	cur stmtLife

	// Per-identity limits (limits.go), resolved at login and again when the
	// policy version changes.
	be          *Backend
	beAddr      string // the backend address dialed
	lim         record.Limits
	limVer      uint64
	capOn       bool // max_rows or max_result_bytes set
	admitOn     bool // a limit checked before forwarding a statement
	ident       *identState
	connCounted bool
	mstApplied  time.Duration // the backend session's statement time limit (0: server default)
	wd          watchdog      // statement_timeout's

	// roApplied: the backend session is in READ ONLY transaction mode
	// (read_only).
	roApplied bool
	// sqlPrep is the text of each SQL-level PREPARE, by lower-case name.
	sqlPrep map[string]statement.Prepare
	// txStatus is the backend's last reported status (autocommit, in a
	// transaction), for max_affected_rows; txKnown is false after an error,
	// which may have changed it.
	txStatus uint16
	txKnown  bool

	mu       sync.Mutex
	draining bool
	busy     bool
	// backendGone: the backend hung up (noticed by the server's watch).
	backendGone bool
	watch       *backendWatch // nil: not watched
	watchKey    uint64
}

func newSession(s *Server, c net.Conn) *session {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	ctx, cancel := context.WithCancel(context.Background())
	return &session{
		srv: s, raw: c, id: id, ctx: ctx, cancel: cancel,
		log:    s.log.With("session", id, "client", c.RemoteAddr().String()),
		stmts:  preparedTable{m: map[uint32]*prepared{}},
		digest: record.NewRowDigest(),
	}
}

// drain asks the session to end at its next command boundary.
func (s *session) drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.draining = true
	if !s.busy {
		// Waiting for a command: wake the read.
		_ = s.raw.SetReadDeadline(time.Now())
	}
}

// backendClosed is the watch's news that the backend hung up. An idle
// session ends at once (its client read is woken, as by drain); a busy one
// sees the close on its reply path and ends after the command.
func (s *session) backendClosed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.backendGone = true
	if !s.busy {
		_ = s.raw.SetReadDeadline(time.Now())
	}
}

func (s *session) kill(reason string) {
	s.log.Warn("closing session", "reason", reason)
	s.cancel()
	s.raw.Close()
	if s.backend != nil {
		s.backend.Close()
	}
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func (s *session) run() {
	srv := s.srv
	srv.opts.Observer.ConnOpened()
	outcome := "closed"
	defer func() {
		if r := recover(); r != nil {
			// Never on purpose: a bug must cost one connection, not the daemon.
			s.log.Error("session panic", "panic", fmt.Sprint(r))
			outcome = "panic"
		}
		s.cancel()
		s.raw.Close()
		if outcome != "panic" && s.client != nil {
			s.client.Release()
		}
		if s.backend != nil {
			if s.watch != nil {
				s.watch.remove(s.watchKey, s.backend.Conn)
			}
			s.backend.Close()
			if outcome != "panic" {
				s.backend.Release()
			}
		}
		if s.threadID != 0 {
			srv.threads.Delete(threadKey{s.beName, s.threadID})
			srv.conns.Delete(s.connID)
		}
		if s.wd.timer != nil {
			s.disarmWatchdog()
		}
		s.authenticated() // a login that never finished frees its place
		if s.ident != nil {
			if s.connCounted {
				s.ident.conns.Add(-1)
			}
			srv.releaseIdent(s.ident)
		}
		srv.opts.Observer.ConnClosed(outcome)
	}()
	if tc, ok := s.raw.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	// Until the client has authenticated: small packets, a deadline.
	s.client = wire.NewConn(s.raw, min(srv.opts.MaxPacket, wire.PreAuthMaxPacket))

	remote, local := addrPort(s.raw.RemoteAddr()), addrPort(s.raw.LocalAddr())
	workload := &record.Workload{}
	if srv.opts.Origins != nil {
		o, err := srv.opts.Origins.Lookup(remote, local)
		switch {
		case err == nil:
			s.origin = &o
			workload = describeWorkload(o)
		case errors.Is(err, host.ErrNoOrigin):
		default:
			s.log.Warn("redirect lookup", "err", err)
		}
	}
	// A redirected client is a workload of this node by construction.
	s.client.HandOff = srv.opts.HandOff && (s.origin != nil || onThisHost(s.raw))

	_ = s.raw.SetDeadline(time.Now().Add(srv.opts.HandshakeTimeout))
	s.connID = srv.nextConn.Add(1)
	hs, err := wire.ServerHandshake(s.client, &wire.Greeting{
		ServerVersion: srv.serverVersion(),
		ConnectionID:  s.connID,
		Capabilities:  wire.ProxyCapabilities,
		Charset:       45, // utf8mb4_general_ci
		Status:        gm.SERVER_STATUS_AUTOCOMMIT,
		AuthPlugin:    srv.opts.ClientAuthPlugin,
		TLS:           srv.opts.ClientTLS,
	})
	if err != nil {
		if errors.Is(err, wire.ErrTooLarge) {
			// Refused at the header: the payload is never read.
			s.log.Info("handshake packet too large", "err", err)
			if h, herr := s.client.PeekHeader(); herr == nil {
				s.client.Seq = h.Seq + 1
			}
			s.writeErr(wire.ErrCodeTooLarge, "08S01", fmt.Sprintf("sqlwarden: packet larger than %d bytes before login", s.client.MaxPacket))
		} else if errors.Is(err, wire.ErrMalformed) {
			// As the server answers one: "Bad handshake", then closed.
			s.log.Info("handshake", "err", err)
			s.writeErr(wire.ErrCodeHandshake, "08S01", "sqlwarden: bad handshake: "+err.Error())
		} else if errors.Is(err, os.ErrDeadlineExceeded) {
			// Said before closing, with a moment to say it: a client that
			// announced a response and stalled learns why it was cut off.
			s.log.Info("handshake", "err", err)
			_ = s.raw.SetWriteDeadline(time.Now().Add(time.Second))
			s.client.Seq = 2 // after the client's response (1) to the greeting (0)
			s.writeErr(wire.ErrCodeHandshake, "08S01", fmt.Sprintf("sqlwarden: bad handshake: login not finished within handshake_timeout %s", srv.opts.HandshakeTimeout))
		} else if !isClosed(err) {
			s.log.Info("handshake", "err", err)
		}
		outcome = "handshake_error"
		return
	}
	s.hs = hs
	s.caps = hs.Capabilities
	s.db = hs.DB
	clientInfo := &record.Client{Addr: remote.String(), User: hs.User, TLS: hs.TLS, Attrs: hs.Attrs}

	if srv.opts.RequireTLS && !hs.TLS {
		s.deny(workload, clientInfo, nil, "TLS is required", wire.ErrCodeTLSRequired)
		outcome = "denied"
		return
	}
	if co, err := charset.GetCollationByID(int(hs.Charset)); err == nil {
		if _, err := sqltext.ClientCharset(co.CharsetName); err != nil {
			s.deny(workload, clientInfo, nil, err.Error(), wire.ErrCodeNotSupported)
			outcome = "denied"
			return
		}
	}

	id, err := srv.opts.Auth.Authenticate(s.ctx, &AuthRequest{Conn: s.client, Handshake: hs, Origin: s.origin, Workload: workload, Remote: remote})
	if err != nil {
		reason := err.Error()
		var de *DeniedError
		if errors.As(err, &de) {
			reason = de.Reason
		}
		srv.opts.Observer.IdentityFailure(shortReason(reason))
		s.deny(workload, clientInfo, nil, reason, wire.ErrCodeAccessDenied)
		outcome = "denied"
		return
	}
	s.identity = id
	s.authenticated()
	s.client.MaxPacket = srv.opts.MaxPacket

	be, ok := srv.opts.Backends[id.Backend]
	if !ok {
		s.deny(workload, clientInfo, id.Record, fmt.Sprintf("identity %s maps to unknown backend %q", id.Name, id.Backend), wire.ErrCodeAccessDenied)
		outcome = "denied"
		return
	}
	// Logged in: the rest (the backend login, bounded by its own
	// connect_timeout) gets a fresh allowance.
	_ = s.raw.SetDeadline(time.Now().Add(srv.opts.HandshakeTimeout + connectTimeout(be)))
	// Limits: resolved once here, again only when the policy changes.
	s.ident = srv.acquireIdent(id.Name)
	s.refreshLimits(srv.opts.Policy.Version())
	if msg, ok := s.admitConnection(); !ok {
		s.log.Info("connection denied", "reason", msg)
		s.recordDenied(workload, clientInfo, id.Record, nil, strings.TrimPrefix(msg, "sqlwarden: "))
		s.writeErr(wire.ErrCodeLimit, "42000", msg)
		outcome = "denied"
		return
	}
	addr := be.Address
	if addr == "" {
		if s.origin == nil {
			s.backendDenied(workload, clientInfo, id.Record, nil, fmt.Sprintf("backend %s has no address and the connection was not redirected", be.Name))
			outcome = "denied"
			return
		}
		if !destinationAllowed(be.Destinations, s.origin.Destination.Addr()) {
			s.backendDenied(workload, clientInfo, id.Record, nil, fmt.Sprintf("backend %s: original destination %s is not among its destinations (its credential goes nowhere else)", be.Name, s.origin.Destination))
			outcome = "denied"
			return
		}
		addr = s.origin.Destination.String()
	}
	cred, err := be.Credential()
	if err != nil {
		s.backendDenied(workload, clientInfo, id.Record, nil, fmt.Sprintf("backend %s credential: %v", be.Name, err))
		outcome = "denied"
		return
	}
	beInfo := &record.BackendInfo{Name: be.Name, Address: addr, User: cred.User}
	s.beName, s.be, s.beAddr = be.Name, be, addr
	if err := s.dialBackend(addr, cred, be); err != nil {
		code, state, msg := loginFailure(be.Name, addr, err)
		s.log.Warn("backend connect", "backend", be.Name, "addr", addr, "err", err)
		s.recordDenied(workload, clientInfo, id.Record, beInfo, strings.TrimPrefix(msg, "sqlwarden: "))
		s.writeErr(code, state, msg) // the sequence id continues the client's auth exchange
		outcome = "backend_error"
		return
	}
	if err := s.syncReadOnly(); err != nil {
		// A read-only identity never gets a session the server would let write.
		s.hit(record.LimitReadOnly)
		msg := kindMsg(&s.lim, record.LimitReadOnly, "cannot put the database session in read-only mode: "+err.Error())
		s.log.Warn("read-only mode", "err", err)
		s.recordDenied(workload, clientInfo, id.Record, beInfo, strings.TrimPrefix(msg, "sqlwarden: "))
		s.writeErr(wire.ErrCodeLimit, "42000", msg)
		outcome = "backend_error"
		return
	}
	if s.lim.StatementTimeout > 0 {
		if err := s.syncTimeout(); err != nil {
			s.log.Warn("backend session setup", "backend", be.Name, "err", err)
			s.recordDenied(workload, clientInfo, id.Record, beInfo, "backend session setup: "+err.Error())
			// Never a client-range 2xxx code at login: libmariadb reads it as a malformed packet.
			s.writeErr(wire.ErrCodeAccessDenied, "08S01", fmt.Sprintf("sqlwarden: backend %s at %s: %v", be.Name, addr, err))
			outcome = "backend_error"
			return
		}
	}
	if s.watch = srv.backendWatch(); s.watch != nil {
		s.watchKey = s.watch.add(s, s.backend.Conn)
	}
	_ = s.raw.SetDeadline(time.Time{})

	start := &record.Record{
		Event: record.EventSessionStart, SessionID: s.id,
		Identity: id.Record, Workload: workload, Client: clientInfo,
		Backend: beInfo,
	}
	if s.origin != nil {
		start.Destination = s.origin.Destination.String()
	}
	if err := srv.append(start); err != nil {
		s.log.Error("audit session start", "err", err)
		s.writeErr(wire.ErrCodeAuditFailed, "", "sqlwarden: audit journal unavailable: "+err.Error())
		outcome = "audit_error"
		return
	}
	if err := s.client.WritePacket(wire.OKPacket(0, 0, gm.SERVER_STATUS_AUTOCOMMIT, 0)); err != nil {
		outcome = "client_error"
		return
	}
	if err := s.client.Flush(); err != nil {
		outcome = "client_error"
		return
	}

	reason := s.loop()
	s.end(reason)
	outcome = reason
}

func shortReason(r string) string {
	if i := strings.IndexAny(r, ":("); i > 0 {
		r = r[:i]
	}
	if len(r) > 48 {
		r = r[:48]
	}
	return strings.TrimSpace(r)
}

func (s *session) end(reason string) {
	if err := s.srv.appendAsync(&record.Record{Event: record.EventSessionEnd, SessionID: s.id, Reason: reason, Statements: record.U64(s.statements)}); err != nil {
		s.log.Error("audit session end", "err", err)
	}
}

func describeWorkload(o host.Origin) *record.Workload {
	w := &record.Workload{PID: o.PID, CgroupID: o.CgroupID, Netns: o.NetnsCookie}
	uid := o.UID
	w.UID = &uid
	// What is unreadable (the process already gone) stays empty.
	p, err := host.OpenProc("", o.PID)
	if err != nil {
		return w
	}
	defer p.Close()
	w.Exe, _ = p.Exe()
	if cgs, err := p.Cgroups(); err == nil {
		w.Cgroup, _ = host.CgroupV2Path(cgs)
	}
	return w
}

// deny refuses a connection before it reaches a backend.
func (s *session) deny(w *record.Workload, c *record.Client, id *record.Identity, reason string, code uint16) {
	s.log.Info("connection denied", "reason", reason)
	s.recordDenied(w, c, id, nil, reason)
	msg := "sqlwarden: " + reason
	if code == wire.ErrCodeAccessDenied {
		msg = "sqlwarden: no verified workload identity: " + strings.TrimPrefix(reason, "no verified workload identity: ")
	}
	s.writeErr(code, "28000", msg)
}

// backendDenied refuses a verified client whose backend cannot be used.
// The code is 1045 (SQLSTATE 08S01), never a client-range 2xxx code, which
// libmariadb-based clients read as a malformed packet.
func (s *session) backendDenied(w *record.Workload, c *record.Client, id *record.Identity, be *record.BackendInfo, reason string) {
	s.log.Info("connection denied", "reason", reason)
	s.recordDenied(w, c, id, be, reason)
	s.writeErr(wire.ErrCodeAccessDenied, "08S01", "sqlwarden: "+reason)
}

func (s *session) recordDenied(w *record.Workload, c *record.Client, id *record.Identity, be *record.BackendInfo, reason string) {
	r := &record.Record{Event: record.EventSessionDenied, SessionID: s.id, Identity: id, Workload: w, Client: c, Backend: be, Reason: reason, Limit: s.cur.limHit}
	if s.origin != nil {
		r.Destination = s.origin.Destination.String()
	}
	if err := s.srv.append(r); err != nil {
		s.log.Error("audit session denied", "err", err)
	}
}

func (s *session) writeErr(code uint16, state, msg string) {
	if err := s.client.WritePacket(wire.ErrPacket(code, state, msg)); err != nil {
		return
	}
	_ = s.client.Flush()
}

// DefaultConnectTimeout bounds a backend login when the backend sets none.
const DefaultConnectTimeout = 5 * time.Second

func connectTimeout(be *Backend) time.Duration {
	if be.ConnectTimeout <= 0 {
		return DefaultConnectTimeout
	}
	return be.ConnectTimeout
}

func (s *session) dialBackend(addr string, cred Credential, be *Backend) error {
	timeout := connectTimeout(be)
	// Connecting, the greeting, TLS, authentication and the session reads
	// after it all end by one deadline; the client leg stays open long
	// enough to be told.
	deadline := time.Now().Add(timeout)
	_ = s.raw.SetDeadline(deadline.Add(5 * time.Second))
	ctx, cancel := context.WithDeadline(s.ctx, deadline)
	defer cancel()
	err := s.loginBackend(ctx, addr, cred, be)
	if err != nil {
		var se *wire.ServerError
		var re *sqltext.RefusedError
		if errors.As(err, &se) || errors.As(err, &re) {
			return err
		}
		return &unreachableError{err: err, timeout: timeout, timedOut: !time.Now().Before(deadline)}
	}
	_ = s.backend.SetDeadline(time.Time{})
	return nil
}

// loginBackend logs into the backend, within ctx, and sets the session up.
func (s *session) loginBackend(ctx context.Context, addr string, cred Credential, be *Backend) error {
	caps := uint32(gm.CLIENT_SESSION_TRACK)
	for _, f := range []uint32{gm.CLIENT_FOUND_ROWS, gm.CLIENT_IGNORE_SPACE, gm.CLIENT_MULTI_STATEMENTS, gm.CLIENT_MULTI_RESULTS, gm.CLIENT_PS_MULTI_RESULTS} {
		caps |= s.caps & f
	}
	if s.srv.opts.AllowLocalInfile && s.caps&gm.CLIENT_LOCAL_FILES != 0 {
		caps |= gm.CLIENT_LOCAL_FILES
	}
	collation := uint8(45) // utf8mb4_general_ci
	if co, err := charset.GetCollationByID(int(s.hs.Charset)); err == nil && co.ID <= 255 {
		collation = uint8(co.ID)
	}
	identity := ""
	if s.identity != nil {
		identity = s.identity.Name
	}
	dial := s.srv.dialer(&net.Dialer{Control: s.srv.opts.DialControl, KeepAlive: 30 * time.Second})
	c, info, err := dialLogin(ctx, dial, addr, be, s.srv.opts.MaxPacket, &wire.ClientConfig{
		User: cred.User, Password: cred.Password, DB: s.db, Collation: collation, Capabilities: caps,
		Attrs: backendAttrs(s.hs.Attrs, identity, s.id),
	})
	if err != nil {
		return err
	}
	s.threadID = info.ConnectionID
	s.srv.threads.Store(threadKey{s.beName, s.threadID}, s.identity.Name)
	s.srv.conns.Store(s.connID, threadKey{s.beName, s.threadID})
	s.srv.learnVersion(info.Version)
	s.noteStatus(info.Status & (gm.SERVER_STATUS_AUTOCOMMIT | gm.SERVER_STATUS_IN_TRANS))
	s.backend = c
	c.HandOff = s.srv.opts.HandOff && onThisHost(c.Conn)
	s.tracking = info.Capabilities&gm.CLIENT_SESSION_TRACK != 0
	s.dialect = sqltext.Dialect{Server: sqltext.ParseServerVersion(info.Version)}
	if err := s.setupSession(); err != nil {
		c.Close()
		s.backend = nil
		return err
	}
	return nil
}

// dialLogin connects to a backend and logs in, all by ctx's deadline; the
// connection it returns still has that deadline set.
func dialLogin(ctx context.Context, dial func(ctx context.Context, network, address string) (net.Conn, error), addr string, be *Backend, maxPacket int, cfg *wire.ClientConfig) (*wire.Conn, *wire.ServerInfo, error) {
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
	defer stop()
	cfg.ServerPublicKey = be.ServerPublicKey
	if be.TLS != nil {
		tc := be.TLS
		if tc.ServerName == "" && !tc.InsecureSkipVerify {
			tc = tc.Clone()
			tc.ServerName, _, _ = net.SplitHostPort(addr)
		}
		cfg.TLS = tc
	}
	c := wire.NewConn(nc, maxPacket)
	info, err := wire.ClientHandshake(c, cfg)
	if err == nil && !stop() {
		err = ctx.Err()
	}
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return c, info, nil
}

// setupSession turns on session tracking on the backend leg (every system
// variable a statement changes is then named in its OK) and reads how the
// backend will read this session's statements: the sql_mode and client
// character set the login left (the client's collation, IGNORE_SPACE, the
// server's defaults). A mode the parser cannot follow or a character set it
// cannot read safely refuses the session (a *sqltext.RefusedError).
func (s *session) setupSession() error {
	if s.tracking {
		if _, err := wire.SimpleQuery(s.backend, "SET SESSION session_track_system_variables = '*'"); err != nil {
			return fmt.Errorf("turn on session tracking: %w", err)
		}
	}
	return s.readSession()
}

// readSession reads the session's lexing state from the backend.
func (s *session) readSession() error {
	q := "SELECT @@session.sql_mode, @@session.character_set_client"
	if s.tracking {
		q += ", @@session.session_track_system_variables"
	}
	rows, err := wire.SimpleQuery(s.backend, q)
	if err != nil {
		return fmt.Errorf("read session sql_mode: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) < 2 {
		return fmt.Errorf("read session sql_mode: %w: %d rows", wire.ErrMalformed, len(rows))
	}
	mode, err := sqltext.ParseSQLMode(rows[0][0])
	if err != nil {
		return &sqltext.RefusedError{Reason: err.Error()}
	}
	cs, err := sqltext.ClientCharset(rows[0][1])
	if err != nil {
		return &sqltext.RefusedError{Reason: err.Error()}
	}
	if s.tracking && (len(rows[0]) < 3 || rows[0][2] != "*") {
		return &sqltext.RefusedError{Reason: "session tracking was turned off (session_track_system_variables is not '*')"}
	}
	s.dialect.Mode, s.dialect.Charset = mode, cs
	return nil
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, wire.ErrClientGone) ||
		errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "connection reset by peer")
}

// unreachableError is a backend login that failed for want of a database
// answering: nothing listening, a connection closed or left silent.
type unreachableError struct {
	err      error
	timeout  time.Duration
	timedOut bool
}

func (e *unreachableError) Error() string { return e.reason() }
func (e *unreachableError) Unwrap() error { return e.err }

// reason says briefly why, without the wrapping layers' noise.
func (e *unreachableError) reason() string {
	if e.timedOut || errors.Is(e.err, context.DeadlineExceeded) || isTimeout(e.err) {
		return fmt.Sprintf("no answer within %s", e.timeout)
	}
	var errno syscall.Errno
	if errors.As(e.err, &errno) {
		return errno.Error()
	}
	if errors.Is(e.err, gm.ErrBadConn) || errors.Is(e.err, io.EOF) || errors.Is(e.err, io.ErrUnexpectedEOF) {
		return "connection closed during login"
	}
	err := e.err
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(err) {
		err = u
	}
	return err.Error()
}

// loginFailure is the ERR a client gets when its backend login failed. A
// server error in the client range (2000-2999, CR_*) is never sent:
// libmariadb-based clients read one as a malformed packet, so an
// unreachable backend is 1045 with SQLSTATE 08S01 (a connection failure,
// which pools retry).
func loginFailure(name, addr string, err error) (code uint16, state, msg string) {
	var me *wire.ServerError
	var re *sqltext.RefusedError
	var ue *unreachableError
	switch {
	case errors.As(err, &me):
		code, state = me.Code, me.State
		if code >= 2000 && code < 3000 {
			code = wire.ErrCodeAccessDenied
		}
		return code, state, fmt.Sprintf("sqlwarden: backend %s at %s refused the login: %s", name, addr, me.Message)
	case errors.As(err, &re):
		return wire.ErrCodeNotSupported, "", "sqlwarden: session refused: " + re.Reason
	case errors.Is(err, wire.ErrUnsupportedAuth):
		// The proxy's own refusal to answer the server as it asked.
		msg := err.Error()
		if ue, ok := err.(*unreachableError); ok {
			msg = ue.err.Error() // the whole reason, not its innermost word
		}
		if i := strings.Index(msg, wire.ErrUnsupportedAuth.Error()+": "); i >= 0 {
			msg = msg[i+len(wire.ErrUnsupportedAuth.Error())+2:]
		}
		return wire.ErrCodeAccessDenied, "08S01", fmt.Sprintf("sqlwarden: backend %s at %s: login refused by sqlwarden: %s", name, addr, msg)
	case errors.As(err, &ue):
		return wire.ErrCodeAccessDenied, "08S01", fmt.Sprintf("sqlwarden: backend %s at %s unreachable: %s", name, addr, ue.reason())
	}
	return wire.ErrCodeAccessDenied, "08S01", fmt.Sprintf("sqlwarden: backend %s at %s unreachable: %v", name, addr, err)
}

// onThisHost reports whether c's peer is a process of this machine: over a
// Unix socket, a loopback address, or the connection's own local address
// (the host reaching itself through one of its addresses). The hand-off
// (wire.Conn.HandOff) helps only then, the bytes written waking a thread
// here; toward another host it would only give the CPU to unrelated work.
func onThisHost(c net.Conn) bool {
	switch ra := c.RemoteAddr().(type) {
	case *net.UnixAddr:
		return true
	case *net.TCPAddr:
		la, ok := c.LocalAddr().(*net.TCPAddr)
		return ra.IP.IsLoopback() || (ok && la.IP.Equal(ra.IP))
	}
	return false
}

// destinationAllowed reports whether a redirected connection's original
// destination may receive a backend's login.
func destinationAllowed(allowed []netip.Prefix, dst netip.Addr) bool {
	dst = dst.Unmap()
	for _, p := range allowed {
		if p.Contains(dst) {
			return true
		}
	}
	return false
}
