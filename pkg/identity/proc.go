package identity

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sqlwarden/sqlwarden/pkg/host"
)

// maxTokenSize bounds what is read from a workload's token file.
const maxTokenSize = 64 << 10

// procCgroup returns the process's cgroup v2 path (the "0::" line of
// /proc/PID/cgroup) and, if any line of it names a Kubernetes pod, its uid.
func procCgroup(p *host.Proc) (v2 string, podUID string, err error) {
	entries, err := p.Cgroups()
	if err != nil {
		return "", "", err
	}
	v2, podUID = cgroupAndPod(entries)
	return v2, podUID, nil
}

// parseProcCgroup is procCgroup for the content of a /proc/PID/cgroup.
func parseProcCgroup(b []byte) (v2, podUID string) { return cgroupAndPod(host.ParseProcCgroup(b)) }

// cgroupAndPod is the cgroup v2 path among entries and the pod uid it names,
// else the first one another entry names.
func cgroupAndPod(entries []host.CgroupEntry) (v2, podUID string) {
	for _, e := range entries {
		if podUID == "" {
			podUID = PodUIDFromCgroup(e.Path)
		}
	}
	v2, _ = host.CgroupV2Path(entries)
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
func readToken(p *host.Proc, path string) ([]byte, error) {
	root, err := p.OpenRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	// O_NONBLOCK: a FIFO planted at the path must not hang the daemon.
	f, err := root.Open(path, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK)
	switch {
	case err == nil:
	case errors.Is(err, unix.ENOENT):
		return nil, &tokenError{ReasonTokenMissing, err}
	case errors.Is(err, unix.ENOSYS):
		return nil, fmt.Errorf("openat2 not supported by this kernel: %w", err)
	default:
		return nil, &tokenError{ReasonTokenUnreadable, err}
	}
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
