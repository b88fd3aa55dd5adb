package k8s

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestPodCgroupPaths(t *testing.T) {
	const uid = "0f1e2d3c-aaaa-bbbb-cccc-000000000001"
	const u = "0f1e2d3c_aaaa_bbbb_cccc_000000000001"
	for _, tc := range []struct {
		prefix, driver string
		qos            corev1.PodQOSClass
		want           []string
	}{
		{"", DriverSystemd, corev1.PodQOSBurstable, []string{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + u + ".slice"}},
		{"/", DriverSystemd, corev1.PodQOSBestEffort, []string{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + u + ".slice"}},
		{"", DriverSystemd, corev1.PodQOSGuaranteed, []string{"/kubepods.slice/kubepods-pod" + u + ".slice"}},
		{"", DriverCgroupfs, corev1.PodQOSBurstable, []string{"/kubepods/burstable/pod" + uid}},
		{"", DriverCgroupfs, corev1.PodQOSBestEffort, []string{"/kubepods/besteffort/pod" + uid}},
		{"", DriverCgroupfs, corev1.PodQOSGuaranteed, []string{"/kubepods/pod" + uid}},
		{"/system.slice/docker-abc.scope", "", corev1.PodQOSGuaranteed, []string{
			"/system.slice/docker-abc.scope/kubepods.slice/kubepods-pod" + u + ".slice",
			"/system.slice/docker-abc.scope/kubepods/pod" + uid,
		}},
	} {
		if got := PodCgroupPaths(tc.prefix, tc.driver, uid, tc.qos); !slices.Equal(got, tc.want) {
			t.Errorf("PodCgroupPaths(%q, %q, %s) = %v, want %v", tc.prefix, tc.driver, tc.qos, got, tc.want)
		}
	}
}

func TestQOSClass(t *testing.T) {
	rl := func(kv ...string) corev1.ResourceList {
		l := corev1.ResourceList{}
		for i := 0; i < len(kv); i += 2 {
			l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
		}
		return l
	}
	pod := func(cs ...corev1.ResourceRequirements) *corev1.Pod {
		p := &corev1.Pod{}
		for _, r := range cs {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Resources: r})
		}
		return p
	}
	for name, tc := range map[string]struct {
		pod  *corev1.Pod
		want corev1.PodQOSClass
	}{
		"no resources": {pod(corev1.ResourceRequirements{}), corev1.PodQOSBestEffort},
		"limits only (requests default to limits)": {
			pod(corev1.ResourceRequirements{Limits: rl("cpu", "1", "memory", "1Gi")}), corev1.PodQOSGuaranteed},
		"requests equal limits": {
			pod(corev1.ResourceRequirements{Requests: rl("cpu", "500m", "memory", "1Gi"), Limits: rl("cpu", "0.5", "memory", "1Gi")}), corev1.PodQOSGuaranteed},
		"requests below limits": {
			pod(corev1.ResourceRequirements{Requests: rl("cpu", "100m"), Limits: rl("cpu", "1", "memory", "1Gi")}), corev1.PodQOSBurstable},
		"one container without limits": {
			pod(corev1.ResourceRequirements{Limits: rl("cpu", "1", "memory", "1Gi")}, corev1.ResourceRequirements{}), corev1.PodQOSBurstable},
		"status wins": {
			&corev1.Pod{Status: corev1.PodStatus{QOSClass: corev1.PodQOSGuaranteed}}, corev1.PodQOSGuaranteed},
	} {
		if got := QOSClass(tc.pod); got != tc.want {
			t.Errorf("%s: QOSClass = %s, want %s", name, got, tc.want)
		}
	}
}

func TestParsePorts(t *testing.T) {
	if p, err := parsePorts(" 3306, 3307 "); err != nil || !slices.Equal(p, []uint16{3306, 3307}) {
		t.Errorf("parsePorts = %v, %v", p, err)
	}
	for _, bad := range []string{"0", "x", "70000", "3306,"} {
		if _, err := parsePorts(bad); err == nil {
			t.Errorf("parsePorts(%q) succeeded", bad)
		}
	}
}
