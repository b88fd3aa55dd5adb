// Package audit writes, chains, signs, verifies, reads and ships the
// tamper-evident statement journal: the write-ahead journal and its segments,
// the hash chain and signed checkpoints, verify, search, follow (tail), and
// the sinks that ship the journal.
//
// The records it writes are defined in package record, which it imports;
// packages that only build or read records import record, not audit. audit
// must not import the proxy, policy, identity or masking packages: it knows
// records, not how they were decided.
package audit
