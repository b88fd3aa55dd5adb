package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// Bounds on connections that have not logged in yet: whoever can reach the
// listener can open them, so what each may cost is bounded (a 64 KiB packet
// limit, the handshake timeout) and so is how many there are.
const (
	DefaultHandshakeTimeout    = 10 * time.Second
	DefaultMaxPending          = 512
	DefaultMaxPendingPerSource = 64
)

// ErrCodeTooManyConnections is ER_CON_COUNT_ERROR, what MariaDB itself sends
// before the greeting when it takes no more connections.
const ErrCodeTooManyConnections uint16 = 1040

// admitPending counts a new connection from src as pending, or returns why
// it is refused.
func (s *Server) admitPending(src netip.Addr) string {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	if s.pending >= s.opts.MaxPending {
		return fmt.Sprintf("sqlwarden: too many connections waiting to log in (max_unauthenticated_connections %d)", s.opts.MaxPending)
	}
	if s.pendingFrom[src] >= s.opts.MaxPendingPerSource {
		return fmt.Sprintf("sqlwarden: too many connections from %s waiting to log in (max_unauthenticated_per_source %d)", src, s.opts.MaxPendingPerSource)
	}
	s.pending++
	s.pendingFrom[src]++
	return ""
}

// releasePending ends a pending connection's count.
func (s *Server) releasePending(src netip.Addr) {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	s.pending--
	if n := s.pendingFrom[src] - 1; n > 0 {
		s.pendingFrom[src] = n
	} else {
		delete(s.pendingFrom, src)
	}
}

// Pending returns the number of connections that have not logged in yet.
func (s *Server) Pending() int {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	return s.pending
}

// refusePending answers a connection over the limits with ERR 1040 in
// place of the greeting (as the server does when full) and closes it. The
// write goes to a fresh socket's empty buffer; the deadline only guards it.
func (s *Server) refusePending(c net.Conn, msg string) {
	s.opts.Observer.ConnOpened()
	s.log.Debug("connection refused before login", "client", c.RemoteAddr().String(), "reason", msg)
	p := wire.ErrPacket(ErrCodeTooManyConnections, "08004", msg)
	frame := append([]byte{byte(len(p)), byte(len(p) >> 8), byte(len(p) >> 16), 0}, p...)
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(frame)
	c.Close()
	s.opts.Observer.ConnClosed("login_limit")
}

// authenticated ends the session's pending state: the client logged in.
func (sess *session) authenticated() {
	if sess.pending {
		sess.pending = false
		sess.srv.releasePending(sess.pendingFrom)
	}
}
