// Package wire speaks the MySQL wire protocol on the proxy's two legs:
// framing, the server side of the handshake, command decoding and the reply
// state machine that lets the proxy stream results packet by packet.
//
// Constants (commands, capability and status flags, auth plugin names) come
// from github.com/go-mysql-org/go-mysql/mysql; this package adds what a proxy
// needs that a client or server library does not: zero-copy packet access on a
// buffered reader, a server handshake whose authentication decision is made by
// the caller (the workload's identity, not the DSN password), and a reply
// tracker that classifies each backend packet without holding a result set.
package wire
