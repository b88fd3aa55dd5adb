// Package testutil holds helpers shared by tests: the privileged-test gate,
// the private MariaDB instance started by scripts/mariadb.sh, a private
// nats-server, loopback TCP pairs, the required-tool check, and Eventually,
// which polls until a condition holds or a timeout passes.
//
// It is for tests only and must not import any sqlwarden package.
package testutil
