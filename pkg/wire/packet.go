package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
)

// MaxPayload is the largest payload of one physical packet; a logical payload
// of this size or more continues in the following packets.
const MaxPayload = 1<<24 - 1

// ErrMalformed marks a packet that violates the protocol. The proxy ends the
// connection that sent it; it never affects another connection.
var ErrMalformed = errors.New("malformed packet")

// ErrTooLarge marks a logical packet larger than the configured limit.
var ErrTooLarge = errors.New("packet exceeds max_packet_size")

// Conn frames MySQL packets on one leg of a proxied connection. Reads come
// from a large buffered reader so a typical packet is sliced out of the
// buffer without a copy; writes go to a buffered writer flushed once per
// response.
type Conn struct {
	net.Conn
	R *bufio.Reader
	W *bufio.Writer

	// Seq is the sequence id of the next packet to write.
	Seq uint8

	// MaxPacket bounds a logical (multi-packet) payload read with ReadPacket.
	MaxPacket int

	buf []byte // reassembly buffer for payloads that do not fit in R
	hdr [4]byte
}

// BufferSize is the size of each leg's read and write buffer.
const BufferSize = 64 << 10

// PreAuthMaxPacket bounds a client's logical packet until it has
// authenticated. A handshake response (user, auth data, database, plugin
// name, connection attributes) is a few KB, and a workload token sent as a
// clear-text password a few more; 64 KiB leaves room for large tokens while
// a client that has not logged in can make the proxy hold no more than its
// one read buffer (no reassembly toward max_packet_size).
const PreAuthMaxPacket = 64 << 10

// NewConn wraps c with buffered framing.
func NewConn(c net.Conn, maxPacket int) *Conn {
	return &Conn{Conn: c, R: bufio.NewReaderSize(c, BufferSize), W: bufio.NewWriterSize(c, BufferSize), MaxPacket: maxPacket}
}

// Reset rebinds the framing to a new transport (after a TLS upgrade).
func (c *Conn) Reset(nc net.Conn) {
	c.Conn = nc
	c.R.Reset(nc)
	c.W.Reset(nc)
}

// Unbuffered returns the transport with whatever the read buffer already
// holds in front of it, for handing the stream to another protocol (the TLS
// handshake after an SSL request).
func (c *Conn) Unbuffered() net.Conn {
	n := c.R.Buffered()
	if n == 0 {
		return c.Conn
	}
	pre, _ := c.R.Peek(n)
	return &prefixConn{Conn: c.Conn, pre: append([]byte(nil), pre...)}
}

// prefixConn reads pre before the connection itself.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

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
	h, err := c.R.Peek(4)
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
	if h.Len < MaxPayload && h.Len+4 <= c.R.Size() && (c.MaxPacket <= 0 || h.Len <= c.MaxPacket) {
		p, err := c.R.Peek(4 + h.Len)
		if err != nil {
			return nil, 0, truncated(err)
		}
		if _, err := c.R.Discard(4 + h.Len); err != nil {
			return nil, 0, err
		}
		return p[4:], h.Seq, nil
	}
	c.buf = c.buf[:0]
	for {
		h, err := c.PeekHeader()
		if err != nil {
			return nil, 0, truncated(err)
		}
		if c.MaxPacket > 0 && len(c.buf)+h.Len > c.MaxPacket {
			// The offending header stays unread; its sequence id lets the
			// caller answer in step.
			return nil, h.Seq, fmt.Errorf("read packet of %d+ bytes: %w", len(c.buf)+h.Len, ErrTooLarge)
		}
		if _, err := c.R.Discard(4); err != nil {
			return nil, 0, err
		}
		n := len(c.buf)
		c.buf = grow(c.buf, h.Len)
		if _, err := io.ReadFull(c.R, c.buf[n:n+h.Len]); err != nil {
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
	if _, err := c.R.Discard(4); err != nil {
		return nil, 0, false, truncated(err)
	}
	c.buf = grow(c.buf[:0], c.MaxPacket)
	if _, err := io.ReadFull(c.R, c.buf); err != nil {
		return nil, 0, false, truncated(err)
	}
	if _, err := c.R.Discard(h.Len - c.MaxPacket); err != nil {
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
	for {
		n := len(payload)
		if n > MaxPayload {
			n = MaxPayload
		}
		// A field, not a local: the writer may hand the slice to the
		// transport, which would move a local to the heap on every packet.
		c.hdr = [4]byte{byte(n), byte(n >> 8), byte(n >> 16), c.Seq}
		c.Seq++
		if _, err := c.W.Write(c.hdr[:]); err != nil {
			return err
		}
		if _, err := c.W.Write(payload[:n]); err != nil {
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
	_, err := c.W.Write(b)
	return err
}

// Flush sends buffered packets.
func (c *Conn) Flush() error { return c.W.Flush() }
