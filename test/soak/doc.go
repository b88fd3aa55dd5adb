// Command soak drives a steady mixed agent workload through a running
// sqlwarden (scripts/soak.sh starts it) and samples the daemon every few
// seconds: resident memory, goroutines and open files (from /metrics),
// journal lag (how long after a statement is sent its record can be read
// from the journal files) and p50/p99
// statement latency. It writes the samples as CSV and a Markdown summary.
//
// The workload: point selects (text protocol), scans of masked columns
// (every value checked masked), writes, prepared statements, a statement
// that the policy refuses (an error the workload provokes on purpose), a
// schema change held for approval and approved through the admin API, and
// connections opened and closed all along.
//
// It talks to the daemon over the network only; it imports pkg/audit (to
// read journal lag) and pkg/approval (to approve held statements), and must
// not import the proxy or the daemon.
package main
