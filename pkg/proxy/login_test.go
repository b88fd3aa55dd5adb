package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	gm "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/pingcap/errors"

	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

func TestLoginFailure(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name  string
		err   error
		code  uint16
		state string
		msg   string
	}{
		{"refused", &unreachableError{err: errors.Trace(refused), timeout: 5 * time.Second}, 1045, "08S01",
			"sqlwarden: backend db at 10.0.0.1:3306 unreachable: connection refused"},
		{"silent", &unreachableError{err: errors.Trace(errors.Wrap(gm.ErrBadConn, "io.ReadFull(header) failed")), timeout: 2 * time.Second, timedOut: true}, 1045, "08S01",
			"sqlwarden: backend db at 10.0.0.1:3306 unreachable: no answer within 2s"},
		{"dial deadline", &unreachableError{err: context.DeadlineExceeded, timeout: time.Second}, 1045, "08S01",
			"sqlwarden: backend db at 10.0.0.1:3306 unreachable: no answer within 1s"},
		{"closed", &unreachableError{err: errors.Trace(errors.Wrapf(gm.ErrBadConn, "io.ReadFull(header) failed. err %v", io.EOF)), timeout: time.Second}, 1045, "08S01",
			"sqlwarden: backend db at 10.0.0.1:3306 unreachable: connection closed during login"},
		{"closed at the greeting", &unreachableError{err: fmt.Errorf("read greeting: %w", io.EOF), timeout: time.Second}, 1045, "08S01",
			"sqlwarden: backend db at 10.0.0.1:3306 unreachable: connection closed during login"},
		{"backend refuses", fmt.Errorf("auth: %w", &wire.ServerError{Code: 1040, State: "08004", Message: "Too many connections"}), 1040, "08004",
			"sqlwarden: backend db at 10.0.0.1:3306 refused the login: Too many connections"},
		{"client-range code", &wire.ServerError{Code: 2013, State: "HY000", Message: "lost"}, 1045, "HY000",
			"sqlwarden: backend db at 10.0.0.1:3306 refused the login: lost"},
		{"session refused", &sqltext.RefusedError{Reason: "sql_mode X"}, 1235, "", "sqlwarden: session refused: sql_mode X"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, state, msg := loginFailure("db", "10.0.0.1:3306", tc.err)
			if code != tc.code || state != tc.state || msg != tc.msg {
				t.Fatalf("got %d %q %q\nwant %d %q %q", code, state, msg, tc.code, tc.state, tc.msg)
			}
		})
	}
}
