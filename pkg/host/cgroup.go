package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNoCgroupV2 is returned when no cgroup v2 hierarchy is mounted.
var ErrNoCgroupV2 = errors.New("no cgroup v2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")

// cgroupV2Candidates are where cgroup2 lives: unified layout, then hybrid.
var cgroupV2Candidates = []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}

// CgroupV2Mount returns the mount point of the cgroup v2 hierarchy, detected
// with statfs: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on
// hybrid ones.
func CgroupV2Mount() (string, error) {
	for _, p := range cgroupV2Candidates {
		if IsCgroup2(p) {
			return p, nil
		}
	}
	return "", ErrNoCgroupV2
}

// IsCgroup2 reports whether p is on a cgroup v2 filesystem.
func IsCgroup2(p string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return false
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC
}

// CgroupID returns the cgroup v2 id of the cgroup directory at dir: the
// directory's inode number, which is what the kernel reports as the cgroup id
// (bpf_get_current_cgroup_id, sockops).
func CgroupID(dir string) (uint64, error) {
	if !IsCgroup2(dir) {
		return 0, fmt.Errorf("cgroup id of %s: not on a cgroup v2 filesystem", dir)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, fmt.Errorf("stat cgroup %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 0, fmt.Errorf("cgroup id of %s: not a directory", dir)
	}
	return st.Ino, nil
}

// ResolveCgroup turns a user-given cgroup path into an absolute directory in
// the cgroup v2 hierarchy mounted at mount, and checks that it exists. Both
// "/sys/fs/cgroup/unified/a/b" and the hierarchy-relative "/a/b" (as
// /proc/PID/cgroup shows it) are accepted.
func ResolveCgroup(mount, p string) (string, error) {
	if p == "" {
		return "", errors.New("resolve cgroup: empty path")
	}
	clean := filepath.Clean(p)
	if clean == mount || strings.HasPrefix(clean, mount+"/") {
		return clean, nil
	}
	if filepath.IsAbs(clean) {
		if _, err := os.Stat(clean); err == nil && IsCgroup2(clean) {
			return clean, nil
		}
	}
	joined := filepath.Join(mount, clean)
	if _, err := os.Stat(joined); err != nil {
		return "", fmt.Errorf("resolve cgroup %s: %w", p, err)
	}
	return joined, nil
}

// RelCgroup turns a cgroup given as a mounted path (below mount) or as a
// hierarchy path into a clean path relative to the hierarchy root, as
// /proc/PID/cgroup shows it. Nothing is read from the filesystem.
func RelCgroup(mount, cg string) string {
	cg = path.Clean("/" + cg)
	if mount != "" {
		if cg == mount {
			return "/"
		}
		if rest, ok := strings.CutPrefix(cg, mount+"/"); ok {
			return "/" + rest
		}
	}
	return cg
}

// CgroupWithin reports whether cgroup cg is dir or below it. Both are paths
// of the same kind (both absolute directories, or both hierarchy paths).
func CgroupWithin(cg, dir string) bool {
	cg, dir = path.Clean(cg), path.Clean(dir)
	return cg == dir || dir == "/" || strings.HasPrefix(cg, dir+"/")
}

// SelfCgroup returns the absolute cgroup v2 directory of the calling
// process, under mount.
func SelfCgroup(mount string) (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("read own cgroup: %w", err)
	}
	rel, ok := CgroupV2Path(ParseProcCgroup(b))
	if !ok {
		return "", errors.New("read own cgroup: no cgroup v2 entry in /proc/self/cgroup")
	}
	return filepath.Join(mount, rel), nil
}

// FindCgroups walks the hierarchy at mount and returns the directory of every
// id in want that still exists.
func FindCgroups(mount string, want map[uint64]bool) map[uint64]string {
	found := make(map[uint64]string, len(want))
	if len(want) == 0 {
		return found
	}
	_ = filepath.WalkDir(mount, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && want[st.Ino] {
			found[st.Ino] = p
			if len(found) == len(want) {
				return filepath.SkipAll
			}
		}
		return nil
	})
	return found
}
