package testutil

import (
	"os"
	"testing"
)

// RequirePrivileged skips the test when the process is not root, unless the
// environment demands privileged tests (SQLWARDEN_REQUIRE_PRIVILEGED=1, set by
// .ci/run), in which case it fails: privileged tests must never silently vanish.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("SQLWARDEN_REQUIRE_PRIVILEGED") == "1" {
		t.Fatalf("privileged test %s needs root (BPF, cgroups, netns) and SQLWARDEN_REQUIRE_PRIVILEGED=1", t.Name())
	}
	t.Skipf("skipping privileged test %s: needs root (BPF, cgroups, netns); set SQLWARDEN_REQUIRE_PRIVILEGED=1 to make this a failure", t.Name())
}
