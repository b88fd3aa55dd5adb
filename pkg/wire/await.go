package wire

import (
	"errors"
	"net"
	"syscall"
)

// sink is what the write buffer writes to: the transport, or — while
// FlushAwait runs inside the poller's read wait — the socket itself.
type sink struct {
	c      net.Conn
	direct bool // FlushAwait is writing on fd
	fd     int
}

func (s *sink) Write(b []byte) (int, error) {
	if !s.direct {
		return s.c.Write(b)
	}
	n := 0
	for n < len(b) {
		m, err := syscall.Write(s.fd, b[n:])
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if errors.Is(err, syscall.EAGAIN) {
			break // the socket buffer is full: the transport waits for room
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	if n < len(b) {
		m, err := s.c.Write(b[n:])
		return n + m, err
	}
	return n, nil
}

// RawConn returns c's own socket when it is one (TCP and Unix sockets);
// nil for TLS, whose socket carries records, not c's bytes, and for
// in-memory pipes. A caller that wants the socket under TLS unwraps it
// first (NetConn).
func RawConn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// FlushAwait is Flush for a command whose reply is read next: it sends the
// buffered packets and returns once the peer's reply has begun to arrive,
// so the read that follows finds data at its first system call. A plain
// Flush followed by a read tries that read once in vain (nothing can have
// come back yet), then waits in the poller and reads again: one system call
// per statement more.
//
// The write is made inside the poller's read wait, after the wait has been
// armed, so a reply cannot arrive unseen between the write and the wait. A
// failure while waiting — the connection closed, its read deadline passed —
// is left for that next read to report; a write error is returned. On a
// transport without a socket (TLS, pipes) or with bytes already buffered to
// read, it is Flush.
func (c *Conn) FlushAwait() error {
	if c.w == nil || c.w.Buffered() == 0 {
		return nil
	}
	if c.raw == nil || len(c.src.pre) > 0 || (c.r != nil && c.r.Buffered() > 0) {
		return c.Flush()
	}
	c.awaitSent, c.awaitErr = false, nil
	_ = c.raw.Read(c.awaitFn)
	if !c.awaitSent {
		// The wait could not start (closed, deadline passed): send as
		// Flush does, which reports what is wrong.
		return c.Flush()
	}
	return c.awaitErr
}

// awaitStep is FlushAwait's poller callback: the first call writes and asks
// to wait, the next (the socket is readable) ends the wait without reading.
func (c *Conn) awaitStep(fd uintptr) bool {
	if c.awaitSent {
		return true
	}
	c.awaitSent = true
	c.snk.direct, c.snk.fd = true, int(fd)
	c.awaitErr = c.w.Flush()
	c.snk.direct = false
	if c.awaitErr == nil && c.HandOff {
		// The reply, if the peer is quick, is then there before the wait.
		yieldCPU()
	}
	return c.awaitErr != nil
}
