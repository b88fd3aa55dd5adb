// Package sink holds the destinations the journal ships to — NATS
// JetStream, an HTTP webhook, syslog over TCP or TLS — and reads the NATS
// stream back for `sqlwarden audit tail|search|verify --nats`.
//
// The journal (package audit) owns what every sink shares: the
// `audit.sinks` configuration, the durable cursor, following the segments,
// backoff and counters; it reaches a destination only through audit.Sink,
// made by Open (audit.Config.OpenSink). That keeps the NATS client out of
// every package that imports audit or record. This package may import audit,
// record and the destinations' client libraries; audit, record and the
// proxy must not import it (only the daemon's composition root and the CLI
// do).
package sink
