//go:build !linux

package proxy

import (
	"errors"
	"log/slog"
	"net"
)

// backendWatch needs epoll: elsewhere a backend that closes an idle session
// is noticed at the client's next command.
type backendWatch struct{}

func newBackendWatch(*slog.Logger) (*backendWatch, error) {
	return nil, errors.New("create backend watch: needs Linux")
}

func (w *backendWatch) add(*session, net.Conn) uint64 { return 0 }
func (w *backendWatch) remove(uint64, net.Conn)       {}
func (w *backendWatch) close()                        {}
