package daemon

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// SysmonAwake is the GODEBUG setting the daemon runs with: schedtrace set
// to its largest value (2^31-1 ms, 24.8 days).
//
// Why: Go's system monitor thread (sysmon) goes into a deep sleep whenever
// every P is idle, and the first system call a goroutine makes afterwards
// wakes it with a futex, after which it polls every 20 µs until everything
// is idle again. A proxy serving one statement at a time — an agent's MCP
// server, sysbench at 1 thread — goes fully idle between every statement,
// so each statement paid a thread wake-up and a burst of sysmon ticks:
// 28 µs of the daemon's CPU and 1.6 context switches per point select on
// 2 cores (docs/bench.md, "Go's system monitor kept out of its deep sleep"). With schedtrace set the runtime never
// takes that deep sleep; sysmon backs off to one tick per 10 ms instead.
// Its only other effects: the scheduler summary it exists for is printed
// to stderr once per 24.8 days of the machine's uptime, and a fatal runtime
// error prints the scheduler state before the stack traces.
const SysmonAwake = "schedtrace=2147483647"

// KeepSysmonAwake re-executes the running binary (same pid, name, arguments
// and environment) with SysmonAwake appended to GODEBUG. It returns nil without
// doing anything when GODEBUG already names schedtrace — as it does after
// the re-execution, and when an operator chose a value (schedtrace=0 turns
// this off). It returns only on error: then the daemon runs as it is.
func KeepSysmonAwake() error {
	orig, set := os.LookupEnv("GODEBUG")
	if godebugHas(orig, "schedtrace") {
		return nil
	}
	env := SysmonAwake
	if orig != "" {
		env = orig + "," + SysmonAwake
	}
	if err := os.Setenv("GODEBUG", env); err != nil {
		return err
	}
	err := syscall.Exec(selfPath(), os.Args, os.Environ())
	// Still here: the daemon goes on with the environment it was given.
	if set {
		_ = os.Setenv("GODEBUG", orig)
	} else {
		_ = os.Unsetenv("GODEBUG")
	}
	return fmt.Errorf("re-execute with GODEBUG=%s: %w", SysmonAwake, err)
}

// godebugHas reports whether the GODEBUG value env sets key.
func godebugHas(env, key string) bool {
	for _, kv := range strings.Split(env, ",") {
		if k, _, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && k == key {
			return true
		}
	}
	return false
}

// selfPath is the running binary's path, so the process keeps its name
// (/proc/PID/comm, what ps, top and pgrep show); /proc/self/exe when that
// path no longer names the running file (replaced or removed meanwhile).
func selfPath() string {
	const self = "/proc/self/exe"
	exe, err := os.Executable()
	if err != nil {
		return self
	}
	a, err1 := os.Stat(exe)
	b, err2 := os.Stat(self)
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		return self
	}
	return exe
}
