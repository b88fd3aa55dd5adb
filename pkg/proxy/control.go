package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// Control connections: the daemon's own connection to a backend, with the
// backend's credential, used to stop a session's running statement (KILL
// QUERY) when a limit fires. The session's own connection is busy streaming
// the reply, and reading it to the end would take as long as the statement.
// One per backend address, opened on first use, reused, and serialized: a
// KILL takes a round trip, so one connection serves a node's firings.

// controlTimeout bounds a control connection's dial and each KILL.
const controlTimeout = 5 * time.Second

// maxControls bounds the control connections a node keeps (one per
// backend address; redirect-mode backends may have many addresses).
const maxControls = 64

type controlConn struct {
	mu       sync.Mutex
	be       *Backend
	addr     string
	conn     *wire.Conn
	lastUsed time.Time
}

type controlKey struct{ backend, addr string }

// control returns the control connection slot for a backend address.
func (s *Server) control(be *Backend, addr string) *controlConn {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	if s.controls == nil {
		s.controls = map[controlKey]*controlConn{}
	}
	k := controlKey{be.Name, addr}
	if c := s.controls[k]; c != nil {
		return c
	}
	if len(s.controls) >= maxControls {
		// Close the least recently used idle one.
		var oldK controlKey
		var old *controlConn
		for k, c := range s.controls {
			if c.mu.TryLock() {
				if old == nil || c.lastUsed.Before(old.lastUsed) {
					if old != nil {
						old.mu.Unlock()
					}
					oldK, old = k, c
				} else {
					c.mu.Unlock()
				}
			}
		}
		if old != nil {
			old.close()
			old.mu.Unlock()
			delete(s.controls, oldK)
		}
	}
	c := &controlConn{be: be, addr: addr}
	s.controls[k] = c
	return c
}

// closeControls closes every control connection (at shutdown).
func (s *Server) closeControls() {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	for k, c := range s.controls {
		c.mu.Lock()
		c.close()
		c.mu.Unlock()
		delete(s.controls, k)
	}
}

func (c *controlConn) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

// killQuery stops the statement backend thread `thread` is running. A
// thread with nothing running (the statement just ended) is left alone by
// the server; one that is gone is not an error.
func (s *Server) killQuery(be *Backend, addr string, thread uint32) error {
	c := s.control(be, addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastUsed = time.Now()
	q := "KILL QUERY " + strconv.FormatUint(uint64(thread), 10)
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		if c.conn == nil {
			if c.conn, err = s.dialControl(be, addr); err != nil {
				return fmt.Errorf("open control connection to %s: %w", addr, err)
			}
		}
		_, err = c.query(q)
		if err == nil {
			return nil
		}
		var se *wire.ServerError
		if errors.As(err, &se) {
			if se.Code == wire.ErrCodeUnknownThread {
				return nil
			}
			return fmt.Errorf("kill query %d: %w", thread, err)
		}
		// A broken connection (the server restarted, an idle timeout): once more
		// on a fresh one.
		c.close()
	}
	return fmt.Errorf("kill query %d: %w", thread, err)
}

// dialControl logs a control connection in with the backend's credential,
// through the same login as a session's (TLS, no key fetched in plaintext,
// no cleartext password without TLS).
func (s *Server) dialControl(be *Backend, addr string) (*wire.Conn, error) {
	cred, err := be.Credential()
	if err != nil {
		return nil, fmt.Errorf("backend %s credential: %w", be.Name, err)
	}
	dial := s.dialer(&net.Dialer{Timeout: controlTimeout, Control: s.opts.DialControl, KeepAlive: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	c, _, err := dialLogin(ctx, dial, addr, be, s.opts.MaxPacket, &wire.ClientConfig{
		User: cred.User, Password: cred.Password, Collation: 45, // utf8mb4_general_ci
		Attrs: map[string]string{"_client_name": "sqlwarden", "program_name": "sqlwarden-control"},
	})
	return c, err
}

// query runs q on the control connection within controlTimeout.
func (c *controlConn) query(q string) ([][]string, error) {
	_ = c.conn.SetDeadline(time.Now().Add(controlTimeout))
	rows, err := wire.SimpleQuery(c.conn, q)
	_ = c.conn.SetDeadline(time.Time{})
	return rows, err
}
