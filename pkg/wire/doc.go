// Package wire speaks the MySQL wire protocol on the proxy's two legs, and is
// the one place its bytes are decoded:
//
//   - framing (packet.go) and the server and client sides of the handshake
//     (handshake.go, client.go);
//   - client commands (command.go: the Command view, statement ids, KILL,
//     long data, FIELD_LIST; params.go: COM_STMT_EXECUTE and its parameters);
//   - the reply tracker that classifies each backend packet without holding a
//     result set (reply.go), and OK, ERR and EOF packets (packets.go);
//   - length-encoded integers and strings (lenenc.go): no other package
//     decodes them;
//   - column definitions, one Column type (column.go);
//   - binary-protocol values (value.go), one decoder for EXECUTE parameters
//     and binary rows, with their text forms.
//
// Constants (commands, capability and status flags, auth plugin names) come
// from github.com/go-mysql-org/go-mysql/mysql; this package adds what a proxy
// needs that a client or server library does not: bounds-checked zero-copy
// decoding on a buffered reader, a server handshake whose authentication
// decision is made by the caller (the workload's identity, not the DSN
// password), and a reply tracker that streams.
//
// It must not import any other sqlwarden package: the proxy, the masker and
// the row rewriter (wire/rows) build on it, never the other way round.
package wire
