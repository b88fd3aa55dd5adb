package host

import (
	"errors"
	"net/netip"
)

// Origin is what a redirected connection was doing before it was
// redirected, as the kernel saw it at connect time: the redirect records
// it, the proxy looks it up to describe and identify the workload.
type Origin struct {
	Destination netip.AddrPort // the original destination
	PID         uint32         // connecting process (tgid), host pid namespace
	UID         uint32
	CgroupID    uint64 // the connecting process's cgroup v2 id
	NetnsCookie uint64
	// StartTime is the connecting process's start, in clock ticks since
	// boot as /proc/PID/stat reports it: a pid reused after the connect
	// has another (0: unknown).
	StartTime uint64
}

// ErrNoOrigin means no origin was recorded for a connection: it was not
// redirected (an explicit client), or its origin was already taken.
var ErrNoOrigin = errors.New("no origin recorded for connection")
