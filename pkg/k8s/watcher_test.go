package k8s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/host"
)

// recorder is an Enroller that records calls and, like the redirect,
// refuses paths that are not cgroup directories.
type recorder struct {
	mu       sync.Mutex
	enrolled map[string][]uint16
	calls    []string
}

func newRecorder() *recorder { return &recorder{enrolled: map[string][]uint16{}} }

func (r *recorder) Enroll(path string, ports []uint16) error {
	if !host.IsCgroup2(path) {
		return fmt.Errorf("enroll %s: %w", path, os.ErrNotExist)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.enrolled[path] = ports
	r.calls = append(r.calls, "enroll "+path)
	return nil
}

func (r *recorder) Unenroll(path string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "unenroll "+path)
	delete(r.enrolled, path)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("unenroll %s: %w", path, err)
	}
	return nil
}

func (r *recorder) ports(path string) ([]uint16, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.enrolled[path]
	return p, ok
}

// testTree is a kubepods-like hierarchy under a test-only cgroup.
type testTree struct {
	t      *testing.T
	mount  string
	prefix string // hierarchy path of the test cgroup
	dirs   []string
}

func newTestTree(t *testing.T) *testTree {
	testutil.RequirePrivileged(t)
	mount, err := host.CgroupV2Mount()
	if err != nil {
		testutil.PrivilegedUnavailable(t, "%v", err)
	}
	tr := &testTree{t: t, mount: mount, prefix: fmt.Sprintf("/sqlwarden-test-%d-%d", os.Getpid(), rand.IntN(1<<30))}
	tr.mkdir(tr.prefix)
	t.Cleanup(func() {
		for i := len(tr.dirs) - 1; i >= 0; i-- {
			if err := os.Remove(tr.dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Logf("remove cgroup %s: %v", tr.dirs[i], err)
			}
		}
	})
	return tr
}

// mkdir creates a cgroup (and its missing parents) at a hierarchy path and
// returns its absolute directory.
func (tr *testTree) mkdir(hpath string) string {
	tr.t.Helper()
	dir := tr.mount
	for _, part := range strings.Split(strings.Trim(hpath, "/"), "/") {
		dir = filepath.Join(dir, part)
		if err := os.Mkdir(dir, 0o755); err == nil {
			tr.dirs = append(tr.dirs, dir)
		} else if !errors.Is(err, os.ErrExist) {
			tr.t.Fatal(err)
		}
	}
	return dir
}

func (tr *testTree) rmdir(dir string) {
	tr.t.Helper()
	if err := os.Remove(dir); err != nil {
		tr.t.Fatal(err)
	}
}

func testPod(uid, name, node string, annotations map[string]string, qos corev1.PodQOSClass) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "agents", UID: types.UID(uid),
			Labels: map[string]string{"app": name}, Annotations: annotations},
		Spec:   corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "x"}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, QOSClass: qos},
	}
}

func startWatcher(t *testing.T, tr *testTree, driver string, objs ...*corev1.Pod) (*Watcher, *fake.Clientset, *recorder) {
	t.Helper()
	cs := fake.NewClientset()
	for _, p := range objs {
		if _, err := cs.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	rec := newRecorder()
	w, err := New(Options{Client: cs, NodeName: "node-a", Enroller: rec, CgroupMount: tr.mount,
		CgroupPrefix: tr.prefix, CgroupDriver: driver, PollInterval: 10 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testutil.Eventually(t, 5*time.Second, func() error {
		if !w.Synced() {
			return errors.New("informer not synced")
		}
		return nil
	})
	return w, cs, rec
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func never(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if cond() {
			t.Fatalf("unexpected: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A pod is scheduled before the kubelet makes its cgroup: it is enrolled as
// soon as the cgroup appears, with the ports of its annotation, and
// unenrolled when deleted.
func TestWatcherEnrollsWhenCgroupAppears(t *testing.T) {
	tr := newTestTree(t)
	const uid = "11111111-2222-3333-4444-555555555555"
	pod := testPod(uid, "agent", "node-a", map[string]string{AnnotationIntercept: "true", AnnotationPorts: "3306,3307",
		"sqlwarden.io/model": "claude", "kubectl.kubernetes.io/last-applied-configuration": "{}"}, corev1.PodQOSBurstable)
	w, cs, rec := startWatcher(t, tr, "", pod)

	hpath := tr.prefix + "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod11111111_2222_3333_4444_555555555555.slice"
	dir := filepath.Join(tr.mount, hpath)
	never(t, "enrolled before the cgroup exists", func() bool { _, ok := rec.ports(dir); return ok })
	p, ok := w.PodByUID(uid)
	if !ok || p.Cgroup != "" || !p.Intercept || p.QOS != corev1.PodQOSBurstable {
		t.Fatalf("PodByUID before enrollment = %+v, %v", p, ok)
	}

	// The kubelet creates the pod cgroup, then the container's below it.
	created := time.Now()
	tr.mkdir(hpath)
	testutil.Eventually(t, 5*time.Second, func() error {
		if _, ok := rec.ports(dir); !ok {
			return errors.New("not enrolled")
		}
		return nil
	})
	t.Logf("enrolled %v after the cgroup appeared", time.Since(created).Round(time.Millisecond))
	if ports, _ := rec.ports(dir); !slices.Equal(ports, []uint16{3306, 3307}) {
		t.Errorf("ports = %v, want [3306 3307]", ports)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if p, _ := w.PodByUID(uid); p.Cgroup != dir {
			return fmt.Errorf("pod cgroup %q not recorded (have %q)", dir, p.Cgroup)
		}
		return nil
	})

	labels, err := w.PodLabels(context.Background(), "agents", "agent")
	if err != nil {
		t.Fatal(err)
	}
	if labels["app"] != "agent" || labels["sqlwarden.io/model"] != "claude" || labels[AnnotationIntercept] != "true" {
		t.Errorf("PodLabels = %v", labels)
	}
	if _, ok := labels["kubectl.kubernetes.io/last-applied-configuration"]; ok {
		t.Errorf("PodLabels carries a foreign annotation: %v", labels)
	}
	if _, err := w.PodLabels(context.Background(), "agents", "nope"); !errors.Is(err, ErrPodNotFound) {
		t.Errorf("PodLabels of an unknown pod: %v", err)
	}

	if err := cs.CoreV1().Pods("agents").Delete(context.Background(), "agent", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if _, ok := rec.ports(dir); ok {
			return errors.New("not unenrolled")
		}
		return nil
	})
	testutil.Eventually(t, 5*time.Second, func() error {
		if _, ok := w.PodByUID(uid); ok {
			return errors.New("pod not forgotten")
		}
		return nil
	})
}

// Pods without the annotation, or on another node, are never enrolled; a
// Guaranteed pod under the cgroupfs layout is found; ending the pod or
// removing the annotation unenrolls it.
func TestWatcherSelection(t *testing.T) {
	tr := newTestTree(t)
	on := map[string]string{AnnotationIntercept: "true"}
	plain := testPod("aaaaaaaa-0000-0000-0000-000000000001", "plain", "node-a", nil, corev1.PodQOSBestEffort)
	other := testPod("aaaaaaaa-0000-0000-0000-000000000002", "elsewhere", "node-b", on, corev1.PodQOSBestEffort)
	guar := testPod("aaaaaaaa-0000-0000-0000-000000000003", "guaranteed", "node-a", on, corev1.PodQOSGuaranteed)
	job := testPod("aaaaaaaa-0000-0000-0000-000000000004", "job", "node-a", on, corev1.PodQOSBestEffort)
	plainDir := tr.mkdir(tr.prefix + "/kubepods/besteffort/pod" + string(plain.UID))
	otherDir := tr.mkdir(tr.prefix + "/kubepods/besteffort/pod" + string(other.UID))
	guarDir := tr.mkdir(tr.prefix + "/kubepods/pod" + string(guar.UID))
	jobDir := tr.mkdir(tr.prefix + "/kubepods/besteffort/pod" + string(job.UID))

	w, cs, rec := startWatcher(t, tr, DriverCgroupfs, plain, other, guar, job)
	testutil.Eventually(t, 5*time.Second, func() error {
		if _, ok := rec.ports(guarDir); !ok {
			return errors.New("guaranteed pod not enrolled")
		}
		return nil
	})
	testutil.Eventually(t, 5*time.Second, func() error {
		if _, ok := rec.ports(jobDir); !ok {
			return errors.New("job pod not enrolled")
		}
		return nil
	})
	never(t, "plain or other-node pod enrolled", func() bool {
		_, a := rec.ports(plainDir)
		_, b := rec.ports(otherDir)
		return a || b
	})
	if _, ok := w.PodByUID(string(other.UID)); ok {
		t.Error("the watcher keeps a pod of another node")
	}
	if _, ok := w.PodByUID(string(plain.UID)); !ok {
		t.Error("the watcher lacks the metadata of a pod it does not enroll")
	}

	// The job finishes: unenrolled while its cgroup still exists.
	job.Status.Phase = corev1.PodSucceeded
	if _, err := cs.CoreV1().Pods("agents").UpdateStatus(context.Background(), job, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if _, ok := rec.ports(jobDir); ok {
			return errors.New("finished pod not unenrolled")
		}
		return nil
	})

	// The annotation goes away: unenrolled.
	guar.Annotations = nil
	if _, err := cs.CoreV1().Pods("agents").Update(context.Background(), guar, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if _, ok := rec.ports(guarDir); ok {
			return errors.New("pod without annotation not unenrolled")
		}
		return nil
	})

	// The annotation is added to a running pod: enrolled.
	plain.Annotations = on
	if _, err := cs.CoreV1().Pods("agents").Update(context.Background(), plain, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if _, ok := rec.ports(plainDir); !ok {
			return errors.New("annotated pod not enrolled")
		}
		return nil
	})

	// The kubelet removed the cgroup before the delete arrived: no retry loop.
	tr.rmdir(plainDir)
	if err := cs.CoreV1().Pods("agents").Delete(context.Background(), "plain", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if _, ok := w.PodByUID(string(plain.UID)); ok {
			return errors.New("pod not forgotten")
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	rec.mu.Lock()
	n := 0
	for _, c := range rec.calls {
		if c == "unenroll "+plainDir {
			n++
		}
	}
	rec.mu.Unlock()
	if n != 1 {
		t.Errorf("unenroll of a vanished cgroup called %d times, want 1", n)
	}
}
