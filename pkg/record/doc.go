// Package record is the vocabulary of the journal: the shape of one journal
// line (Record, its event names, outcome statuses and approval modes) and
// the parts a record is made of — the session's Identity, Pod, Workload,
// Client and backend, a statement's Params, Classification and Attribution,
// an outcome's ErrorInfo, Masked columns, policy Decision (with its typed
// Action, which the policy and the proxy use too) and LimitHit, approval and
// checkpoint bodies — plus how two outcome fields are computed: RowDigest
// (result_digest) and the retained result rows (Results, ResultCollector).
//
// It is named record, not event, because every type here is a record or a
// part of one, and because "event" is already a record's field and a common
// local name in the packages that use these types.
//
// The proxy, identity, policy and masking packages build records and the
// audit package writes, chains and reads them; this package is what they
// share. It must import only the standard library: importing a record type
// must not pull in the journal engine, its sinks (NATS, HTTP, syslog) or any
// other sqlwarden package. The JSON field names are the journal's format,
// which `sqlwarden audit verify` and the users' scripts read: they do not
// change.
package record
