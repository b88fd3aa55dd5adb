package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
)

// A peer that answers at once — before, during or after the proxy's
// goroutine starts waiting — is always seen: the write is made after the
// wait is armed. A lost wake-up would hold FlushAwait until the read
// deadline.
//
// With HandOff the writer yields its CPU between the write and the wait:
// the peer's answer then usually comes before the wait begins.
func TestFlushAwaitSeesEveryReply(t *testing.T) {
	for _, handOff := range []bool{false, true} {
		t.Run(fmt.Sprintf("handoff=%v", handOff), func(t *testing.T) { testFlushAwaitSeesEveryReply(t, handOff) })
	}
}

// echo answers every packet peer reads with the same payload, until the
// connection fails.
func echo(peer *Conn, handOff bool) {
	peer.HandOff = handOff
	for {
		p, _, err := peer.ReadPacket()
		if err != nil {
			return
		}
		peer.Seq = 1
		if peer.WritePacket(p) != nil || peer.Flush() != nil {
			return
		}
	}
}

func testFlushAwaitSeesEveryReply(t *testing.T, handOff bool) {
	cc, sc := testutil.TCPPair(t)
	go echo(NewConn(sc, 1<<20), handOff)
	c := NewConn(cc, 1<<20)
	c.HandOff = handOff
	if c.raw == nil {
		t.Fatal("a TCP connection has no raw socket")
	}
	for i := 0; i < 5000; i++ {
		want := []byte{3, byte(i), byte(i >> 8)}
		c.Seq = 0
		if err := c.WritePacket(want); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_ = cc.SetReadDeadline(start.Add(3 * time.Second))
		if err := c.FlushAwait(); err != nil {
			t.Fatalf("round %d: FlushAwait: %v", i, err)
		}
		if waited := time.Since(start); waited > 2*time.Second {
			t.Fatalf("round %d: FlushAwait waited %v for a reply sent at once (a lost wake-up, ended by the read deadline)", i, waited)
		}
		got, _, err := c.ReadPacket()
		if err != nil {
			t.Fatalf("round %d: reply not seen after FlushAwait: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d: reply %x, want %x", i, got, want)
		}
		c.Release()
	}
}

// A command larger than the socket buffers is written whole: what the
// socket does not take at once goes through the transport's own write,
// which waits for room.
func TestFlushAwaitLargeCommand(t *testing.T) {
	cc, sc := testutil.TCPPair(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	done := make(chan error, 1)
	go func() {
		peer := NewConn(sc, 8<<20)
		time.Sleep(50 * time.Millisecond) // let the sender fill the buffers
		p, _, err := peer.ReadPacket()
		if err == nil && !bytes.Equal(p, payload) {
			err = errors.New("payload differs")
		}
		if err == nil {
			peer.Seq = 1
			err = peer.WritePacket([]byte{0})
		}
		if err == nil {
			err = peer.Flush()
		}
		done <- err
	}()
	c := NewConn(cc, 8<<20)
	if err := c.WritePacket(payload); err != nil {
		t.Fatal(err)
	}
	if err := c.FlushAwait(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("peer: %v", err)
	}
	if p, _, err := c.ReadPacket(); err != nil || !bytes.Equal(p, []byte{0}) {
		t.Fatalf("reply: %x %v", p, err)
	}
}

// A wait that cannot end in a reply — the read deadline passes, the peer
// goes away — returns, and the next read reports why.
func TestFlushAwaitLeavesFailuresToTheRead(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		cc, _ := testutil.TCPPair(t)
		c := NewConn(cc, 1<<20)
		_ = cc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_ = c.WritePacket([]byte{3, 'x'})
		if err := c.FlushAwait(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadPacket(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read after the deadline: %v", err)
		}
	})
	t.Run("deadline passed before", func(t *testing.T) {
		cc, sc := testutil.TCPPair(t)
		c := NewConn(cc, 1<<20)
		_ = cc.SetReadDeadline(time.Now().Add(-time.Second))
		_ = c.WritePacket([]byte{3, 'y'})
		if err := c.FlushAwait(); err != nil {
			t.Fatal(err)
		}
		// The command was still sent.
		peer := NewConn(sc, 1<<20)
		_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if p, _, err := peer.ReadPacket(); err != nil || !bytes.Equal(p, []byte{3, 'y'}) {
			t.Fatalf("peer got %x %v", p, err)
		}
	})
	t.Run("peer closes", func(t *testing.T) {
		cc, sc := testutil.TCPPair(t)
		go func() {
			peer := NewConn(sc, 1<<20)
			_, _, _ = peer.ReadPacket()
			sc.Close()
		}()
		c := NewConn(cc, 1<<20)
		_ = cc.SetReadDeadline(time.Now().Add(5 * time.Second))
		_ = c.WritePacket([]byte{3, 'z'})
		if err := c.FlushAwait(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadPacket(); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("read after the peer closed: %v", err)
		}
	})
}

// Without a socket (TLS, in-memory pipes) it is Flush.
func TestFlushAwaitWithoutSocket(t *testing.T) {
	c, pc := connOver(nil, 1<<20)
	if c.raw != nil {
		t.Fatal("a pipe has a raw socket")
	}
	_ = c.WritePacket([]byte{3, 'p'})
	if err := c.FlushAwait(); err != nil {
		t.Fatal(err)
	}
	if got, want := pc.w.Bytes(), frame(0, []byte{3, 'p'}); !bytes.Equal(got, want) {
		t.Fatalf("wrote %x, want %x", got, want)
	}
}

// HandOff yields once per flush that wrote something — Flush, FlushAwait on
// a socket, FlushAwait on a transport without one — and never without it.
func TestHandOffYieldsAfterWriting(t *testing.T) {
	var yields int
	orig := yieldCPU
	yieldCPU = func() { yields++ }
	t.Cleanup(func() { yieldCPU = orig })

	cc, sc := testutil.TCPPair(t)
	go echo(NewConn(sc, 1<<20), false)
	c := NewConn(cc, 1<<20)
	pipe, _ := connOver(nil, 1<<20)
	steps := []struct {
		name    string
		conn    *Conn
		handOff bool
		write   bool
		flush   func(*Conn) error
		want    int
	}{
		{"Flush, nothing buffered", pipe, true, false, (*Conn).Flush, 0},
		{"Flush", pipe, true, true, (*Conn).Flush, 1},
		{"Flush without HandOff", pipe, false, true, (*Conn).Flush, 0},
		{"FlushAwait on a pipe", pipe, true, true, (*Conn).FlushAwait, 1},
		{"FlushAwait on a socket", c, true, true, (*Conn).FlushAwait, 1},
		{"FlushAwait on a socket without HandOff", c, false, true, (*Conn).FlushAwait, 0},
	}
	for _, st := range steps {
		yields = 0
		st.conn.HandOff = st.handOff
		st.conn.Seq = 0
		if st.write {
			if err := st.conn.WritePacket([]byte{3, 'x'}); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.flush(st.conn); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if yields != st.want {
			t.Errorf("%s: %d hand-offs, want %d", st.name, yields, st.want)
		}
		if st.conn == c {
			_ = cc.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, _, err := c.ReadPacket(); err != nil {
				t.Fatalf("%s: reply: %v", st.name, err)
			}
			c.Release()
		}
	}
}
