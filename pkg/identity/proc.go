package identity

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxTokenSize bounds what is read from a workload's token file.
const maxTokenSize = 64 << 10

// proc is an open /proc/PID directory. Everything about the process is read
// relative to it: once the process exits, lookups under the fd fail even if
// the pid is reused, so nothing is ever read from a newer process.
type proc struct {
	pid uint32
	dir *os.File
}

func openProc(procRoot string, pid uint32) (*proc, error) {
	f, err := os.OpenFile(fmt.Sprintf("%s/%d", procRoot, pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /proc/%d: %w", pid, err)
	}
	return &proc{pid: pid, dir: f}, nil
}

func (p *proc) Close() error { return p.dir.Close() }

// readFile reads a small file of the process's /proc directory.
func (p *proc) readFile(name string) ([]byte, error) {
	fd, err := unix.Openat(int(p.dir.Fd()), name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /proc/%d/%s: %w", p.pid, name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read /proc/%d/%s: %w", p.pid, name, err)
	}
	return b, nil
}

// startTime is field 22 of /proc/PID/stat: clock ticks after boot at which the
// process started. Together with the pid it names one process for good.
func (p *proc) startTime() (uint64, error) {
	b, err := p.readFile("stat")
	if err != nil {
		return 0, err
	}
	return parseStartTime(b)
}

func parseStartTime(stat []byte) (uint64, error) {
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

// cgroup returns the process's cgroup v2 path (the "0::" line of
// /proc/PID/cgroup) and, if any line of it names a Kubernetes pod, its uid.
func (p *proc) cgroup() (v2 string, podUID string, err error) {
	b, err := p.readFile("cgroup")
	if err != nil {
		return "", "", err
	}
	v2, podUID = parseProcCgroup(string(b))
	return v2, podUID, nil
}

func parseProcCgroup(s string) (v2, podUID string) {
	for line := range strings.SplitSeq(s, "\n") {
		// hierarchy-ID:controller-list:cgroup-path; the path may contain ':'.
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
		}
		if podUID == "" {
			podUID = PodUIDFromCgroup(parts[2])
		}
	}
	if v2 != "" {
		if u := PodUIDFromCgroup(v2); u != "" {
			podUID = u
		}
	}
	return v2, podUID
}

// PodUIDFromCgroup returns the uid of the Kubernetes pod a cgroup path belongs
// to, or "" if it names none. Both kubelet cgroup drivers are understood:
// systemd (.../kubepods-burstable-pod<uid with _ for ->.slice/...) and
// cgroupfs (.../kubepods/burstable/pod<uid>/...).
func PodUIDFromCgroup(cg string) string {
	inKubepods := false
	for seg := range strings.SplitSeq(cg, "/") {
		if strings.HasSuffix(seg, ".slice") {
			name := strings.TrimSuffix(seg, ".slice")
			if !strings.Contains(name, "kubepods") {
				continue
			}
			inKubepods = true
			if i := strings.LastIndex(name, "-pod"); i >= 0 {
				if uid, ok := podUID(strings.ReplaceAll(name[i+len("-pod"):], "_", "-")); ok {
					return uid
				}
			}
			continue
		}
		if seg == "kubepods" {
			inKubepods = true
			continue
		}
		if inKubepods && strings.HasPrefix(seg, "pod") {
			if uid, ok := podUID(seg[len("pod"):]); ok {
				return uid
			}
		}
	}
	return ""
}

// podUID accepts a pod uid: a UUID, or the 32 hex digits of a static pod.
func podUID(s string) (string, bool) {
	if len(s) < 32 || len(s) > 36 {
		return "", false
	}
	hex := 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
			hex++
		case c == '-':
		default:
			return "", false
		}
	}
	if hex != 32 {
		return "", false
	}
	return strings.ToLower(s), true
}

// tokenError is why a token file could not be read: missing or unreadable.
type tokenError struct {
	reason string
	err    error
}

func (e *tokenError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// readToken reads path as the process sees it: every component, symlinks
// included, is resolved inside the process's root (/proc/PID/root), so an
// absolute symlink in the workload's tree can never point the daemon at its
// own files. Only a regular file is read, and at most maxTokenSize bytes.
func (p *proc) readToken(path string) ([]byte, error) {
	rfd, err := unix.Openat(int(p.dir.Fd()), "root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /proc/%d/root: %w", p.pid, err)
	}
	defer unix.Close(rfd)

	how := &unix.OpenHow{
		// O_NONBLOCK: a FIFO planted at the path must not hang the daemon.
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	var fd int
	for range 8 { // EAGAIN: a concurrent rename raced the in-root walk
		fd, err = unix.Openat2(rfd, path, how)
		if err != unix.EAGAIN && err != unix.EINTR {
			break
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, unix.ENOENT):
		return nil, &tokenError{ReasonTokenMissing, fmt.Errorf("open %s in workload root: %w", path, err)}
	case errors.Is(err, unix.ENOSYS):
		return nil, fmt.Errorf("open %s in workload root: openat2 not supported by this kernel: %w", path, err)
	default:
		return nil, &tokenError{ReasonTokenUnreadable, fmt.Errorf("open %s in workload root: %w", path, err)}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, &tokenError{ReasonTokenUnreadable, fmt.Errorf("stat %s: %w", path, err)}
	}
	if !st.Mode().IsRegular() {
		return nil, &tokenError{ReasonTokenUnreadable, fmt.Errorf("read %s: not a regular file (%s)", path, st.Mode().Type())}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenSize+1))
	if err != nil {
		return nil, &tokenError{ReasonTokenUnreadable, fmt.Errorf("read %s: %w", path, err)}
	}
	if len(b) > maxTokenSize {
		return nil, &tokenError{ReasonTokenUnreadable, fmt.Errorf("read %s: larger than %d bytes", path, maxTokenSize)}
	}
	return bytes.TrimSpace(b), nil
}
