// Package k8s enrolls the pod-level cgroups of annotated pods on this node for redirection and keeps their metadata for identity.
package k8s
