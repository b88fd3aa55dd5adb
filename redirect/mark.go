package redirect

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// Mark is the SO_MARK the programs never redirect: the proxy's own backend
// sockets carry it, so they cannot loop back into the proxy.
const Mark = 0x5357_0001

// MarkControl is a net.Dialer.Control function that sets Mark on the socket
// before it connects. Setting SO_MARK needs CAP_NET_ADMIN.
func MarkControl(network, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, Mark)
	}); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("set SO_MARK on %s socket to %s: %w", network, address, serr)
	}
	return nil
}
