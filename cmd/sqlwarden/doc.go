// Command sqlwarden is the node daemon and its operator CLI: run the proxy,
// enroll workloads for transparent redirect, read and verify the audit
// journal, decide approvals and test policies.
//
// Nothing imports it. It reaches the daemon only through internal/daemon and
// must not import pkg/proxy, pkg/wire, pkg/statement or pkg/identity: an
// addition here that is not flag parsing or output belongs in the package
// that owns it.
package main
