// Package host is what sqlwarden reads from the Linux host about cgroups and processes: where the cgroup v2 hierarchy is mounted, cgroup ids and paths, and a process's /proc entries (cgroup membership, start time, executable, files inside its root); it imports nothing of sqlwarden, and no eBPF or netlink library.
package host
