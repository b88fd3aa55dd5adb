package record

import (
	"syscall"
	"time"
)

// cpuTime is the process's user+system CPU time so far: on a shared machine
// it moves less with other load than wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
