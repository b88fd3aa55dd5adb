// Package identity binds a connecting workload to a verified identity (an
// OIDC token read from the workload's own filesystem, or an explicit
// per-cgroup binding) and maps it to a backend. It also authenticates
// explicit (non-redirected) clients: a password only sqlwarden knows, over
// the wire exchange (caching_sha2 with its cache of verified clients), or a
// token presented as the password over TLS.
//
// It must not import the proxy, policy, masking or the journal engine
// (audit): the proxy reaches it through the daemon's composition root, and
// it takes the record vocabulary from package record.
package identity
