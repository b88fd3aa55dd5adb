//go:build !linux

package wire

// yieldCPU does nothing where sched_yield's hand-off is not known to help.
var yieldCPU = func() {}
