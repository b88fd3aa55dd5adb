package redirect

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

const bpffsRoot = "/sys/fs/bpf"

func pinPath(pinDir, name string) string { return filepath.Join(pinDir, name) }

func isBPFFS(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.BPF_FS_MAGIC
}

// ensurePinDir creates pinDir on a bpf filesystem. When the default location's
// parent, /sys/fs/bpf, has no bpffs mounted, it mounts one there (as Cilium does).
func ensurePinDir(pinDir string, log *slog.Logger) error {
	parent := filepath.Dir(filepath.Clean(pinDir))
	if !isBPFFS(parent) {
		if parent != bpffsRoot {
			return fmt.Errorf("prepare pin dir %s: %s is not on a bpf filesystem", pinDir, parent)
		}
		if err := unix.Mount("bpffs", bpffsRoot, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("mount bpffs at %s: %w", bpffsRoot, err)
		}
		log.Info("mounted bpffs", "path", bpffsRoot)
	}
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return fmt.Errorf("create pin dir: %w", err)
	}
	return nil
}

// loadPinned loads the programs, sharing maps already pinned in pinDir (so
// enrollments and in-flight records survive a restart) and pinning new ones.
func loadPinned(pinDir string, log *slog.Logger) (*bpfObjects, error) {
	load := func() (*bpfObjects, error) {
		spec, err := loadBpf()
		if err != nil {
			return nil, fmt.Errorf("load bpf spec: %w", err)
		}
		for _, m := range spec.Maps {
			m.Pinning = ebpf.PinByName
		}
		var objs bpfObjects
		err = spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pinDir}})
		if err != nil {
			return nil, err
		}
		return &objs, nil
	}
	objs, err := load()
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		// A different build's map layout: start over with fresh maps.
		log.Warn("pinned maps incompatible, recreating them (enrollments are lost)", "pin_dir", pinDir, "err", err)
		for _, name := range mapNames {
			_ = os.Remove(pinPath(pinDir, name))
		}
		objs, err = load()
	}
	if err != nil {
		return nil, fmt.Errorf("load bpf programs: %w", err)
	}
	return objs, nil
}

var mapNames = []string{"sw_config", "sw_counters", "sw_enrolled", "sw_sockets", "sw_tuples"}

type attachment struct {
	name    string
	kernel  string
	program *ebpf.Program
	attach  ebpf.AttachType
}

func attachments(p *bpfPrograms) []attachment {
	return []attachment{
		{"cgroup_connect4", "5.7", p.SwConnect4, ebpf.AttachCGroupInet4Connect},
		{"cgroup_connect6", "5.7", p.SwConnect6, ebpf.AttachCGroupInet6Connect},
		{"sockops", "5.7", p.SwSockops, ebpf.AttachCGroupSockOps},
		{"cgroup_getpeername4", "5.8", p.SwGetpeername4, ebpf.AttachCgroupInet4GetPeername},
		{"cgroup_getpeername6", "5.8", p.SwGetpeername6, ebpf.AttachCgroupInet6GetPeername},
		{"cgroup_sock_release", "5.9", p.SwSockRelease, ebpf.AttachCgroupInetSockRelease},
	}
}

func linkPin(pinDir, name string) string { return pinPath(pinDir, "link_"+name) }

// attachAll attaches every program at the cgroup, or swaps the program of
// the pinned link already there (atomic: no connect goes unredirected).
func attachAll(p *bpfPrograms, cgroup string, cgroupID uint64, pinDir string, log *slog.Logger) ([]link.Link, error) {
	var links []link.Link
	fail := func(err error) ([]link.Link, error) {
		for _, l := range links {
			_ = l.Close()
		}
		return nil, err
	}
	for _, a := range attachments(p) {
		path := linkPin(pinDir, a.name)
		l, err := reusePinnedLink(path, a, cgroupID, log)
		if err != nil {
			return fail(err)
		}
		if l == nil {
			l, err = link.AttachCgroup(link.CgroupOptions{Path: cgroup, Attach: a.attach, Program: a.program})
			if err != nil {
				return fail(fmt.Errorf("attach %s at %s (needs kernel %s): %w", a.name, cgroup, a.kernel, err))
			}
			if err := l.Pin(path); err != nil {
				_ = l.Close()
				return fail(fmt.Errorf("pin %s link (needs bpf_link, kernel 5.7): %w", a.name, err))
			}
			log.Debug("attached", "program", a.name, "cgroup", cgroup)
		}
		// Pin the program too, for inspection (bpftool prog show pinned ...);
		// the link is what keeps it attached.
		progPin := pinPath(pinDir, "prog_"+a.name)
		_ = os.Remove(progPin)
		if err := a.program.Pin(progPin); err != nil {
			log.Warn("pin program", "program", a.name, "err", err)
		}
		links = append(links, l)
	}
	return links, nil
}

// reusePinnedLink updates the link pinned at path with the new program. It
// returns nil, nil when there is no usable link: none pinned, detached
// (ENOLINK: its cgroup is gone) or attached to another cgroup.
func reusePinnedLink(path string, a attachment, cgroupID uint64, log *slog.Logger) (link.Link, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		log.Warn("unusable pinned link, re-attaching", "path", path, "err", err)
		_ = os.Remove(path)
		return nil, nil
	}
	discard := func(reason string, err error) (link.Link, error) {
		log.Info("replacing pinned link", "program", a.name, "reason", reason, "err", err)
		_ = l.Unpin()
		_ = l.Close()
		return nil, nil
	}
	info, err := l.Info()
	if err != nil {
		return discard("link info", err)
	}
	if cg := info.Cgroup(); cg == nil || cg.CgroupId != cgroupID {
		return discard("attached to another cgroup", nil)
	}
	if err := l.Update(a.program); err != nil {
		if errors.Is(err, unix.ENOLINK) {
			return discard("link detached", err)
		}
		_ = l.Close()
		return nil, fmt.Errorf("update pinned %s link: %w", a.name, err)
	}
	log.Debug("updated pinned link", "program", a.name)
	return l, nil
}

// Uninstall detaches the programs and removes every pin under pinDir, and
// the node address (and its sqlwarden0 interface) if nodeAddr is valid.
// A running daemon's links stay attached until it exits.
func Uninstall(pinDir string, nodeAddr netip.Addr) error {
	if pinDir == "" {
		pinDir = DefaultPinDir
	}
	var errs []error
	for _, a := range attachments(&bpfPrograms{}) {
		path := linkPin(pinDir, a.name)
		l, err := link.LoadPinnedLink(path, nil)
		if err != nil {
			continue
		}
		errs = append(errs, l.Unpin(), l.Close())
	}
	if err := os.RemoveAll(pinDir); err != nil {
		errs = append(errs, fmt.Errorf("remove pin dir: %w", err))
	}
	if nodeAddr.IsValid() {
		errs = append(errs, removeNodeAddress(nodeAddr))
	}
	return errors.Join(errs...)
}
