// Package e2e holds end-to-end tests: the real sqlwarden binary, the
// project's private MariaDB, real client libraries and command-line clients,
// and (for the privileged tests) real cgroups, eBPF programs and network
// namespaces.
package e2e
