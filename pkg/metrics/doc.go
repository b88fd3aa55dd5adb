// Package metrics exposes the daemon's Prometheus metrics on a private registry.
package metrics
