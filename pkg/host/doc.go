// Package host is what sqlwarden reads from the Linux host about cgroups and
// processes: where the cgroup v2 hierarchy is mounted, cgroup ids and paths,
// a process's /proc entries (cgroup membership, start time, executable,
// files inside its root), and the Origin of a redirected connection (the
// process, cgroup and destination the kernel saw at connect time), one type
// for the redirect that records it and the proxy that looks it up.
//
// It must not import any sqlwarden package, nor an eBPF or netlink library:
// redirect, identity, k8s and the proxy build on it.
package host
