package redirect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/sqlwarden/sqlwarden/pkg/host"
)

// DefaultPinDir is where programs' links and maps are pinned unless Config.PinDir says otherwise.
const DefaultPinDir = "/sys/fs/bpf/sqlwarden"

// DefaultPort is the port enrolled when no ports are given.
const DefaultPort = 3306

// MaxPorts is how many ports one enrollment can list.
const MaxPorts = 16

// DefaultHeartbeatTimeout is how stale the daemon's heartbeat may get before
// fail-open mode stops redirecting.
const DefaultHeartbeatTimeout = 10 * time.Second

// Fail modes.
const (
	FailClosed = "closed" // while the daemon is down, enrolled connects are refused
	FailOpen   = "open"   // while the daemon is down, enrolled connects go direct
)

var (
	// ErrNotEnrolled is returned by Unenroll for a cgroup that is not enrolled.
	ErrNotEnrolled = errors.New("cgroup not enrolled")
	// ErrNotSupported wraps a missing kernel feature or privilege.
	ErrNotSupported = errors.New("not supported")
	// ErrRefused is returned by Enroll for the daemon's own cgroup or its ancestors.
	ErrRefused = errors.New("refusing to enroll the daemon's own cgroup or an ancestor of it")
)

// Config configures Open.
type Config struct {
	// ProxyAddr is the proxy's listen address. IPv4 connects go to its IPv4
	// address (127.0.0.1 if it is IPv6 or unspecified), IPv6 connects to its
	// IPv6 address (::1 otherwise); see Redirector.ListenAddrs.
	ProxyAddr netip.AddrPort
	// NodeAddress, if valid, is where connects from other network namespaces
	// go (same port). Open puts it on the node (see EnsureNodeAddress).
	NodeAddress netip.Addr
	// Ports are the default ports for Enroll calls without ports (3306).
	Ports []uint16
	// FailMode is "closed" (default) or "open".
	FailMode string
	// HeartbeatTimeout is the fail-open staleness bound (DefaultHeartbeatTimeout).
	HeartbeatTimeout time.Duration
	// CgroupRoot is where programs attach: "auto" or "" for the cgroup v2 root.
	CgroupRoot string
	// PinDir is where links and maps are pinned (DefaultPinDir).
	PinDir string
	// Log receives operational messages; nil discards them.
	Log *slog.Logger
}

// Enrollment is one enrolled cgroup.
type Enrollment struct {
	CgroupID uint64
	Path     string // empty when the cgroup no longer exists
	Ports    []uint16
}

// Counters are the programs' per-CPU counters summed, plus this process's lookups.
type Counters struct {
	Redirected       uint64 // connects rewritten to the proxy
	SkippedExcluded  uint64 // the daemon's own cgroup or marked sockets
	SkippedPort      uint64 // enrolled cgroup, port not enrolled
	SkippedProxyDest uint64 // destination already is the proxy
	SkippedFailOpen  uint64 // fail-open with a stale heartbeat
	Denied           uint64 // connects refused (fail-closed without a target)
	StorageErrors    uint64 // socket storage unavailable
	TupleErrors      uint64 // 4-tuple map update failed
	Published        uint64 // 4-tuple records written at TCP connect
	Released         uint64 // unconsumed records removed at socket release
	LookupHits       uint64 // Lookup found a record (this process)
	LookupMisses     uint64 // Lookup found none (this process)
}

// Status describes the installed redirection.
type Status struct {
	PinDir      string
	ProxyAddr   netip.AddrPort
	NodeAddress netip.Addr
	FailMode    string
	Heartbeat   time.Duration // age of the last heartbeat, fail-open only
	Enrolled    []Enrollment
	Counters    Counters
}

// Redirector owns the loaded programs' maps and, when opened by Open, the links.
type Redirector struct {
	log        *slog.Logger
	pinDir     string
	cgroupRoot string // cgroup v2 mount, for resolving paths
	ports      []uint16

	maps  bpfMaps
	links []link.Link

	mu     sync.Mutex // guards cfg writes
	cfg    bpfConfig
	daemon bool

	hits, misses atomic.Uint64
	stop         chan struct{}
	wg           sync.WaitGroup
	closeOnce    sync.Once
}

// Open probes the kernel, loads the programs, reuses or creates the pins under
// cfg.PinDir and attaches (or updates) the programs at the cgroup root.
func Open(cfg Config) (*Redirector, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if !cfg.ProxyAddr.IsValid() || cfg.ProxyAddr.Port() == 0 {
		return nil, fmt.Errorf("open redirector: invalid proxy address %v", cfg.ProxyAddr)
	}
	failMode := cfg.FailMode
	switch failMode {
	case "":
		failMode = FailClosed
	case FailClosed, FailOpen:
	default:
		return nil, fmt.Errorf("open redirector: unknown fail mode %q (closed|open)", cfg.FailMode)
	}
	ports := cfg.Ports
	if len(ports) == 0 {
		ports = []uint16{DefaultPort}
	}
	if _, err := encodeEnrollment(ports); err != nil {
		return nil, fmt.Errorf("open redirector: %w", err)
	}
	pinDir := cfg.PinDir
	if pinDir == "" {
		pinDir = DefaultPinDir
	}
	timeout := cfg.HeartbeatTimeout
	if timeout <= 0 {
		timeout = DefaultHeartbeatTimeout
	}

	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock limit: %w", err)
	}
	if err := probe(); err != nil {
		return nil, err
	}
	v2, err := host.CgroupV2Mount()
	if err != nil {
		return nil, err
	}
	attachAt := cfg.CgroupRoot
	if attachAt == "" || attachAt == "auto" {
		attachAt = v2
	}
	attachID, err := host.CgroupID(attachAt)
	if err != nil {
		return nil, fmt.Errorf("open attach cgroup: %w", err)
	}
	self, err := host.SelfCgroup(v2)
	if err != nil {
		return nil, err
	}
	selfID, err := host.CgroupID(self)
	if err != nil {
		return nil, fmt.Errorf("open own cgroup: %w", err)
	}
	cookie, err := hostNetnsCookie()
	if err != nil {
		return nil, err
	}
	if err := ensurePinDir(pinDir, log); err != nil {
		return nil, err
	}

	bc, err := configFor(cfg.ProxyAddr, cfg.NodeAddress)
	if err != nil {
		return nil, err
	}
	bc.Flags |= configEnabled
	if failMode == FailOpen {
		bc.Flags |= configFailOpen
		bc.HeartbeatNs = monotonicNow()
	}
	bc.HeartbeatTimeoutNs = uint64(timeout)
	bc.Mark = Mark
	bc.HostNetnsCookie = cookie
	bc.DaemonCgroupId = selfID

	if cfg.NodeAddress.IsValid() {
		if _, err := EnsureNodeAddress(cfg.NodeAddress); err != nil {
			return nil, err
		}
	}

	objs, err := loadPinned(pinDir, log)
	if err != nil {
		return nil, err
	}
	r := &Redirector{
		log:        log,
		pinDir:     pinDir,
		cgroupRoot: v2,
		ports:      slices.Clone(ports),
		maps:       objs.bpfMaps,
		cfg:        bc,
		daemon:     true,
		stop:       make(chan struct{}),
	}
	// Config first: a program attached below must never see a zero config.
	if err := r.writeConfig(); err != nil {
		objs.Close()
		return nil, err
	}
	links, err := attachAll(&objs.bpfPrograms, attachAt, attachID, pinDir, log)
	// The links hold the programs now; our program FDs are no longer needed.
	objs.bpfPrograms.Close()
	if err != nil {
		r.maps.Close()
		return nil, err
	}
	r.links = links
	if failMode == FailOpen {
		r.wg.Add(1)
		go r.heartbeatLoop(timeout / 3)
	}
	log.Info("redirect attached", "cgroup", attachAt, "pin_dir", pinDir, "proxy", cfg.ProxyAddr,
		"node_address", cfg.NodeAddress, "fail_mode", failMode)
	return r, nil
}

// OpenPinned opens the maps pinned by a daemon (running or not) for enroll,
// unenroll and status. It attaches nothing.
func OpenPinned(pinDir string) (*Redirector, error) {
	if pinDir == "" {
		pinDir = DefaultPinDir
	}
	v2, err := host.CgroupV2Mount()
	if err != nil {
		return nil, err
	}
	var maps bpfMaps
	for _, m := range []struct {
		name string
		dst  **ebpf.Map
	}{
		{"sw_config", &maps.SwConfig},
		{"sw_counters", &maps.SwCounters},
		{"sw_enrolled", &maps.SwEnrolled},
		{"sw_sockets", &maps.SwSockets},
		{"sw_tuples", &maps.SwTuples},
	} {
		mp, err := ebpf.LoadPinnedMap(pinPath(pinDir, m.name), nil)
		if err != nil {
			maps.Close()
			return nil, fmt.Errorf("load pinned map %s (is sqlwarden installed?): %w", m.name, err)
		}
		*m.dst = mp
	}
	r := &Redirector{log: slog.New(slog.NewTextHandler(io.Discard, nil)), pinDir: pinDir, cgroupRoot: v2, maps: maps}
	if err := r.maps.SwConfig.Lookup(uint32(0), &r.cfg); err != nil {
		maps.Close()
		return nil, fmt.Errorf("read config map: %w", err)
	}
	r.ports = []uint16{DefaultPort}
	return r, nil
}

// ListenAddrs returns every address redirected connections are sent to: the
// proxy must listen on all of them (IPv4, IPv6 loopback, and the node address).
func (r *Redirector) ListenAddrs() []netip.AddrPort {
	port := r.cfg.ProxyPort
	out := []netip.AddrPort{
		netip.AddrPortFrom(ip4(r.cfg.ProxyIp4), port),
		netip.AddrPortFrom(ip6(r.cfg.ProxyIp6), port),
	}
	if r.cfg.NodeIp4 != 0 {
		out = append(out, netip.AddrPortFrom(ip4(r.cfg.NodeIp4), port))
	}
	if r.cfg.Flags&configHaveNodeIP6 != 0 {
		out = append(out, netip.AddrPortFrom(ip6(r.cfg.NodeIp6), port))
	}
	return out
}

// Lookup returns and forgets the origin of the accepted connection whose
// client address is remote and whose proxy-side address is local.
func (r *Redirector) Lookup(remote, local netip.AddrPort) (host.Origin, error) {
	key := tupleKey(remote, local)
	var o bpfOrigin
	if err := r.maps.SwTuples.LookupAndDelete(&key, &o); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			r.misses.Add(1)
			return host.Origin{}, host.ErrNoOrigin
		}
		return host.Origin{}, fmt.Errorf("look up origin of %v: %w", remote, err)
	}
	r.hits.Add(1)
	return originFrom(o), nil
}

// Enroll redirects connections to ports (the configured defaults if empty)
// made from the cgroup at cgroupPath or any cgroup below it.
func (r *Redirector) Enroll(cgroupPath string, ports []uint16) error {
	dir, err := host.ResolveCgroup(r.cgroupRoot, cgroupPath)
	if err != nil {
		return err
	}
	id, err := host.CgroupID(dir)
	if err != nil {
		return err
	}
	if err := r.refuseDaemon(dir, id); err != nil {
		return err
	}
	if len(ports) == 0 {
		ports = r.ports
	}
	e, err := encodeEnrollment(ports)
	if err != nil {
		return fmt.Errorf("enroll %s: %w", dir, err)
	}
	if err := r.maps.SwEnrolled.Put(id, &e); err != nil {
		return fmt.Errorf("enroll %s: %w", dir, err)
	}
	r.log.Info("cgroup enrolled", "cgroup", dir, "cgroup_id", id, "ports", ports)
	return nil
}

func (r *Redirector) refuseDaemon(dir string, id uint64) error {
	daemonID := r.cfg.DaemonCgroupId
	if daemonID == 0 {
		return nil
	}
	if id == daemonID {
		return fmt.Errorf("enroll %s: %w", dir, ErrRefused)
	}
	daemonDir, ok := host.FindCgroups(r.cgroupRoot, map[uint64]bool{daemonID: true})[daemonID]
	if ok && host.CgroupWithin(daemonDir, dir) {
		return fmt.Errorf("enroll %s (daemon runs in %s): %w", dir, daemonDir, ErrRefused)
	}
	return nil
}

// Unenroll stops redirecting the cgroup at cgroupPath.
func (r *Redirector) Unenroll(cgroupPath string) error {
	dir, err := host.ResolveCgroup(r.cgroupRoot, cgroupPath)
	if err != nil {
		return err
	}
	id, err := host.CgroupID(dir)
	if err != nil {
		return err
	}
	if err := r.maps.SwEnrolled.Delete(id); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("unenroll %s: %w", dir, ErrNotEnrolled)
		}
		return fmt.Errorf("unenroll %s: %w", dir, err)
	}
	r.log.Info("cgroup unenrolled", "cgroup", dir, "cgroup_id", id)
	return nil
}

// Status reports the enrolled cgroups (paths resolved by walking the cgroup
// hierarchy), the configuration in force and the counters.
func (r *Redirector) Status() (Status, error) {
	var cfg bpfConfig
	if err := r.maps.SwConfig.Lookup(uint32(0), &cfg); err != nil {
		return Status{}, fmt.Errorf("read config map: %w", err)
	}
	st := Status{
		PinDir:    r.pinDir,
		ProxyAddr: netip.AddrPortFrom(ip4(cfg.ProxyIp4), cfg.ProxyPort),
		FailMode:  FailClosed,
	}
	if cfg.NodeIp4 != 0 {
		st.NodeAddress = ip4(cfg.NodeIp4)
	} else if cfg.Flags&configHaveNodeIP6 != 0 {
		st.NodeAddress = ip6(cfg.NodeIp6)
	}
	if cfg.Flags&configFailOpen != 0 {
		st.FailMode = FailOpen
		if cfg.HeartbeatNs != 0 {
			st.Heartbeat = time.Duration(monotonicNow() - cfg.HeartbeatNs)
		}
	}
	var (
		id  uint64
		e   bpfEnrollment
		ids = map[uint64]bool{}
	)
	it := r.maps.SwEnrolled.Iterate()
	for it.Next(&id, &e) {
		st.Enrolled = append(st.Enrolled, Enrollment{CgroupID: id, Ports: decodePorts(e)})
		ids[id] = true
	}
	if err := it.Err(); err != nil {
		return Status{}, fmt.Errorf("iterate enrollments: %w", err)
	}
	paths := host.FindCgroups(r.cgroupRoot, ids)
	for i := range st.Enrolled {
		st.Enrolled[i].Path = paths[st.Enrolled[i].CgroupID]
	}
	slices.SortFunc(st.Enrolled, func(a, b Enrollment) int {
		if a.Path != b.Path {
			if a.Path < b.Path {
				return -1
			}
			return 1
		}
		return int(a.CgroupID - b.CgroupID)
	})
	c, err := r.Counters()
	if err != nil {
		return Status{}, err
	}
	st.Counters = c
	return st, nil
}

// Counters sums the per-CPU counters.
func (r *Redirector) Counters() (Counters, error) {
	var vals [counterMax]uint64
	for i := range vals {
		var per []uint64
		if err := r.maps.SwCounters.Lookup(uint32(i), &per); err != nil {
			return Counters{}, fmt.Errorf("read counter %d: %w", i, err)
		}
		for _, v := range per {
			vals[i] += v
		}
	}
	return Counters{
		Redirected:       vals[counterRedirected],
		SkippedExcluded:  vals[counterSkippedExcluded],
		SkippedPort:      vals[counterSkippedPort],
		SkippedProxyDest: vals[counterSkippedProxyDest],
		SkippedFailOpen:  vals[counterSkippedFailOpen],
		Denied:           vals[counterDenied],
		StorageErrors:    vals[counterStorageErrors],
		TupleErrors:      vals[counterTupleErrors],
		Published:        vals[counterPublished],
		Released:         vals[counterReleased],
		LookupHits:       r.hits.Load(),
		LookupMisses:     r.misses.Load(),
	}, nil
}

// Heartbeat tells the programs the daemon is alive. Only fail-open mode reads
// it; Open starts a goroutine that calls it, so callers rarely need to.
func (r *Redirector) Heartbeat() error {
	if !r.daemon {
		return errors.New("heartbeat: redirector opened from pins, not by the daemon")
	}
	r.mu.Lock()
	r.cfg.HeartbeatNs = monotonicNow()
	r.mu.Unlock()
	return r.writeConfig()
}

func (r *Redirector) heartbeatLoop(every time.Duration) {
	defer r.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			if err := r.Heartbeat(); err != nil {
				r.log.Warn("heartbeat", "err", err)
			}
		}
	}
}

func (r *Redirector) writeConfig() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.maps.SwConfig.Put(uint32(0), &r.cfg); err != nil {
		return fmt.Errorf("write config map: %w", err)
	}
	return nil
}

// Close releases this process's file descriptors and keeps every pin, so the
// programs go on redirecting (fail-closed) until the daemon returns. In
// fail-open mode it clears the heartbeat so connects go direct at once.
func (r *Redirector) Close() error {
	var errs []error
	r.closeOnce.Do(func() {
		if r.stop != nil {
			close(r.stop)
			r.wg.Wait()
		}
		if r.daemon && r.cfg.Flags&configFailOpen != 0 {
			r.mu.Lock()
			r.cfg.HeartbeatNs = 0
			r.mu.Unlock()
			errs = append(errs, r.writeConfig())
		}
		for _, l := range r.links {
			errs = append(errs, l.Close())
		}
		errs = append(errs, r.maps.Close())
	})
	return errors.Join(errs...)
}

func originFrom(o bpfOrigin) host.Origin {
	addr := netip.AddrFrom16(o.DstIp)
	if o.Family == 4 {
		addr = addr.Unmap()
	}
	return host.Origin{
		Destination: netip.AddrPortFrom(addr, o.DstPort),
		PID:         o.Pid,
		UID:         o.Uid,
		CgroupID:    o.CgroupId,
		NetnsCookie: o.NetnsCookie,
		StartTime:   host.StartTicks(o.StartBoottimeNs),
	}
}

func tupleKey(remote, local netip.AddrPort) bpfTuple {
	return bpfTuple{
		SrcIp:   remote.Addr().As16(),
		DstIp:   local.Addr().As16(),
		SrcPort: remote.Port(),
		DstPort: local.Port(),
	}
}

func encodeEnrollment(ports []uint16) (bpfEnrollment, error) {
	var e bpfEnrollment
	if len(ports) == 0 {
		return e, errors.New("no ports")
	}
	seen := map[uint16]bool{}
	n := 0
	for _, p := range ports {
		if p == 0 {
			return e, errors.New("port 0")
		}
		if seen[p] {
			continue
		}
		if n == MaxPorts {
			return e, fmt.Errorf("more than %d ports", MaxPorts)
		}
		seen[p] = true
		e.Ports[n] = p
		n++
	}
	return e, nil
}

func decodePorts(e bpfEnrollment) []uint16 {
	var ports []uint16
	for _, p := range e.Ports {
		if p == 0 {
			break
		}
		ports = append(ports, p)
	}
	return ports
}

// configFor fills the proxy and node addresses of the programs' config.
func configFor(proxy netip.AddrPort, node netip.Addr) (bpfConfig, error) {
	var c bpfConfig
	a := proxy.Addr().Unmap()
	p4 := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	p6 := netip.IPv6Loopback()
	switch {
	case a.IsUnspecified():
	case a.Is4():
		p4 = a
	default:
		p6 = a
	}
	c.ProxyIp4 = be32(p4)
	c.ProxyIp6 = words(p6)
	c.ProxyPort = proxy.Port()
	if node.IsValid() {
		node = node.Unmap()
		if node.IsUnspecified() || node.IsLoopback() {
			return c, fmt.Errorf("configure node address %v: must be a routable (e.g. link-local) address", node)
		}
		if node.Is4() {
			c.NodeIp4 = be32(node)
		} else {
			c.NodeIp6 = words(node)
			c.Flags |= configHaveNodeIP6
		}
	}
	return c, nil
}

func be32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

func words(a netip.Addr) [4]uint32 {
	b := a.As16()
	var w [4]uint32
	for i := range w {
		w[i] = binary.NativeEndian.Uint32(b[4*i:])
	}
	return w
}

func ip4(v uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func ip6(w [4]uint32) netip.Addr {
	var b [16]byte
	for i, v := range w {
		binary.NativeEndian.PutUint32(b[4*i:], v)
	}
	return netip.AddrFrom16(b)
}

func monotonicNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// hostNetnsCookie is the cookie of the daemon's (the host's) network namespace.
func hostNetnsCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open socket for netns cookie: %w", err)
	}
	defer unix.Close(fd)
	c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("read netns cookie (SO_NETNS_COOKIE, kernel 5.14): %w: %w", ErrNotSupported, err)
	}
	return c, nil
}

// Mirrors of bpf/redirect.h enums (bpf2go emits only types the maps use).
const (
	configEnabled     = 1 << 0
	configFailOpen    = 1 << 1
	configHaveNodeIP6 = 1 << 2
)

const (
	counterRedirected = iota
	counterSkippedExcluded
	counterSkippedPort
	counterSkippedProxyDest
	counterSkippedFailOpen
	counterDenied
	counterStorageErrors
	counterTupleErrors
	counterPublished
	counterReleased
	counterMax
)
