// Package identity binds a connecting workload to a verified identity (an OIDC token read from the workload's own filesystem, or an explicit per-cgroup binding) and maps it to a backend.
package identity
