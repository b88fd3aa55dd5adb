package identity

import "github.com/sqlwarden/sqlwarden/pkg/host"

type staticBinding struct {
	StaticIdentity
	cgroup string // relative to the hierarchy root (host.RelCgroup)
}

// matchStatic returns the most specific static binding covering cg.
func matchStatic(bindings []staticBinding, cg string) *staticBinding {
	var best *staticBinding
	for i := range bindings {
		b := &bindings[i]
		if host.CgroupWithin(cg, b.cgroup) && (best == nil || len(b.cgroup) > len(best.cgroup)) {
			best = b
		}
	}
	return best
}
