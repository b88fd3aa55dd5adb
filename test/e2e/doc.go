// Package e2e holds end-to-end tests: the real sqlwarden binary, the
// project's private MariaDB, real client libraries and command-line clients,
// and (for the privileged tests) real cgroups, eBPF programs and network
// namespaces.
//
// The tests drive the binary and the database from outside: they import
// test/harness, internal/testutil and pkg/record (to read the journal), and
// must not import the daemon's packages to reach inside it.
package e2e
