package redirect

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNoCgroupV2 is returned when no cgroup v2 hierarchy is mounted.
var ErrNoCgroupV2 = errors.New("no cgroup v2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")

// cgroupV2Candidates are where cgroup2 lives: unified layout, then hybrid.
var cgroupV2Candidates = []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}

// CgroupV2Root returns the mount point of the cgroup v2 hierarchy, detected with
// statfs (unified /sys/fs/cgroup or hybrid /sys/fs/cgroup/unified).
func CgroupV2Root() (string, error) {
	for _, p := range cgroupV2Candidates {
		if isCgroup2(p) {
			return p, nil
		}
	}
	return "", ErrNoCgroupV2
}

func isCgroup2(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC
}

// CgroupID returns the cgroup v2 id of the cgroup directory at path: the
// directory's inode number.
func CgroupID(path string) (uint64, error) {
	if !isCgroup2(path) {
		return 0, fmt.Errorf("cgroup id of %s: not on a cgroup v2 filesystem", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat cgroup %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 0, fmt.Errorf("cgroup id of %s: not a directory", path)
	}
	return st.Ino, nil
}

// resolveCgroup turns a user-given cgroup path into an absolute directory in
// the cgroup v2 hierarchy mounted at root. Both "/sys/fs/cgroup/unified/a/b"
// and the hierarchy-relative "/a/b" (as in /proc/PID/cgroup) are accepted.
func resolveCgroup(root, path string) (string, error) {
	if path == "" {
		return "", errors.New("resolve cgroup: empty path")
	}
	clean := filepath.Clean(path)
	if clean == root || strings.HasPrefix(clean, root+"/") {
		return clean, nil
	}
	if filepath.IsAbs(clean) {
		if _, err := os.Stat(clean); err == nil && isCgroup2(clean) {
			return clean, nil
		}
	}
	joined := filepath.Join(root, clean)
	if _, err := os.Stat(joined); err != nil {
		return "", fmt.Errorf("resolve cgroup %s: %w", path, err)
	}
	return joined, nil
}

// selfCgroup returns the absolute cgroup v2 directory of the calling process.
func selfCgroup(root string) (string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("read own cgroup: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return filepath.Join(root, rest), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read own cgroup: %w", err)
	}
	return "", errors.New("read own cgroup: no cgroup v2 entry in /proc/self/cgroup")
}

// cgroupPaths walks the hierarchy at root and returns the directory of every
// id in want that still exists.
func cgroupPaths(root string, want map[uint64]bool) map[uint64]string {
	found := make(map[uint64]string, len(want))
	if len(want) == 0 {
		return found
	}
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
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

// isSameOrAncestor reports whether dir is child or one of its ancestors.
func isSameOrAncestor(dir, child string) bool {
	dir, child = filepath.Clean(dir), filepath.Clean(child)
	return dir == child || strings.HasPrefix(child, dir+"/")
}
