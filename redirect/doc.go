// Package redirect loads, pins and attaches the eBPF programs that send enrolled workloads' MySQL connections to the sqlwarden proxy, and answers where each redirected connection was going.
//
// It imports pkg/host (cgroup v2) and must not import any other sqlwarden
// package: the proxy sees it only through its Origins interface.
package redirect
