package redirect

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// probe checks every kernel feature the programs need and names the first
// one missing (or the missing privilege) in one error.
func probe() error {
	checks := []struct {
		name string
		fn   func() error
	}{
		{"program type cgroup_sock_addr (kernel 4.17)", func() error { return features.HaveProgramType(ebpf.CGroupSockAddr) }},
		{"program type sock_ops (kernel 4.13)", func() error { return features.HaveProgramType(ebpf.SockOps) }},
		{"program type cgroup_sock (kernel 4.10)", func() error { return features.HaveProgramType(ebpf.CGroupSock) }},
		{"map type sk_storage (kernel 5.2)", func() error { return features.HaveMapType(ebpf.SkStorage) }},
		{"map type lru_hash (kernel 4.10)", func() error { return features.HaveMapType(ebpf.LRUHash) }},
		{"map type percpu_array (kernel 4.6)", func() error { return features.HaveMapType(ebpf.PerCPUArray) }},
		{"helper bpf_get_current_ancestor_cgroup_id in cgroup_sock_addr (kernel 5.7)", func() error {
			return features.HaveProgramHelper(ebpf.CGroupSockAddr, asm.FnGetCurrentAncestorCgroupId)
		}},
		{"helper bpf_get_netns_cookie in cgroup_sock_addr (kernel 5.7)", func() error {
			return features.HaveProgramHelper(ebpf.CGroupSockAddr, asm.FnGetNetnsCookie)
		}},
		{"helper bpf_sk_storage_get in cgroup_sock_addr (kernel 5.3)", func() error {
			return features.HaveProgramHelper(ebpf.CGroupSockAddr, asm.FnSkStorageGet)
		}},
		{"helper bpf_sk_storage_get in sock_ops (kernel 5.3)", func() error {
			return features.HaveProgramHelper(ebpf.SockOps, asm.FnSkStorageGet)
		}},
		{"helper bpf_sk_storage_get in cgroup_sock (kernel 5.11)", func() error {
			return features.HaveProgramHelper(ebpf.CGroupSock, asm.FnSkStorageGet)
		}},
		{"bounded loops (kernel 5.3)", features.HaveBoundedLoops},
	}
	for _, c := range checks {
		err := c.fn()
		if err == nil {
			continue
		}
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return fmt.Errorf("probe %s: needs root or CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN: %w", c.name, err)
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("probe kernel: missing %s: %w", c.name, ErrNotSupported)
		}
		return fmt.Errorf("probe %s: %w", c.name, err)
	}
	return nil
}
