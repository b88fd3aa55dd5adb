package identity

import (
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// CgroupV2Mount returns where the cgroup v2 hierarchy is mounted:
// /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones, ""
// if neither is cgroup2.
func CgroupV2Mount() string {
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p
		}
	}
	return ""
}

// normalizeCgroup turns a configured cgroup (mounted path or hierarchy path)
// into a clean path relative to the hierarchy root, as /proc/PID/cgroup
// shows it.
func normalizeCgroup(mount, cg string) string {
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

// cgroupWithin reports whether cg is dir or below it.
func cgroupWithin(cg, dir string) bool {
	return cg == dir || dir == "/" || strings.HasPrefix(cg, dir+"/")
}

type staticBinding struct {
	StaticIdentity
	cgroup string // normalized
}

// matchStatic returns the most specific static binding covering cg.
func matchStatic(bindings []staticBinding, cg string) *staticBinding {
	var best *staticBinding
	for i := range bindings {
		b := &bindings[i]
		if cgroupWithin(cg, b.cgroup) && (best == nil || len(b.cgroup) > len(best.cgroup)) {
			best = b
		}
	}
	return best
}
