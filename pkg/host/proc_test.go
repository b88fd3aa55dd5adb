package host

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
)

func TestParseProcCgroup(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   []CgroupEntry
		v2     string
		haveV2 bool
	}{
		{
			name: "unified", in: "0::/system.slice/sqlwarden.service\n",
			want: []CgroupEntry{{0, "", "/system.slice/sqlwarden.service"}},
			v2:   "/system.slice/sqlwarden.service", haveV2: true,
		},
		{
			name: "hybrid",
			in:   "12:memory:/user.slice\n3:cpu,cpuacct:/user.slice\n1:name=systemd:/user.slice/session-3.scope\n0::/user.slice/session-3.scope\n",
			want: []CgroupEntry{
				{12, "memory", "/user.slice"},
				{3, "cpu,cpuacct", "/user.slice"},
				{1, "name=systemd", "/user.slice/session-3.scope"},
				{0, "", "/user.slice/session-3.scope"},
			},
			v2: "/user.slice/session-3.scope", haveV2: true,
		},
		{
			name: "legacy: no v2 line", in: "4:pids:/a\n1:name=systemd:/a\n",
			want: []CgroupEntry{{4, "pids", "/a"}, {1, "name=systemd", "/a"}},
		},
		{
			name: "root cgroup, no trailing newline", in: "0::/",
			want: []CgroupEntry{{0, "", "/"}}, v2: "/", haveV2: true,
		},
		{
			name: "colons in the path", in: "0::/a:b/c::d\n",
			want: []CgroupEntry{{0, "", "/a:b/c::d"}}, v2: "/a:b/c::d", haveV2: true,
		},
		{
			name: "malformed lines skipped",
			in:   "\n\ngarbage\nx::/not-a-hierarchy\n-1::/neg\n99999999999::/too-big\n0:/one-colon\n0::/ok\n",
			want: []CgroupEntry{{0, "", "/ok"}}, v2: "/ok", haveV2: true,
		},
		{
			name: "a v1 hierarchy 0 with controllers is not v2", in: "0:memory:/m\n",
			want: []CgroupEntry{{0, "memory", "/m"}},
		},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseProcCgroup([]byte(tt.in))
			if !slices.Equal(got, tt.want) {
				t.Errorf("entries = %+v, want %+v", got, tt.want)
			}
			v2, ok := CgroupV2Path(got)
			if v2 != tt.v2 || ok != tt.haveV2 {
				t.Errorf("v2 = %q, %v; want %q, %v", v2, ok, tt.v2, tt.haveV2)
			}
		})
	}
}

// FuzzParseProcCgroup: never panics; every entry comes from one line of the
// input, written back it parses to the same entries, and the v2 path is the
// last "0::" line's.
func FuzzParseProcCgroup(f *testing.F) {
	for _, s := range []string{
		"0::/system.slice/sqlwarden.service\n",
		"12:memory:/user.slice\n1:name=systemd:/user.slice/session-3.scope\n0::/user.slice/session-3.scope\n",
		"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f9ae2c4_6c53_4b53_9d0e_2b1d1d1f4a01.slice/cri-containerd-ab12.scope\n",
		"0::/a:b\n0::/c\n", "0::/", "", "\n", ":::", "0:", "x::/y\n", "4294967296::/z",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries := ParseProcCgroup(data)
		var buf bytes.Buffer
		lastV2, haveV2 := "", false
		for _, e := range entries {
			if strings.Contains(e.Path, "\n") || strings.ContainsAny(e.Controllers, ":\n") {
				t.Fatalf("entry %+v spans a separator", e)
			}
			if e.Hierarchy > 1<<32-1 {
				t.Fatalf("hierarchy %d out of range", e.Hierarchy)
			}
			buf.WriteString(strconv.FormatUint(e.Hierarchy, 10) + ":" + e.Controllers + ":" + e.Path + "\n")
			if e.V2() {
				lastV2, haveV2 = e.Path, true
			}
		}
		if again := ParseProcCgroup(buf.Bytes()); !slices.Equal(again, entries) {
			t.Fatalf("round trip: %+v, then %+v", entries, again)
		}
		if v2, ok := CgroupV2Path(entries); v2 != lastV2 || ok != haveV2 {
			t.Fatalf("CgroupV2Path = %q, %v; want %q, %v", v2, ok, lastV2, haveV2)
		}
		// Every line that reads as "digits:controllers:path" is an entry.
		n := 0
		for line := range strings.SplitSeq(string(data), "\n") {
			f := strings.SplitN(line, ":", 3)
			if len(f) == 3 {
				if _, err := strconv.ParseUint(f[0], 10, 32); err == nil {
					n++
				}
			}
		}
		if n != len(entries) {
			t.Fatalf("%d well-formed lines, %d entries", n, len(entries))
		}
	})
}

func TestParseStartTime(t *testing.T) {
	stat := "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100"
	if got, err := ParseStartTime([]byte(stat)); err != nil || got != 987654 {
		t.Fatalf("got %d, %v", got, err)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1", "1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 zz"} {
		if _, err := ParseStartTime([]byte(bad)); err == nil {
			t.Errorf("ParseStartTime(%q) accepted", bad)
		}
	}
}

func TestStartTicks(t *testing.T) {
	if got := StartTicks(uint64(3*time.Second + 25*time.Millisecond)); got != 302 {
		t.Errorf("StartTicks(3.025s) = %d, want 302", got)
	}
}

// uptimeTicks is the time since boot in clock ticks, from /proc/uptime.
func uptimeTicks(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	secs, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(secs*100) + 1
}

func TestProcSelf(t *testing.T) {
	p, err := OpenProc("", uint32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.PID() != uint32(os.Getpid()) {
		t.Errorf("PID = %d", p.PID())
	}

	start, err := p.StartTime()
	if err != nil || start == 0 || start > uptimeTicks(t) {
		t.Errorf("StartTime = %d, %v (uptime %d ticks)", start, err, uptimeTicks(t))
	}

	exe, err := p.Exe()
	want, _ := os.Executable()
	if err != nil || exe != want {
		t.Errorf("Exe = %q, %v; want %q", exe, err, want)
	}

	cgs, err := p.Cgroups()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(strings.TrimSpace(string(raw)), "\n") + 1; len(cgs) != lines {
		t.Errorf("Cgroups = %+v for %d lines:\n%s", cgs, lines, raw)
	}
}

func TestProcPinsTheProcess(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p, err := OpenProc("/proc", uint32(cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.StartTime(); err != nil {
		t.Fatalf("running process: %v", err)
	}
	if exe, err := p.Exe(); err != nil || filepath.Base(exe) != "sleep" {
		t.Errorf("Exe = %q, %v", exe, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	// Gone: nothing more is read through the handle, whatever the pid now names.
	if _, err := p.StartTime(); err == nil {
		t.Error("StartTime of an exited process succeeded")
	}
	if _, err := p.Exe(); err == nil {
		t.Error("Exe of an exited process succeeded")
	}
	if _, err := p.OpenRoot(); err == nil {
		t.Error("OpenRoot of an exited process succeeded")
	}
	if _, err := OpenProc("", 0); err == nil {
		t.Error("OpenProc(0) succeeded")
	}
}

func TestRootOpen(t *testing.T) {
	p, err := OpenProc("", uint32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	root, err := p.OpenRoot()
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(file, filepath.Join(dir, "abs-link")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{file, filepath.Join(dir, "abs-link")} {
		if got := readIn(t, root, name); got != "secret" {
			t.Errorf("read %s: %q", name, got)
		}
	}
	if _, err := root.Open(filepath.Join(dir, "missing"), unix.O_RDONLY); !errors.Is(err, unix.ENOENT) {
		t.Errorf("missing file: %v, want ENOENT", err)
	}
	// A magic link is refused, even one that leads back into the same root.
	if f, err := root.Open("/proc/self/root"+file, unix.O_RDONLY); err == nil {
		f.Close()
		t.Error("a path through the /proc/self/root magic link was opened")
	}
}

func readIn(t *testing.T, root *Root, name string) string {
	t.Helper()
	f, err := root.Open(name, unix.O_RDONLY)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

// TestRootOpenChrooted reads files as a chrooted process sees them: an
// absolute symlink and a climb with ".." stay inside its root, where a plain
// open by the caller would reach the caller's files.
func TestRootOpenChrooted(t *testing.T) {
	testutil.RequirePrivileged(t)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("caller's"), 0o600); err != nil {
		t.Fatal(err)
	}
	jail := t.TempDir()
	if err := os.WriteFile(filepath.Join(jail, "token"), []byte("workload's"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(jail, "abs-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../.."+secret, filepath.Join(jail, "climb")); err != nil {
		t.Fatal(err)
	}
	// The setup is not vacuous: followed from the caller's root, both links
	// reach the caller's file.
	for _, l := range []string{"abs-link", "climb"} {
		if b, err := os.ReadFile(filepath.Join(jail, l)); err != nil || string(b) != "caller's" {
			t.Fatalf("setup: %s reads %q, %v", l, b, err)
		}
	}

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "SQLWARDEN_HOST_CHROOT="+jail)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	ready := make([]byte, 6)
	if _, err := io.ReadFull(stdout, ready); err != nil || string(ready) != "ready\n" {
		t.Fatalf("helper: %q, %v", ready, err)
	}

	p, err := OpenProc("", uint32(cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	root, err := p.OpenRoot()
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if got := readIn(t, root, "/token"); got != "workload's" {
		t.Errorf("/token in the workload's root: %q", got)
	}
	for _, l := range []string{"/abs-link", "/climb", secret} {
		if f, err := root.Open(l, unix.O_RDONLY); !errors.Is(err, unix.ENOENT) {
			if err == nil {
				f.Close()
			}
			t.Errorf("%s: %v, want ENOENT inside the workload's root", l, err)
		}
	}
}

// TestMain doubles as the chrooted process of TestRootOpenChrooted.
func TestMain(m *testing.M) {
	if jail := os.Getenv("SQLWARDEN_HOST_CHROOT"); jail != "" {
		if err := unix.Chroot(jail); err != nil {
			os.Exit(2)
		}
		os.Stdout.WriteString("ready\n")
		io.Copy(io.Discard, os.Stdin) // until the test closes stdin
		os.Exit(0)
	}
	os.Exit(m.Run())
}
