package wire

import (
	"bytes"
	"errors"
	"net"
	"os"
	"testing"
)

// pipeConn is a net.Conn reading from a fixed byte stream and writing to a
// buffer.
type pipeConn struct {
	net.Conn
	r *bytes.Reader
	w bytes.Buffer
}

func (p *pipeConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeConn) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipeConn) Close() error                { return nil }

func connOver(stream []byte, maxPacket int) (*Conn, *pipeConn) {
	pc := &pipeConn{r: bytes.NewReader(stream)}
	return NewConn(pc, maxPacket), pc
}

// frame builds one physical packet.
func frame(seq uint8, payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...)
}

func TestReadPacket(t *testing.T) {
	big := bytes.Repeat([]byte{'q'}, MaxPayload)
	tests := []struct {
		name    string
		stream  []byte
		max     int
		payload []byte
		seq     uint8
		first   uint8 // sequence id of the first physical packet
		err     error
	}{
		{
			name: "COM_PING",
			stream: []byte{
				0x01, 0x00, 0x00, // payload length 1
				0x00, // sequence id
				0x0e, // COM_PING
			},
			payload: []byte{0x0e}, seq: 0,
		},
		{
			name: "COM_QUERY SELECT 1",
			stream: []byte{
				0x09, 0x00, 0x00, // length 9
				0x00,                                   // sequence id
				0x03,                                   // COM_QUERY
				'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', // query text
			},
			payload: []byte("\x03SELECT 1"), seq: 0,
		},
		{
			name: "empty payload",
			stream: []byte{
				0x00, 0x00, 0x00, // length 0
				0x05, // sequence id
			},
			payload: []byte{}, seq: 5, first: 5,
		},
		{
			name: "exactly MaxPayload is followed by an empty packet",
			stream: append(frame(0, big), 0x00, 0x00, 0x00, // length 0: end of the logical packet
				0x01), // sequence id 1
			payload: big, seq: 1,
		},
		{
			name:    "MaxPayload plus 3 bytes spans two packets",
			stream:  append(frame(0, big), frame(1, []byte("end"))...),
			payload: append(append([]byte(nil), big...), "end"...), seq: 1,
		},
		{
			name:   "truncated header",
			stream: []byte{0x05, 0x00},
			err:    ErrMalformed,
		},
		{
			name: "truncated payload",
			stream: []byte{
				0x05, 0x00, 0x00, // length 5
				0x00,      // sequence id
				0x03, 'S', // only 2 of 5 bytes
			},
			err: ErrMalformed,
		},
		{
			name:   "continuation missing",
			stream: frame(0, big),
			err:    ErrMalformed,
		},
		{
			name:   "continuation out of order",
			stream: append(frame(0, big), frame(7, []byte("end"))...),
			err:    ErrOutOfOrder,
			seq:    7,
		},
		{
			name:   "larger than max_packet_size",
			stream: append(frame(0, big), frame(1, []byte("end"))...),
			max:    MaxPayload,
			err:    ErrTooLarge,
			seq:    1, // the continuation that crossed the limit
		},
		{
			// Before login: refused at the header, even though it would fit
			// the read buffer.
			name:   "larger than a limit below the buffer size",
			stream: frame(1, bytes.Repeat([]byte{'x'}, 4097)),
			max:    4096,
			err:    ErrTooLarge,
			seq:    1,
		},
		{
			name:   "16 MiB continuation before login",
			stream: []byte{0xff, 0xff, 0xff, 0x01, 'x'}, // 16 MiB - 1 announced, 1 byte sent
			max:    PreAuthMaxPacket,
			err:    ErrTooLarge,
			seq:    1,
		},
		{
			name:    "exactly the limit",
			stream:  frame(2, bytes.Repeat([]byte{'y'}, 4096)),
			max:     4096,
			payload: bytes.Repeat([]byte{'y'}, 4096), seq: 2, first: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := connOver(tc.stream, tc.max)
			p, seq, err := c.ReadPacket()
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				if (errors.Is(err, ErrTooLarge) || errors.Is(err, ErrOutOfOrder)) && seq != tc.seq {
					t.Fatalf("ErrTooLarge with seq %d, want the offending header's %d", seq, tc.seq)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p, tc.payload) || seq != tc.seq {
				t.Fatalf("got %d bytes seq %d, want %d bytes seq %d", len(p), seq, len(tc.payload), tc.seq)
			}
			if FirstSeq(seq, len(p)) != tc.first {
				t.Fatalf("FirstSeq(%d, %d) = %d, want %d", seq, len(p), FirstSeq(seq, len(p)), tc.first)
			}
		})
	}
}

func TestWritePacketSplits(t *testing.T) {
	for _, n := range []int{0, 1, MaxPayload - 1, MaxPayload, MaxPayload + 1, 2 * MaxPayload} {
		c, pc := connOver(nil, 0)
		c.Seq = 3
		payload := bytes.Repeat([]byte{'x'}, n)
		if err := c.WritePacket(payload); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		wantPackets := n/MaxPayload + 1
		if got := int(c.Seq - 3); got != wantPackets {
			t.Errorf("%d bytes: %d packets, want %d", n, got, wantPackets)
		}
		r, _ := connOver(pc.w.Bytes(), 0)
		p, seq, err := r.ReadPacket()
		if err != nil || !bytes.Equal(p, payload) || seq != c.Seq-1 || FirstSeq(seq, len(p)) != 3 {
			t.Errorf("%d bytes: read back %d bytes seq %d err %v", n, len(p), seq, err)
		}
	}
}

// TestUnbufferedKeepsReadAhead: bytes read behind a packet are handed on
// with the transport (an SSL request followed by the TLS hello), whether
// they wait in the read buffer or, read while idle, in the small one.
func TestUnbufferedKeepsReadAhead(t *testing.T) {
	for _, idle := range []bool{false, true} {
		stream := append(frame(1, []byte("ssl-request")), "client-hello"...)
		c, _ := connOver(stream, 0)
		if idle {
			c.Idle()
		}
		if _, _, err := c.ReadPacket(); err != nil {
			t.Fatal(err)
		}
		rest := make([]byte, 64)
		n, _ := c.Unbuffered().Read(rest)
		if string(rest[:n]) != "client-hello" {
			t.Fatalf("idle %v: bytes behind the packet: %q", idle, rest[:n])
		}
	}
}

// FuzzReadPacket reads packets from arbitrary bytes until an error: no
// panic, no payload over the limit, and every payload re-frames to itself.
func FuzzReadPacket(f *testing.F) {
	f.Add([]byte{0x01, 0x00, 0x00, 0x00, 0x0e})
	f.Add([]byte{0x09, 0x00, 0x00, 0x00, 0x03, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1'})
	f.Add([]byte{0xff, 0xff, 0xff, 0x00, 0x01})
	f.Add([]byte{0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x01, 'a'})
	f.Fuzz(func(t *testing.T, stream []byte) {
		c, _ := connOver(stream, 1<<20)
		// One writer and one reader for the round trips, rewound each
		// time: a pair of 64 KiB buffers per packet made each execution slow
		// enough for the fuzzer's deadline to end one mid-run.
		w, wpc := connOver(nil, 0)
		r, rpc := connOver(nil, 0)
		for i := 0; i < 64; i++ {
			p, seq, err := c.ReadPacket()
			if err != nil {
				return
			}
			if len(p) > 1<<20 {
				t.Fatalf("payload of %d bytes over the limit", len(p))
			}
			wpc.w.Reset()
			w.Seq = FirstSeq(seq, len(p))
			if err := w.WritePacket(p); err != nil {
				t.Fatal(err)
			}
			_ = w.Flush()
			rpc.r.Reset(wpc.w.Bytes())
			r.Reset(rpc)
			q, qseq, err := r.ReadPacket()
			if err != nil || !bytes.Equal(p, q) || qseq != seq {
				t.Fatalf("round trip: %v seq %d/%d", err, qseq, seq)
			}
		}
	})
}

// TestIdleHoldsNoBuffer: between commands a leg gives its buffers back and
// waits in its small one; a packet longer than that, and bytes that arrive
// behind a packet, still read whole and in order.
func TestIdleHoldsNoBuffer(t *testing.T) {
	small, long := []byte("\x03SELECT 1"), append([]byte{0x03}, bytes.Repeat([]byte{'x'}, 3*IdleBufferSize)...)
	stream := append(append(frame(0, small), frame(0, long)...), frame(0, small)...)
	c, pc := connOver(stream, 0)
	want := [][]byte{small, long, small}
	for i, w := range want {
		c.Idle()
		if i == 0 && (c.r != nil || c.w != nil) {
			t.Fatalf("idle leg holds a read buffer %v, a write buffer %v", c.r != nil, c.w != nil)
		}
		if i == 1 && c.r == nil {
			// The first idle read took in the start of the next packet too:
			// the read buffer holds it and must stay.
			t.Fatal("a read buffer with unread bytes went back to the pool")
		}
		p, _, err := c.ReadPacket()
		if err != nil || !bytes.Equal(p, w) {
			t.Fatalf("packet %d: %d bytes, %v; want %d bytes", i, len(p), err, len(w))
		}
		c.Seq = 1
		if err := c.WritePacket([]byte{0x00}); err != nil {
			t.Fatal(err)
		}
		c.Release()
		if c.w == nil {
			t.Fatal("a write buffer with unflushed bytes went back to the pool")
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	c.Idle()
	if c.r != nil || c.w != nil {
		t.Fatalf("drained leg holds a read buffer %v, a write buffer %v", c.r != nil, c.w != nil)
	}
	if got := pc.w.Len(); got != 3*5 {
		t.Fatalf("wrote %d bytes, want 3 OK packets of 5", got)
	}
}

// failOnce fails its first read (a read deadline ending an idle wait).
type failOnce struct {
	pipeConn
	failed bool
}

func (f *failOnce) Read(b []byte) (int, error) {
	if !f.failed {
		f.failed = true
		return 0, os.ErrDeadlineExceeded
	}
	return f.pipeConn.Read(b)
}

// TestIdleReadError: an idle wait that fails leaves the leg idle; the next
// read waits again and gets the packet.
func TestIdleReadError(t *testing.T) {
	fc := &failOnce{pipeConn: pipeConn{r: bytes.NewReader(frame(0, []byte{0x0e}))}}
	c := NewConn(fc, 0)
	c.Idle()
	if _, _, err := c.ReadPacket(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("first read: %v, want the deadline", err)
	}
	if c.r != nil || !c.waitIdle {
		t.Fatal("a failed idle wait took a read buffer")
	}
	if p, _, err := c.ReadPacket(); err != nil || !bytes.Equal(p, []byte{0x0e}) {
		t.Fatalf("second read: %q, %v", p, err)
	}
}
