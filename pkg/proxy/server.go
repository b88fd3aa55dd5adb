package proxy

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// Backend is where an identity's statements go.
type Backend struct {
	Name    string
	Address string // "" → the origin's destination
	// Credential returns the current login (secret files are re-read on change).
	Credential func() (Credential, error)
	TLS        *tls.Config // nil: plaintext
	// ConnectTimeout bounds a login: connecting, the greeting, TLS and
	// authentication (0: DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// Destinations bound a backend without an Address: a redirected
	// connection's original destination must be in one of them, or the
	// login (and the credential) goes nowhere.
	Destinations []netip.Prefix
	// ServerPublicKey: the server's RSA key for a full authentication
	// without TLS (nil: such a login is refused).
	ServerPublicKey *rsa.PublicKey
}

// Options are the proxy's dependencies, injected in one place.
type Options struct {
	Log        *slog.Logger
	Audit      Auditor
	Auth       Authenticator
	Origins    Origins // nil: explicit mode only
	Policy     Policy
	Approver   Approver // nil: "approve" verdicts are denied
	Masker     Masker   // nil: no masking
	Observer   Observer
	Backends   map[string]*Backend
	ClientTLS  *tls.Config // nil: TLS not offered
	RequireTLS bool
	// DialControl marks the proxy's own backend sockets so the redirect
	// never sends them back to the proxy.
	DialControl func(network, address string, c syscall.RawConn) error
	// Dial opens every backend connection (sessions, control connections,
	// the version probe) in place of a TCP dial with DialControl; nil in
	// the daemon. Tests connect the proxy to an in-process backend with it.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// AllowLocalInfile lets policy-approved LOAD DATA LOCAL INFILE through
	// (the file always comes from the client).
	AllowLocalInfile bool
	// HandOff sets wire.Conn.HandOff on a session's client and backend legs
	// whose peer is on this machine (onThisHost; a redirected client always
	// is): after each flush the session's thread yields its CPU to the peer
	// those bytes woke.
	HandOff bool
	// ClientAuthPlugin is offered first in the greeting ("" means
	// mysql_native_password).
	ClientAuthPlugin string
	MaxPacket        int
	// MaxStatement bounds the SQL text of a COM_QUERY or COM_STMT_PREPARE
	// (default 64 MiB): parsing one costs about ten times its size.
	MaxStatement int
	// HandshakeTimeout bounds a login from accept until the client has
	// authenticated (default 10s).
	HandshakeTimeout time.Duration
	// MaxPending bounds the connections that have not authenticated yet,
	// overall and per source address (defaults 512 and 64); past them a
	// new connection gets ERR 1040 and is closed before the greeting.
	MaxPending          int
	MaxPendingPerSource int
	ServerVersion       string
	Node                string
	// Results keeps the first rows of each text-protocol result (as the
	// client received them, masked) in the outcome record; off by default.
	Results record.Results
	// Clock is injectable for tests.
	Now func() time.Time
}

// Server is the proxy.
type Server struct {
	opts Options
	log  *slog.Logger

	nextConn atomic.Uint32
	large    *largeBytes // the bytes of large statements in flight

	// watch notices backends that close idle sessions; started with the
	// first backend login (nil: not available).
	watchMu     sync.Mutex
	watch       *backendWatch
	watchFailed bool
	watchClosed bool

	mu        sync.Mutex
	listeners []net.Listener
	sessions  map[*session]struct{}
	closing   bool
	wg        sync.WaitGroup

	versionMu sync.RWMutex
	version   string
	probeOnce sync.Once

	// threadKey (backend, thread id) → identity name, for KILL checks.
	threads sync.Map
	// greeting connection id → threadKey: clients KILL the id the greeting
	// gave them (mysql_thread_id()), which the proxy maps to the backend's.
	conns sync.Map

	// Per-identity limit state on this node (limits.go).
	limMu  sync.Mutex
	idents map[string]*identState
	// Control connections for KILL QUERY (control.go).
	ctlMu    sync.Mutex
	controls map[controlKey]*controlConn
	// tables caches table metadata (engines, view definitions) for the
	// read_only and max_affected_rows limits.
	tables tables

	// Connections that have not authenticated yet (pending.go).
	pendMu      sync.Mutex
	pending     int
	pendingFrom map[netip.Addr]int
}

// New returns a proxy server.
func New(opts Options) (*Server, error) {
	if opts.Audit == nil || opts.Auth == nil || opts.Policy == nil {
		return nil, errors.New("new proxy: Audit, Auth and Policy are required")
	}
	if len(opts.Backends) == 0 {
		return nil, errors.New("new proxy: no backends")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.MaxPacket == 0 {
		opts.MaxPacket = 1 << 30
	}
	if opts.MaxStatement == 0 {
		opts.MaxStatement = 64 << 20
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	if opts.MaxPendingPerSource <= 0 {
		opts.MaxPendingPerSource = DefaultMaxPendingPerSource
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ServerVersion == "" {
		opts.ServerVersion = "10.11.0-MariaDB-sqlwarden"
	}
	srv := &Server{opts: opts, log: opts.Log, sessions: map[*session]struct{}{}, version: opts.ServerVersion, pendingFrom: map[netip.Addr]int{},
		large: newLargeBytes()}
	srv.nextConn.Store(proxyConnIDBase)
	return srv, nil
}

// backendWatch returns the server's watch, starting it on first use; nil
// when it cannot run (then a backend's close is noticed at the session's
// next command) or the server has shut down.
func (s *Server) backendWatch() *backendWatch {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.watch == nil && !s.watchFailed && !s.watchClosed {
		w, err := newBackendWatch(s.log)
		if err != nil {
			s.watchFailed = true
			s.log.Warn("backends closing idle sessions are noticed only at the next command", "err", err)
			return nil
		}
		s.watch = w
	}
	return s.watch
}

func (s *Server) closeWatch() {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	s.watchClosed = true
	if s.watch != nil {
		s.watch.close()
		s.watch = nil
	}
}

// Serve accepts connections on ln until Shutdown. It may be called for
// several listeners (the plain listen address and the node address).
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	s.probeOnce.Do(func() { go s.probeVersion() })
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		src := addrPort(c.RemoteAddr()).Addr()
		if msg := s.admitPending(src); msg != "" {
			s.refusePending(c, msg)
			continue
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			s.releasePending(src)
			c.Close()
			return nil
		}
		sess := newSession(s, c)
		sess.pendingFrom, sess.pending = src, true
		s.sessions[sess] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			sess.run()
			s.mu.Lock()
			delete(s.sessions, sess)
			s.mu.Unlock()
		}()
	}
}

// Shutdown stops accepting, lets sessions finish their current command and
// close at their next command boundary, and force-closes what remains when
// ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for _, ln := range s.listeners {
		ln.Close()
	}
	for sess := range s.sessions {
		sess.drain()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	defer s.closeControls()
	defer s.closeWatch()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for sess := range s.sessions {
			sess.kill("shutdown deadline")
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// Active returns the number of open sessions.
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Server) serverVersion() string {
	s.versionMu.RLock()
	defer s.versionMu.RUnlock()
	return s.version
}

func (s *Server) learnVersion(v string) {
	if v == "" {
		return
	}
	s.versionMu.Lock()
	s.version = v
	s.versionMu.Unlock()
}

func (s *Server) append(r *record.Record) error {
	s.stamp(r)
	return s.opts.Audit.Append(r)
}

// appendAsync journals a record nothing waits for (outcome, session end).
func (s *Server) appendAsync(r *record.Record) error {
	s.stamp(r)
	return s.opts.Audit.AppendAsync(r)
}

// dialer is how backend connections are opened: d (a TCP dialer marked
// by DialControl), or Options.Dial when set.
func (s *Server) dialer(d *net.Dialer) func(ctx context.Context, network, address string) (net.Conn, error) {
	if s.opts.Dial != nil {
		return s.opts.Dial
	}
	return d.DialContext
}

func (s *Server) stamp(r *record.Record) {
	if r.TS.IsZero() {
		r.TS = s.opts.Now().UTC()
	}
	if r.Node == "" {
		r.Node = s.opts.Node
	}
}
