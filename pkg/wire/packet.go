package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
)

// MaxPayload is the largest payload of one physical packet; a logical payload
// of this size or more continues in the following packets.
const MaxPayload = 1<<24 - 1

// ErrMalformed marks a packet that violates the protocol. The proxy ends the
// connection that sent it; it never affects another connection.
var ErrMalformed = errors.New("malformed packet")

// ErrOutOfOrder marks a continuation packet whose sequence id does not
// follow the one before it (the server's ER_NET_PACKETS_OUT_OF_ORDER).
var ErrOutOfOrder = fmt.Errorf("%w: packets out of order", ErrMalformed)

// ErrTooLarge marks a logical packet larger than the configured limit.
var ErrTooLarge = errors.New("packet exceeds max_packet_size")

// Conn frames MySQL packets on one leg of a proxied connection. Reads come
// from a large buffered reader so a typical packet is sliced out of the
// buffer without a copy; writes go to a buffered writer flushed once per
// response. The buffers come from a pool shared by every connection and go
// back to it when a leg is released between commands (Release, Idle), so
// an idle session holds no buffer: a session's memory follows what it is
// doing, not how long it stays open.
type Conn struct {
	net.Conn

	// Seq is the sequence id of the next packet to write.
	Seq uint8

	// MaxPacket bounds a logical (multi-packet) payload read with ReadPacket.
	MaxPacket int

	// HandOff makes Flush and FlushAwait, once they have written, give up
	// the rest of the thread's time slice (sched_yield). The bytes wake the
	// peer blocked reading them, and the kernel puts it on the writer's
	// CPU, expecting the writer to sleep next as a blocking client would;
	// a Go thread instead goes on to serve other sessions, and the woken
	// peer waits behind them while another CPU may idle. Yielding lets the
	// peer run at once; with nothing else runnable it costs one system
	// call. Set it on a proxy's legs, whose next step after a flush is to
	// wait for the peer's answer.
	HandOff bool

	r   *bufio.Reader // nil while released; reads from src
	w   *bufio.Writer // nil while released; writes to snk
	src source
	snk sink
	// raw is the socket under the transport (nil without one); awaitFn is
	// FlushAwait's poller callback (awaitStep, bound once), then its state.
	raw       syscall.RawConn
	awaitFn   func(uintptr) bool
	awaitSent bool
	awaitErr  error
	// idle is the small buffer an idle leg waits in (Idle); waitIdle says
	// the next read waits there before taking a read buffer.
	idle     []byte
	waitIdle bool

	buf []byte // reassembly buffer for payloads that do not fit in r
	hdr [4]byte
}

// BufferSize is the size of each leg's read and write buffer.
const BufferSize = 64 << 10

// IdleBufferSize is the buffer an idle leg waits for its peer in: a
// typical command fits, and a longer one continues in a read buffer.
const IdleBufferSize = 2 << 10

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, BufferSize) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, BufferSize) }}
)

// source is what the read buffer reads: the bytes an idle leg received in
// its small buffer, then the transport.
type source struct {
	pre []byte
	c   net.Conn
}

func (s *source) Read(b []byte) (int, error) {
	if len(s.pre) > 0 {
		n := copy(b, s.pre)
		s.pre = s.pre[n:]
		return n, nil
	}
	return s.c.Read(b)
}

// PreAuthMaxPacket bounds a client's logical packet until it has
// authenticated. A handshake response (user, auth data, database, plugin
// name, connection attributes) is a few KB, and a workload token sent as a
// clear-text password a few more; 64 KiB leaves room for large tokens while
// a client that has not logged in can make the proxy hold no more than its
// one read buffer (no reassembly toward max_packet_size).
const PreAuthMaxPacket = 64 << 10

// NewConn wraps c with buffered framing.
func NewConn(c net.Conn, maxPacket int) *Conn {
	wc := &Conn{Conn: c, MaxPacket: maxPacket, src: source{c: c}, snk: sink{c: c}, raw: RawConn(c)}
	wc.awaitFn = wc.awaitStep
	return wc
}

// reader returns the read buffer, taking one from the pool if the leg has
// none; after Idle it first waits for the peer in the small buffer.
func (c *Conn) reader() (*bufio.Reader, error) {
	if c.r != nil {
		return c.r, nil
	}
	if c.waitIdle {
		n, err := c.Conn.Read(c.idle)
		if n == 0 && err != nil {
			return nil, err // still idle: the next read waits again
		}
		c.waitIdle = false
		c.src.pre = c.idle[:n]
	}
	c.r = readers.Get().(*bufio.Reader)
	c.r.Reset(&c.src)
	return c.r, nil
}

func (c *Conn) writer() *bufio.Writer {
	if c.w == nil {
		c.w = writers.Get().(*bufio.Writer)
		c.w.Reset(&c.snk)
	}
	return c.w
}

// Release hands the leg's read and write buffers back to the pool when
// they hold nothing (a buffer that does stays), and drops the reassembly
// buffer of a large packet; the next read or write takes one again. Only
// the goroutine that reads and writes the leg may call it.
func (c *Conn) Release() {
	if c.r != nil && c.r.Buffered() == 0 && len(c.src.pre) == 0 {
		c.r.Reset(nil)
		readers.Put(c.r)
		c.r = nil
	}
	if c.w != nil && c.w.Buffered() == 0 {
		c.w.Reset(nil)
		writers.Put(c.w)
		c.w = nil
	}
	if cap(c.buf) > BufferSize {
		c.buf = nil
	}
}

// Idle is Release for a leg about to wait for its peer: when the read
// buffer went back, the next read waits in a small buffer of its own
// (IdleBufferSize) and takes a read buffer only once the peer has sent.
func (c *Conn) Idle() {
	c.Release()
	if c.r == nil {
		if c.idle == nil {
			c.idle = make([]byte, IdleBufferSize)
		}
		c.waitIdle = true
	}
}

// Peek returns the next n bytes without consuming them.
func (c *Conn) Peek(n int) ([]byte, error) {
	r, err := c.reader()
	if err != nil {
		return nil, err
	}
	return r.Peek(n)
}

// Unflushed returns the number of bytes written but not yet flushed.
func (c *Conn) Unflushed() int {
	if c.w == nil {
		return 0
	}
	return c.w.Buffered()
}

// Reset rebinds the framing to a new transport (after a TLS upgrade).
func (c *Conn) Reset(nc net.Conn) {
	c.Conn = nc
	c.src = source{c: nc}
	c.snk = sink{c: nc}
	c.raw = RawConn(nc)
	c.waitIdle = false
	if c.r != nil {
		c.r.Reset(&c.src)
	}
	if c.w != nil {
		c.w.Reset(&c.snk)
	}
}

// Unbuffered returns the transport with whatever the leg has read but not
// consumed in front of it, for handing the stream to another protocol (the
// TLS handshake after an SSL request).
func (c *Conn) Unbuffered() net.Conn {
	var pre []byte
	if c.r != nil {
		if n := c.r.Buffered(); n > 0 {
			b, _ := c.r.Peek(n)
			pre = append(pre, b...)
		}
	}
	pre = append(pre, c.src.pre...)
	if len(pre) == 0 {
		return c.Conn
	}
	return &prefixConn{Conn: c.Conn, src: source{pre: pre, c: c.Conn}}
}

// prefixConn is the connection with src's bytes read before it.
type prefixConn struct {
	net.Conn
	src source
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.src.Read(b) }

// FirstSeq returns the sequence id of the first physical packet of a logical
// packet of payloadLen bytes whose last physical packet had sequence id last
// (what ReadPacket returns). A payload of n*MaxPayload bytes or more spans
// n+1 physical packets.
func FirstSeq(last uint8, payloadLen int) uint8 {
	return last - uint8(payloadLen/MaxPayload)
}

// Header is a packet header.
type Header struct {
	Len int
	Seq uint8
}

// PeekHeader returns the next packet's header without consuming it.
func (c *Conn) PeekHeader() (Header, error) {
	r, err := c.reader()
	if err != nil {
		return Header{}, err
	}
	h, err := r.Peek(4)
	if err != nil {
		if len(h) > 0 { // the stream ended inside a header
			return Header{}, truncated(err)
		}
		return Header{}, err
	}
	return Header{Len: int(h[0]) | int(h[1])<<8 | int(h[2])<<16, Seq: h[3]}, nil
}

// ReadPacket reads one logical packet (joining continuation packets) and
// returns its payload and the sequence id of its last physical packet. The
// returned slice is valid until the next read on c.
func (c *Conn) ReadPacket() ([]byte, uint8, error) {
	h, err := c.PeekHeader()
	if err != nil {
		return nil, 0, err
	}
	if h.Len < MaxPayload && h.Len+4 <= c.r.Size() && (c.MaxPacket <= 0 || h.Len <= c.MaxPacket) {
		p, err := c.r.Peek(4 + h.Len)
		if err != nil {
			return nil, 0, truncated(err)
		}
		if _, err := c.r.Discard(4 + h.Len); err != nil {
			return nil, 0, err
		}
		return p[4:], h.Seq, nil
	}
	c.buf = c.buf[:0]
	next := h.Seq
	for {
		h, err := c.PeekHeader()
		if err != nil {
			return nil, 0, truncated(err)
		}
		if h.Seq != next {
			// Joined anyway, the payload would reach the server framed in
			// order: the proxy and the server would disagree on the stream.
			return nil, h.Seq, fmt.Errorf("continuation packet with sequence id %d, want %d: %w", h.Seq, next, ErrOutOfOrder)
		}
		next++
		if c.MaxPacket > 0 && len(c.buf)+h.Len > c.MaxPacket {
			// The offending header stays unread; its sequence id lets the
			// caller answer in step.
			return nil, h.Seq, fmt.Errorf("read packet of %d+ bytes: %w", len(c.buf)+h.Len, ErrTooLarge)
		}
		if _, err := c.r.Discard(4); err != nil {
			return nil, 0, err
		}
		n := len(c.buf)
		c.buf = grow(c.buf, h.Len)
		if _, err := io.ReadFull(c.r, c.buf[n:n+h.Len]); err != nil {
			return nil, 0, truncated(err)
		}
		if h.Len < MaxPayload {
			return c.buf, h.Seq, nil
		}
	}
}

// ReadPacketCapped reads one physical packet of up to MaxPayload-1 bytes,
// keeping its first c.MaxPacket bytes and discarding the rest as it streams
// past, so a client that has not logged in can make the proxy hold no more
// than its read buffer. cut reports that bytes were dropped. It is for the
// handshake response, whose tail (connection attributes) may be cut without
// losing the login; a multi-packet payload is refused with ErrTooLarge.
func (c *Conn) ReadPacketCapped() (p []byte, seq uint8, cut bool, err error) {
	h, err := c.PeekHeader()
	if err != nil {
		return nil, 0, false, err
	}
	if h.Len >= MaxPayload {
		return nil, h.Seq, false, fmt.Errorf("read packet of %d+ bytes: %w", h.Len, ErrTooLarge)
	}
	if c.MaxPacket <= 0 || h.Len <= c.MaxPacket {
		p, seq, err = c.ReadPacket()
		return p, seq, false, err
	}
	if _, err := c.r.Discard(4); err != nil {
		return nil, 0, false, truncated(err)
	}
	c.buf = grow(c.buf[:0], c.MaxPacket)
	if _, err := io.ReadFull(c.r, c.buf); err != nil {
		return nil, 0, false, truncated(err)
	}
	if _, err := c.r.Discard(h.Len - c.MaxPacket); err != nil {
		return nil, 0, false, truncated(err)
	}
	return c.buf, h.Seq, true, nil
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*cap(b)+n)
	copy(nb, b)
	return nb
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("read packet: %w: truncated", ErrMalformed)
	}
	return err
}

// WritePacket frames payload (splitting at MaxPayload) with sequence ids
// starting at c.Seq, into the write buffer. Call Flush to send.
func (c *Conn) WritePacket(payload []byte) error {
	w := c.writer()
	for {
		n := len(payload)
		if n > MaxPayload {
			n = MaxPayload
		}
		// A field, not a local: the writer may hand the slice to the
		// transport, which would move a local to the heap on every packet.
		c.hdr = [4]byte{byte(n), byte(n >> 8), byte(n >> 16), c.Seq}
		c.Seq++
		if _, err := w.Write(c.hdr[:]); err != nil {
			return err
		}
		if _, err := w.Write(payload[:n]); err != nil {
			return err
		}
		payload = payload[n:]
		if n < MaxPayload {
			return nil
		}
	}
}

// WriteRaw writes already-framed bytes.
func (c *Conn) WriteRaw(b []byte) error {
	_, err := c.writer().Write(b)
	return err
}

// Flush sends buffered packets.
func (c *Conn) Flush() error {
	if c.w == nil {
		return nil
	}
	if !c.HandOff || c.w.Buffered() == 0 {
		return c.w.Flush()
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	yieldCPU()
	return nil
}
