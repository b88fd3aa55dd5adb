package k8s

import (
	"os"
	"path"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Cgroup drivers of the kubelet (--cgroup-driver).
const (
	DriverSystemd  = "systemd"
	DriverCgroupfs = "cgroupfs"
)

// PodCgroupPaths returns where the kubelet puts a pod's cgroup, relative to
// the cgroup v2 root, for the given driver ("" means both, systemd first).
// prefix is prepended (the kubelet's own cgroup when it runs nested, as in
// kind, or "/"). The kubelet's --cgroup-root is assumed to be its default,
// "/". Layouts:
//
//	systemd:  /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid with _>.slice
//	          /kubepods.slice/kubepods-pod<uid with _>.slice            (Guaranteed)
//	cgroupfs: /kubepods/burstable/pod<uid>
//	          /kubepods/pod<uid>                                        (Guaranteed)
func PodCgroupPaths(prefix, driver, uid string, qos corev1.PodQOSClass) []string {
	prefix = path.Clean("/" + prefix)
	var out []string
	if driver == "" || driver == DriverSystemd {
		u := strings.ReplaceAll(uid, "-", "_")
		var p string
		switch qos {
		case corev1.PodQOSGuaranteed:
			p = "kubepods.slice/kubepods-pod" + u + ".slice"
		case corev1.PodQOSBestEffort:
			p = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + u + ".slice"
		default:
			p = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + u + ".slice"
		}
		out = append(out, path.Join(prefix, p))
	}
	if driver == "" || driver == DriverCgroupfs {
		var p string
		switch qos {
		case corev1.PodQOSGuaranteed:
			p = "kubepods/pod" + uid
		case corev1.PodQOSBestEffort:
			p = "kubepods/besteffort/pod" + uid
		default:
			p = "kubepods/burstable/pod" + uid
		}
		out = append(out, path.Join(prefix, p))
	}
	return out
}

// findPodCgroup returns the absolute directory of the pod's cgroup under
// mount, or "" if none of its candidate paths exists yet.
func findPodCgroup(mount string, candidates []string) string {
	for _, c := range candidates {
		dir := filepath.Join(mount, c)
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
	}
	return ""
}

// QOSClass returns the pod's QoS class: status.qosClass when the API server
// has set it, else computed from the containers' requests and limits as the
// kubelet does (cpu and memory only).
func QOSClass(pod *corev1.Pod) corev1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	containers := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	any, guaranteed := false, true
	for _, c := range containers {
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[res]
			lim, hasLim := c.Resources.Limits[res]
			if (hasReq && !req.IsZero()) || (hasLim && !lim.IsZero()) {
				any = true
			}
			if !hasLim || lim.IsZero() || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case !any:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	default:
		return corev1.PodQOSBurstable
	}
}
