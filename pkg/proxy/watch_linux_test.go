package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
)

func gone(s *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backendGone
}

// marker watches one more connection and hangs it up: the watch reports
// events in the order they happen, so once the marker's session is
// reported, any event that came before it has been too.
func marker(t *testing.T, w *backendWatch) {
	t.Helper()
	raw, _ := testutil.TCPPair(t)
	m := &session{raw: raw}
	backend, server := testutil.TCPPair(t)
	if w.add(m, backend) == 0 {
		t.Fatal("not watched")
	}
	server.Close()
	testutil.Eventually(t, 5*time.Second, func() error {
		if !gone(m) {
			return errors.New("the marker's hang-up was not reported")
		}
		return nil
	})
}

// TestBackendWatch: data from the backend never wakes the watch; the
// backend hanging up marks the session and wakes its idle client read; a
// removed connection is no longer reported.
func TestBackendWatch(t *testing.T) {
	w, err := newBackendWatch(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()

	clientSide, clientPeer := testutil.TCPPair(t)
	s := &session{raw: clientSide}
	backend, server := testutil.TCPPair(t)
	key := w.add(s, backend)
	if key == 0 {
		t.Fatal("not watched")
	}

	// A reply arrives and is read: no event.
	if _, err := server.Write([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(backend, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	marker(t, w)
	if gone(s) {
		t.Fatal("a reply woke the watch")
	}

	// The backend hangs up while the session idles in its client read.
	readDone := make(chan error, 1)
	go func() {
		_, err := clientSide.Read(make([]byte, 1))
		readDone <- err
	}()
	server.Close()
	select {
	case err := <-readDone:
		if !gone(s) || !isTimeout(err) {
			t.Fatalf("client read woke with %v, backend gone %v", err, gone(s))
		}
	case <-time.After(time.Second):
		t.Fatal("the idle client read was not woken within 1s of the backend's hang-up")
	}

	// Removed before its backend closes: no news for the session.
	s2 := &session{raw: clientPeer}
	backend2, server2 := testutil.TCPPair(t)
	key2 := w.add(s2, backend2)
	w.remove(key2, backend2)
	server2.Close()
	marker(t, w)
	if gone(s2) {
		t.Fatal("a removed connection was reported")
	}
	w.remove(key, backend)

	// A TLS backend is watched through the socket under it.
	plain, _ := testutil.TCPPair(t)
	if _, ok := rawConn(tls.Client(plain, &tls.Config{})); !ok {
		t.Fatal("no socket found under a TLS connection")
	}
}
