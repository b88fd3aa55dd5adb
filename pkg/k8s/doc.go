// Package k8s enrolls the pod-level cgroups of annotated pods on this node for redirection and keeps their metadata for identity.
//
// It imports pkg/host (cgroup v2 and /proc) and must not import any other
// sqlwarden package; identity and the daemon import it.
package k8s
