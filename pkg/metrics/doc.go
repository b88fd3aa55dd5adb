// Package metrics exposes the daemon's Prometheus metrics on a private registry.
//
// It imports pkg/record and pkg/audit (the journal's counters) and must not
// import the proxy, policy, identity or masking: they report through the
// observer interfaces the daemon wires.
package metrics
