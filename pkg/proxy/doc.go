// Package proxy accepts client connections, binds each to a verified workload
// identity, and runs the statement pipeline (classify → policy → write-ahead
// audit → forward → stream and mask the reply → audit outcome) on one
// goroutine per connection.
//
// The per-connection loop is synchronous on purpose: one command is read,
// decided, journaled and forwarded, and its reply is streamed back through a
// buffered writer flushed once per reply (or whenever the buffer fills, so a
// large result never sits in memory). Measured on the project's machines, this
// shape matches an L4 relay in C on throughput, where a goroutine per
// direction does not (README, "Design notes": the figures).
//
// A session (session.go) holds the connection: both legs, the identity, the
// prepared statements, limits and the backend session's state. Each command
// that carries a statement runs as a stmtLife (lifecycle.go), which owns its
// journal records, its refusal or forwarding, and its outcome, with one
// policy for a journal that fails (refused with ERR 1180 before anything is
// forwarded; outcomes written asynchronously after the reply). Handlers
// return a reply saying what the client was written, so a command the
// server never answers (COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA, COM_QUIT)
// is never sent a stray ERR.
//
// It imports the vocabulary (pkg/record, pkg/statement), the codec
// (pkg/wire, pkg/wire/rows), pkg/sqltext, pkg/credscrub and pkg/host, and must
// not import pkg/policy, pkg/masking, pkg/identity, pkg/audit, pkg/approval or
// redirect: it declares the small interfaces it needs (deps.go) and
// internal/daemon wires the implementations.
package proxy
