package e2e

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/sqlwarden/sqlwarden/test/harness"
)

// The daemon re-executes itself once, in the same process, so that Go's
// system monitor never takes the deep sleep that cost every statement of a
// one-at-a-time client a thread wake-up; an operator's own schedtrace
// setting is left as it is.
func TestDaemonKeepsSysmonAwake(t *testing.T) {
	for _, tc := range []struct {
		name, env, want string
	}{
		{"default", "", sysmonAwake},
		{"operator's GODEBUG kept", "GODEBUG=madvdontneed=1", "madvdontneed=1," + sysmonAwake},
		{"operator's schedtrace wins", "GODEBUG=schedtrace=0", "schedtrace=0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var env []string
			if tc.env != "" {
				env = []string{tc.env}
			}
			d := harness.Start(t, harness.Options{Env: env})
			if got := godebugOf(t, d.PID()); got != tc.want {
				t.Fatalf("GODEBUG of the daemon (pid %d, the one started) = %q, want %q", d.PID(), got, tc.want)
			}
			if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", d.PID())); err != nil || strings.TrimSpace(string(comm)) != "sqlwarden" {
				t.Fatalf("process name after re-execution = %q (%v), want sqlwarden", comm, err)
			}
			if strings.Contains(d.Log(), "default system monitor") {
				t.Fatalf("daemon logged a failed re-execution:\n%s", d.Log())
			}
			db := d.Open(t, "")
			var one int
			if err := db.QueryRow("SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Fatalf("SELECT 1 through the daemon: %v %d", err, one)
			}
		})
	}
}

// sysmonAwake is what the daemon adds to GODEBUG, stated here rather than
// taken from internal/daemon: these tests see the daemon from outside, as
// its binary (TestOnlyCmdImportsDaemon keeps it that way).
const sysmonAwake = "schedtrace=2147483647"

// godebugOf returns GODEBUG from the environment pid's program was executed
// with ("" when unset).
func godebugOf(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("GODEBUG=")); ok {
			got = string(v)
		}
	}
	return got
}
