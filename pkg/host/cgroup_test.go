package host

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
)

func TestRelCgroup(t *testing.T) {
	tests := []struct{ mount, in, want string }{
		{"/sys/fs/cgroup", "/sys/fs/cgroup/agents/agent-1", "/agents/agent-1"},
		{"/sys/fs/cgroup/unified", "/sys/fs/cgroup/unified/agents/agent-1/", "/agents/agent-1"},
		{"/sys/fs/cgroup", "/sys/fs/cgroup", "/"},
		{"/sys/fs/cgroup", "/agents/agent-1", "/agents/agent-1"},
		{"/sys/fs/cgroup", "agents//agent-1", "/agents/agent-1"},
		{"/sys/fs/cgroup", "/sys/fs/cgroupx/a", "/sys/fs/cgroupx/a"},
		{"", "/sys/fs/cgroup/a", "/sys/fs/cgroup/a"},
	}
	for _, tt := range tests {
		if got := RelCgroup(tt.mount, tt.in); got != tt.want {
			t.Errorf("RelCgroup(%q, %q) = %q, want %q", tt.mount, tt.in, got, tt.want)
		}
	}
}

func TestCgroupWithin(t *testing.T) {
	tests := []struct {
		cg, dir string
		want    bool
	}{
		{"/a/b", "/a/b", true},
		{"/a/b/c", "/a/b", true},
		{"/a/b/", "/a/b", true},
		{"/a/bc", "/a/b", false},
		{"/a", "/a/b", false},
		{"/anything", "/", true},
		{"/sys/fs/cgroup/x", "/sys/fs/cgroup", true},
	}
	for _, tt := range tests {
		if got := CgroupWithin(tt.cg, tt.dir); got != tt.want {
			t.Errorf("CgroupWithin(%q, %q) = %v", tt.cg, tt.dir, got)
		}
	}
}

// mountOrSkip is the cgroup v2 mount, or the end of a test that needs one.
func mountOrSkip(t *testing.T) string {
	t.Helper()
	m, err := CgroupV2Mount()
	if err != nil {
		if !errors.Is(err, ErrNoCgroupV2) {
			t.Fatalf("CgroupV2Mount: %v, want ErrNoCgroupV2", err)
		}
		testutil.PrivilegedUnavailable(t, "%v", err)
	}
	return m
}

func TestCgroupV2MountAndID(t *testing.T) {
	mount := mountOrSkip(t)
	if !IsCgroup2(mount) {
		t.Fatalf("%s detected but IsCgroup2 says no", mount)
	}
	id, err := CgroupID(mount)
	if err != nil || id == 0 {
		t.Fatalf("CgroupID(%s) = %d, %v", mount, id, err)
	}
	tmp := t.TempDir()
	if IsCgroup2(tmp) {
		t.Errorf("IsCgroup2(%s) on a temp dir", tmp)
	}
	if _, err := CgroupID(tmp); err == nil {
		t.Error("CgroupID accepted a directory outside cgroupfs")
	}
	if _, err := CgroupID(filepath.Join(mount, "cgroup.procs")); err == nil {
		t.Error("CgroupID accepted a file")
	}

	self, err := SelfCgroup(mount)
	if err != nil || !CgroupWithin(self, mount) {
		t.Fatalf("SelfCgroup = %q, %v", self, err)
	}
	selfID, err := CgroupID(self)
	if err != nil {
		t.Fatal(err)
	}
	// The process's own cgroup, found again by id, and its path as
	// /proc/self/cgroup gives it.
	found := FindCgroups(mount, map[uint64]bool{selfID: true, id: true})
	if found[selfID] != self || found[id] != mount {
		t.Errorf("FindCgroups = %v, want %s and %s", found, self, mount)
	}
	if got := FindCgroups(mount, nil); len(got) != 0 {
		t.Errorf("FindCgroups(nil) = %v", got)
	}
	rel := RelCgroup(mount, self)
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if v2, ok := CgroupV2Path(ParseProcCgroup(b)); !ok || v2 != rel {
		t.Errorf("/proc/self/cgroup v2 path %q, want %q", v2, rel)
	}

	// ResolveCgroup takes the mounted path and the hierarchy path alike.
	for _, in := range []string{self, rel, self + "/"} {
		if got, err := ResolveCgroup(mount, in); err != nil || got != self {
			t.Errorf("ResolveCgroup(%q) = %q, %v; want %q", in, got, err, self)
		}
	}
	for _, in := range []string{"", "/no/such/cgroup-" + strings.Repeat("x", 8)} {
		if got, err := ResolveCgroup(mount, in); err == nil {
			t.Errorf("ResolveCgroup(%q) = %q, want an error", in, got)
		}
	}
}
