// Package proxytest runs the proxy's statement pipeline in-process: Backend
// is a fake MySQL server that logs anyone in and answers commands from
// canned replies, Listener connects clients and the proxy over net.Pipe,
// and Client logs in through the proxy with go-mysql's client and then
// sends commands on the raw connection without allocating.
//
// It is for unit tests and benchmarks of package proxy and of the daemon's
// wiring. Over net.Pipe no byte crosses the kernel: a benchmark measures
// what the proxy does per statement (framing, classification, policy, the
// journal, relaying, masking) and the goroutine hand-offs between the three
// parties, not loopback TCP. Backend also serves a real net.Listener, for
// comparing the two.
//
// Backend speaks only what the proxy's backend leg needs: the v10 greeting
// with mysql_native_password (any password is accepted), the login's
// SELECT @@session.sql_mode, @@session.character_set_client, SET, COM_QUERY,
// COM_INIT_DB, COM_PING, COM_STMT_PREPARE / EXECUTE / CLOSE / RESET and
// COM_QUIT. A text it has no reply for gets an OK, or what Default says.
//
// proxytest must not import the daemon's packages (policy, masking, audit's
// journal): tests bring their own implementations of the proxy's interfaces.
package proxytest
