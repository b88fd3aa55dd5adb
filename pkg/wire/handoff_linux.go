package wire

import "syscall"

// yieldCPU gives the rest of the calling thread's time slice to whatever else
// is runnable on its CPU (sched_yield(2)); with nothing else runnable it
// returns at once. A raw system call: the goroutine keeps its P, as through
// any short system call, and the runtime does not wake another thread for it.
// A variable so that tests can count the hand-offs.
var yieldCPU = func() { syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
