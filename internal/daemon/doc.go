// Package daemon is the composition root: it builds the running daemon
// from the configuration, owns start-up order and shutdown, and connects
// the packages to the small interfaces the proxy declares (so the proxy
// never imports policy, masking or identity).
//
// Start-up order (New): metrics, the audit journal (nothing is served
// without one), policy, identities, backends and TLS, then the optional
// parts — redirect, pod watcher, masking, approvals — the proxy and its
// listeners. Run serves until its context ends, then drains; Close undoes
// New in reverse. Every part is a field of Daemon, handed on explicitly in
// that order: there are no package globals.
//
// Nothing imports this package but cmd/sqlwarden; it must not import
// cmd/... or test/..., and the packages under pkg/ and redirect/ must never
// import it.
package daemon
