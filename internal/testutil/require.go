package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true, as .ci/run's caller
// sets it), where a test must never skip for want of a tool.
func InCI() bool {
	v := os.Getenv("CI")
	return v == "true" || v == "1"
}

// RequireTool returns the path of an executable the test needs: name on PATH,
// else the first of fallbacks that is an executable file. When it is missing
// the test fails in CI, or when SQLWARDEN_REQUIRE_TOOLS=1, and skips
// elsewhere: scripts/install-deps.sh installs every tool a test asks for.
func RequireTool(t testing.TB, name string, fallbacks ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, f := range fallbacks {
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return f
		}
	}
	msg := fmt.Sprintf("%s not installed (scripts/install-deps.sh test installs it)", name)
	if InCI() || os.Getenv("SQLWARDEN_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s: %s", t.Name(), msg)
	}
	t.Skip(msg)
	return ""
}

// Unavailable ends a test whose environment lacks what it needs (a file
// system feature, say): a failure in CI, where nothing may skip, a skip
// elsewhere.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s: %s (CI)", t.Name(), msg)
	}
	t.Skipf("skipping %s: %s", t.Name(), msg)
}

// PrivilegedUnavailable ends a privileged test whose environment lacks what
// it needs (a cgroup v2 hierarchy, cgroup membership): a failure when
// SQLWARDEN_REQUIRE_PRIVILEGED=1, a skip otherwise, like RequirePrivileged.
func PrivilegedUnavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("SQLWARDEN_REQUIRE_PRIVILEGED") == "1" {
		t.Fatalf("%s: %s (SQLWARDEN_REQUIRE_PRIVILEGED=1)", t.Name(), msg)
	}
	t.Skipf("skipping %s: %s; set SQLWARDEN_REQUIRE_PRIVILEGED=1 to make this a failure", t.Name(), msg)
}
