// Package audit writes, chains, signs, verifies, reads and ships the
// tamper-evident statement journal: the write-ahead journal and its segments,
// the hash chain and signed checkpoints, verify, search, follow (tail), and
// the shippers that feed the sinks from durable cursors.
//
// The records it writes are defined in package record, which it imports;
// packages that only build or read records import record, not audit. The
// sinks' transports (NATS, webhook, syslog) live in package sink and are
// handed in as Config.OpenSink, so audit does not import the NATS client.
// audit must not import sink, nor the proxy, policy, identity or masking
// packages: it knows records, not how they were decided.
package audit
