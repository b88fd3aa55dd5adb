// Package harness runs the real sqlwarden binary against the project's
// private MariaDB for end-to-end tests: it builds the binary once, writes a
// config, starts the daemon, waits until it is ready and reads its journal.
//
// It imports internal/testutil and pkg/record and must not import the
// daemon's packages: tests see the daemon from outside, as users do.
package harness
