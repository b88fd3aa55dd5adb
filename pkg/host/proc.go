package host

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ClockTick is the unit of /proc/PID/stat's time fields (USER_HZ, 100 on
// every Linux architecture sqlwarden runs on).
const ClockTick = 10 * time.Millisecond

// StartTicks converts a process start time in nanoseconds since boot (the
// kernel's task start_boottime, as eBPF reads it) to the clock ticks of
// /proc/PID/stat's starttime field.
func StartTicks(bootNs uint64) uint64 { return bootNs / uint64(ClockTick) }

// maxProcFile bounds what is read from one /proc file.
const maxProcFile = 1 << 20

// Proc is an open /proc/PID directory. Everything about the process is read
// relative to it: once the process exits, lookups under the descriptor fail
// even if the pid is reused, so nothing is ever read from a newer process.
type Proc struct {
	pid uint32
	dir *os.File
}

// OpenProc opens the /proc directory of pid; procRoot "" means /proc.
func OpenProc(procRoot string, pid uint32) (*Proc, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	f, err := os.OpenFile(procRoot+"/"+strconv.FormatUint(uint64(pid), 10), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /proc/%d: %w", pid, err)
	}
	return &Proc{pid: pid, dir: f}, nil
}

// PID is the process id the directory was opened for.
func (p *Proc) PID() uint32 { return p.pid }

// Close releases the directory.
func (p *Proc) Close() error { return p.dir.Close() }

// ReadFile reads a small file (at most 1 MiB) of the process's /proc
// directory, such as "stat" or "cgroup".
func (p *Proc) ReadFile(name string) ([]byte, error) {
	fd, err := unix.Openat(int(p.dir.Fd()), name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /proc/%d/%s: %w", p.pid, name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxProcFile))
	if err != nil {
		return nil, fmt.Errorf("read /proc/%d/%s: %w", p.pid, name, err)
	}
	return b, nil
}

// StartTime is field 22 of /proc/PID/stat: the clock ticks after boot at
// which the process started. Together with the pid it names one process for
// good.
func (p *Proc) StartTime() (uint64, error) {
	b, err := p.ReadFile("stat")
	if err != nil {
		return 0, err
	}
	return ParseStartTime(b)
}

// Cgroups returns the entries of /proc/PID/cgroup.
func (p *Proc) Cgroups() ([]CgroupEntry, error) {
	b, err := p.ReadFile("cgroup")
	if err != nil {
		return nil, err
	}
	return ParseProcCgroup(b), nil
}

// Exe returns the path of the process's executable (/proc/PID/exe).
func (p *Proc) Exe() (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(int(p.dir.Fd()), "exe", buf)
		if err != nil {
			return "", fmt.Errorf("read /proc/%d/exe: %w", p.pid, err)
		}
		if n < size || size >= unix.PathMax*4 {
			return string(buf[:n]), nil
		}
	}
}

// Root is a process's root directory (/proc/PID/root), held open.
type Root struct {
	pid uint32
	fd  int
}

// OpenRoot opens the process's root directory. It fails once the process is
// gone.
func (p *Proc) OpenRoot() (*Root, error) {
	fd, err := unix.Openat(int(p.dir.Fd()), "root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /proc/%d/root: %w", p.pid, err)
	}
	return &Root{pid: p.pid, fd: fd}, nil
}

// Close releases the root directory.
func (r *Root) Close() error { return unix.Close(r.fd) }

// Open opens path as the process sees it: every component, symlinks
// included, is resolved inside the process's root, so an absolute symlink in
// the process's tree can never point at the caller's own files, and magic
// links (/proc/self/...) are refused. flags are open(2) flags; O_CLOEXEC is
// always added. The openat2 error is wrapped as is (ENOENT for a missing
// file, ENOSYS on a kernel without openat2).
func (r *Root) Open(path string, flags int) (*os.File, error) {
	how := &unix.OpenHow{
		Flags:   uint64(flags) | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	var (
		fd  int
		err error
	)
	for range 8 { // EAGAIN: a concurrent rename raced the in-root walk
		fd, err = unix.Openat2(r.fd, path, how)
		if err != unix.EAGAIN && err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open %s in the root of process %d: %w", path, r.pid, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// ParseStartTime returns field 22 (starttime) of a /proc/PID/stat line.
func ParseStartTime(stat []byte) (uint64, error) {
	// comm (field 2) is in parentheses and may hold spaces and ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("parse stat: no comm")
	}
	fields := strings.Fields(string(stat[i+1:]))
	const startField = 22 - 3 // fields after comm start at field 3 (state)
	if len(fields) <= startField {
		return 0, fmt.Errorf("parse stat: %d fields after comm", len(fields))
	}
	v, err := strconv.ParseUint(fields[startField], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse stat starttime: %w", err)
	}
	return v, nil
}

// CgroupEntry is one line of /proc/PID/cgroup:
// hierarchy-ID:controller-list:cgroup-path.
type CgroupEntry struct {
	Hierarchy   uint64
	Controllers string // comma-separated; "" for the cgroup v2 hierarchy
	Path        string // relative to the hierarchy's root (or the reader's cgroup namespace)
}

// V2 reports whether the entry is the cgroup v2 one ("0::").
func (e CgroupEntry) V2() bool { return e.Hierarchy == 0 && e.Controllers == "" }

// ParseProcCgroup reads /proc/PID/cgroup: on a unified host one "0::/path"
// line, on a hybrid host the v1 hierarchies' lines and the "0::" line, on a
// legacy host v1 lines only. The path may contain ':' (only the first two
// separate fields). Lines that are not of that shape (including a trailing
// empty line) are skipped.
func ParseProcCgroup(data []byte) []CgroupEntry {
	var out []CgroupEntry
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		id, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		ctrl, p, ok := bytes.Cut(rest, []byte{':'})
		if !ok {
			continue
		}
		h, err := strconv.ParseUint(string(id), 10, 32)
		if err != nil {
			continue
		}
		out = append(out, CgroupEntry{Hierarchy: h, Controllers: string(ctrl), Path: string(p)})
	}
	return out
}

// CgroupV2Path returns the path of the cgroup v2 entry ("0::") among
// entries (the last one, should there be several), and whether there is one.
func CgroupV2Path(entries []CgroupEntry) (string, bool) {
	p, ok := "", false
	for _, e := range entries {
		if e.V2() {
			p, ok = e.Path, true
		}
	}
	return p, ok
}
