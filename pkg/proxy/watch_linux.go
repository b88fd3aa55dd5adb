package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// backendWatch notices backends that close a session while it idles (their
// wait_timeout, a DBA's KILL, a restart): the session goroutine is then
// blocked reading its client, and nothing else would read the backend until
// the client's next command. One epoll instance per server holds every
// backend socket, registered once at login for the hang-up events only
// (EPOLLRDHUP, edge-triggered; no EPOLLIN), so ordinary replies never wake
// it and the statement path makes no extra system call. Go's own netpoller
// keeps the same sockets; a descriptor may sit in several epoll sets.
type backendWatch struct {
	log  *slog.Logger
	epfd int
	stop int // eventfd that ends run

	mu       sync.Mutex
	sessions map[uint64]*session
	next     uint64 // session keys start at 1; 0 is the stop eventfd
	done     chan struct{}
}

const watchEvents = unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR | unix.EPOLLET

func newBackendWatch(log *slog.Logger) (*backendWatch, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create backend watch: %w", err)
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("create backend watch: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, stop, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		unix.Close(epfd)
		unix.Close(stop)
		return nil, fmt.Errorf("create backend watch: %w", err)
	}
	w := &backendWatch{log: log, epfd: epfd, stop: stop, sessions: map[uint64]*session{}, done: make(chan struct{})}
	go w.run()
	return w, nil
}

// rawConn returns the socket under c (under TLS too).
func rawConn(c net.Conn) (syscall.RawConn, bool) {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = nc.NetConn()
	}
	rc := wire.RawConn(c)
	return rc, rc != nil
}

// add watches s's backend connection c and returns the key to remove it
// with (0 when it is not watched).
func (w *backendWatch) add(s *session, c net.Conn) uint64 {
	rc, ok := rawConn(c)
	if !ok {
		return 0
	}
	w.mu.Lock()
	w.next++
	key := w.next
	w.sessions[key] = s
	w.mu.Unlock()
	ev := unix.EpollEvent{Events: watchEvents, Fd: int32(uint32(key)), Pad: int32(uint32(key >> 32))}
	var cerr error
	// Control holds the descriptor for the call: it cannot be closed and
	// reused by another connection meanwhile.
	if err := rc.Control(func(fd uintptr) { cerr = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev) }); err != nil || cerr != nil {
		w.mu.Lock()
		delete(w.sessions, key)
		w.mu.Unlock()
		w.log.Warn("watch backend connection", "err", errors.Join(err, cerr))
		return 0
	}
	return key
}

// remove stops watching c. Call it before closing c: closing also drops
// the registration, and the key keeps a late event of a closed
// connection from reaching the session that reuses its descriptor.
func (w *backendWatch) remove(key uint64, c net.Conn) {
	if key == 0 {
		return
	}
	w.mu.Lock()
	delete(w.sessions, key)
	w.mu.Unlock()
	if rc, ok := rawConn(c); ok {
		_ = rc.Control(func(fd uintptr) { _ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, int(fd), nil) })
	}
}

func (w *backendWatch) run() {
	defer close(w.done)
	events := make([]unix.EpollEvent, 64)
	for {
		n, err := unix.EpollWait(w.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			w.log.Error("backend watch", "err", err)
			return
		}
		for _, ev := range events[:n] {
			key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if key == 0 {
				return // close
			}
			w.mu.Lock()
			s := w.sessions[key]
			w.mu.Unlock()
			if s != nil {
				s.backendClosed()
			}
		}
	}
}

// close ends the watch; sessions still open are no longer watched.
func (w *backendWatch) close() {
	_, _ = unix.Write(w.stop, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	<-w.done
	unix.Close(w.epfd)
	unix.Close(w.stop)
}
