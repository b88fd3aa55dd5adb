// Package testutil holds helpers shared by tests: the privileged-test gate,
// the private MariaDB instance started by scripts/mariadb.sh, and loopback
// TCP pairs.
//
// It is for tests only and must not import any sqlwarden package.
package testutil
