package k8s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/sqlwarden/sqlwarden/pkg/host"
)

// Pod annotations read by the watcher.
const (
	// AnnotationIntercept: "true" enrolls the pod's cgroup.
	AnnotationIntercept = "sqlwarden.io/intercept"
	// AnnotationPorts optionally lists the destination ports to redirect
	// ("3306,3307"); the redirect's defaults otherwise.
	AnnotationPorts = "sqlwarden.io/ports"
	// annotationPrefix marks the annotations handed to identity with the
	// labels (attribution keys such as sqlwarden.io/model).
	annotationPrefix = "sqlwarden.io/"
)

// Enroller redirects a cgroup's connections (redirect.Redirector implements
// it); paths are absolute directories in the cgroup v2 hierarchy.
type Enroller interface {
	Enroll(path string, ports []uint16) error
	Unenroll(path string) error
}

// Options configure a Watcher.
type Options struct {
	Client   kubernetes.Interface
	NodeName string   // required: only pods bound to this node are watched
	Enroller Enroller // required
	// CgroupMount is the cgroup v2 mount ("" detects it with statfs).
	CgroupMount string
	// CgroupPrefix is prepended to the kubelet's cgroup paths ("" or "/"
	// normally; the kubelet's own cgroup when it runs nested).
	CgroupPrefix string
	// CgroupDriver is the kubelet's driver: systemd, cgroupfs or "" for
	// whichever layout exists.
	CgroupDriver string
	// PollInterval is how often pods waiting for their cgroup are checked
	// (default 50ms).
	PollInterval time.Duration
	// Resync re-lists pods from the informer's cache (default 10m).
	Resync time.Duration
	Log    *slog.Logger
}

// Pod is what the watcher keeps of a pod on this node.
type Pod struct {
	UID         string
	Namespace   string
	Name        string
	Labels      map[string]string
	Annotations map[string]string // only sqlwarden.io/* annotations
	QOS         corev1.PodQOSClass
	Intercept   bool
	Cgroup      string // absolute pod cgroup directory once enrolled
	EnrolledAt  time.Time
}

// Watcher watches the pods of one node, enrolls the pod-level cgroup of
// annotated pods as soon as the kubelet creates it (before their containers
// start: the kubelet makes the pod cgroup before the sandbox), unenrolls it
// when the pod ends or is deleted, and serves pod metadata to identity.
//
// Enrollment is by polling: the pod cgroup does not exist when the pod is
// scheduled, so a pod stays pending until its cgroup directory appears.
type Watcher struct {
	o      Options
	log    *slog.Logger
	mount  string
	synced atomic.Pointer[func() bool] // the informer's HasSynced, once Run has it

	mu    sync.RWMutex
	byUID map[string]*Pod
	byKey map[string]string // namespace/name → uid

	dirtyMu sync.Mutex
	dirty   map[string]*corev1.Pod // uid → latest object; nil = deleted
	kick    chan struct{}

	// owned by the run loop
	states map[string]*podState
}

type podState struct {
	uid      string
	key      string
	want     bool
	paths    []string
	ports    []uint16
	enrolled string
	cgroupID uint64
	since    time.Time
	warned   bool
}

// New validates the options; Run starts watching.
func New(o Options) (*Watcher, error) {
	if o.Client == nil {
		return nil, errors.New("new pod watcher: no kubernetes client")
	}
	if o.NodeName == "" {
		return nil, errors.New("new pod watcher: node name is empty")
	}
	if o.Enroller == nil {
		return nil, errors.New("new pod watcher: no enroller")
	}
	switch o.CgroupDriver {
	case "", DriverSystemd, DriverCgroupfs:
	default:
		return nil, fmt.Errorf("new pod watcher: cgroup driver %q: want systemd, cgroupfs or empty", o.CgroupDriver)
	}
	if o.CgroupMount == "" {
		m, err := host.CgroupV2Mount()
		if err != nil {
			return nil, fmt.Errorf("new pod watcher: %w", err)
		}
		o.CgroupMount = m
	} else if !host.IsCgroup2(o.CgroupMount) {
		return nil, fmt.Errorf("new pod watcher: %s is not a cgroup v2 mount", o.CgroupMount)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 50 * time.Millisecond
	}
	if o.Resync <= 0 {
		o.Resync = 10 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{
		o: o, log: o.Log, mount: o.CgroupMount,
		byUID: map[string]*Pod{}, byKey: map[string]string{},
		dirty: map[string]*corev1.Pod{}, kick: make(chan struct{}, 1),
		states: map[string]*podState{},
	}, nil
}

// Run watches pods until ctx ends. Enrollments are left in place at exit:
// the pinned redirect keeps them fail-closed while the daemon is down, and
// the next Run re-enrolls (idempotently) what is still there.
func (w *Watcher) Run(ctx context.Context) error {
	node := w.o.NodeName
	factory := informers.NewSharedInformerFactoryWithOptions(w.o.Client, w.o.Resync,
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
		}))
	inf := factory.Core().V1().Pods().Informer()
	if err := inf.SetTransform(func(obj any) (any, error) {
		if p, ok := obj.(*corev1.Pod); ok {
			p.ManagedFields = nil // the informer cache needn't hold them
		}
		return obj, nil
	}); err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.observe(obj, false) },
		UpdateFunc: func(_, obj any) { w.observe(obj, false) },
		DeleteFunc: func(obj any) { w.observe(obj, true) },
	})
	if err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	hasSynced := inf.HasSynced
	w.synced.Store(&hasSynced)
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	w.log.Info("watching pods", "node", node, "cgroup_mount", w.mount, "driver", orAny(w.o.CgroupDriver))
	w.loop(ctx)
	return nil
}

// Synced reports whether the initial pod list has been received.
func (w *Watcher) Synced() bool {
	f := w.synced.Load()
	return f != nil && (*f)()
}

func (w *Watcher) observe(obj any, deleted bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = t.Obj, true
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.NodeName != w.o.NodeName {
		return
	}
	uid := string(pod.UID)
	w.mu.Lock()
	key := pod.Namespace + "/" + pod.Name
	if deleted {
		delete(w.byUID, uid)
		if w.byKey[key] == uid {
			delete(w.byKey, key)
		}
	} else {
		p := &Pod{UID: uid, Namespace: pod.Namespace, Name: pod.Name, Labels: maps.Clone(pod.Labels),
			Annotations: map[string]string{}, QOS: QOSClass(pod), Intercept: wantsIntercept(pod)}
		for k, v := range pod.Annotations {
			if strings.HasPrefix(k, annotationPrefix) {
				p.Annotations[k] = v
			}
		}
		if old := w.byUID[uid]; old != nil {
			p.Cgroup, p.EnrolledAt = old.Cgroup, old.EnrolledAt
		}
		w.byUID[uid] = p
		w.byKey[key] = uid
	}
	w.mu.Unlock()

	w.dirtyMu.Lock()
	if deleted {
		w.dirty[uid] = nil
	} else {
		w.dirty[uid] = pod
	}
	w.dirtyMu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func wantsIntercept(pod *corev1.Pod) bool {
	return strings.EqualFold(strings.TrimSpace(pod.Annotations[AnnotationIntercept]), "true")
}

func terminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

func (w *Watcher) loop(ctx context.Context) {
	tick := time.NewTicker(w.o.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-tick.C:
			if !w.anyPending() {
				continue
			}
		}
		w.dirtyMu.Lock()
		dirty := w.dirty
		w.dirty = map[string]*corev1.Pod{}
		w.dirtyMu.Unlock()
		for uid, pod := range dirty {
			w.update(uid, pod)
		}
		for _, st := range w.states {
			w.reconcile(st)
		}
		for uid, st := range w.states {
			if !st.want && st.enrolled == "" {
				delete(w.states, uid)
			}
		}
	}
}

func (w *Watcher) anyPending() bool {
	for _, st := range w.states {
		if st.want && st.enrolled == "" {
			return true
		}
	}
	return false
}

// update records the latest desired state of a pod (pod nil: deleted).
func (w *Watcher) update(uid string, pod *corev1.Pod) {
	st := w.states[uid]
	if pod == nil {
		if st != nil {
			st.want = false
		}
		return
	}
	// A terminating pod's containers run until their grace period ends, so
	// it stays enrolled until it is terminal or deleted.
	want := wantsIntercept(pod) && !terminal(pod)
	if st == nil {
		if !want {
			return
		}
		st = &podState{uid: uid, since: time.Now()}
		w.states[uid] = st
	}
	st.key = pod.Namespace + "/" + pod.Name
	st.want = want
	st.paths = PodCgroupPaths(w.o.CgroupPrefix, w.o.CgroupDriver, uid, QOSClass(pod))
	ports, err := parsePorts(pod.Annotations[AnnotationPorts])
	if err != nil {
		w.log.Warn("pod ports annotation ignored", "pod", st.key, "err", err)
	}
	st.ports = ports
}

func (w *Watcher) reconcile(st *podState) {
	switch {
	case st.want && st.enrolled == "":
		dir := findPodCgroup(w.mount, st.paths)
		if dir == "" {
			if !st.warned && time.Since(st.since) > time.Minute {
				st.warned = true
				w.log.Warn("pod cgroup not found yet", "pod", st.key, "uid", st.uid, "candidates", st.paths)
			}
			return
		}
		if err := w.o.Enroller.Enroll(dir, st.ports); err != nil {
			w.log.Error("enroll pod cgroup", "pod", st.key, "cgroup", dir, "err", err)
			return // retried at the next poll
		}
		st.enrolled, st.cgroupID = dir, cgroupID(dir)
		w.log.Info("pod enrolled", "pod", st.key, "uid", st.uid, "cgroup", dir, "after", time.Since(st.since).Round(time.Millisecond))
		w.mu.Lock()
		if p := w.byUID[st.uid]; p != nil {
			p.Cgroup, p.EnrolledAt = dir, time.Now()
		}
		w.mu.Unlock()
	case !st.want && st.enrolled != "":
		err := w.o.Enroller.Unenroll(st.enrolled)
		if err != nil && errors.Is(err, os.ErrNotExist) {
			err = w.unenrollGone(st)
		}
		if err != nil {
			w.log.Warn("unenroll pod cgroup", "pod", st.key, "cgroup", st.enrolled, "err", err)
		} else {
			w.log.Info("pod unenrolled", "pod", st.key, "uid", st.uid, "cgroup", st.enrolled)
		}
		st.enrolled = "" // a cgroup that is gone cannot be retried by path
		w.mu.Lock()
		if p := w.byUID[st.uid]; p != nil {
			p.Cgroup = ""
		}
		w.mu.Unlock()
	}
}

// IDUnenroller is optionally implemented by an Enroller that can drop an
// enrollment whose cgroup directory is already gone (the kubelet removes a
// pod's cgroup before the API server's delete reaches the watcher).
type IDUnenroller interface {
	UnenrollID(cgroupID uint64) error
}

func (w *Watcher) unenrollGone(st *podState) error {
	if u, ok := w.o.Enroller.(IDUnenroller); ok && st.cgroupID != 0 {
		return u.UnenrollID(st.cgroupID)
	}
	// cgroup v2 ids are not reused, so the stale entry can never match a
	// new cgroup; it only takes a map slot.
	w.log.Debug("pod cgroup already gone; enrollment entry left stale", "pod", st.key, "cgroup_id", st.cgroupID)
	return nil
}

// cgroupID is the id of the cgroup at dir, 0 if it cannot be read.
func cgroupID(dir string) uint64 {
	id, err := host.CgroupID(dir)
	if err != nil {
		return 0
	}
	return id
}

func parsePorts(s string) ([]uint16, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []uint16
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("parse ports %q: bad port %q", s, f)
		}
		out = append(out, uint16(n))
	}
	return out, nil
}

func orAny(s string) string {
	if s == "" {
		return "any"
	}
	return s
}

// PodByUID returns what is known of a pod on this node.
func (w *Watcher) PodByUID(uid string) (Pod, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	p, ok := w.byUID[uid]
	if !ok {
		return Pod{}, false
	}
	return p.copy(), true
}

// Pods lists the pods on this node that are known, enrolled or not.
func (w *Watcher) Pods() []Pod {
	w.mu.RLock()
	defer w.mu.RUnlock()
	out := make([]Pod, 0, len(w.byUID))
	for _, p := range w.byUID {
		out = append(out, p.copy())
	}
	return out
}

func (p *Pod) copy() Pod {
	c := *p
	c.Labels = maps.Clone(p.Labels)
	c.Annotations = maps.Clone(p.Annotations)
	return c
}

// ErrPodNotFound is returned for a pod the watcher does not know.
var ErrPodNotFound = errors.New("pod not found on this node")

// PodLabels returns a pod's labels together with its sqlwarden.io/*
// annotations (under their own keys), for identity attribution; it
// implements identity.PodMetadata.
func (w *Watcher) PodLabels(_ context.Context, namespace, name string) (map[string]string, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	uid, ok := w.byKey[namespace+"/"+name]
	if !ok {
		return nil, fmt.Errorf("pod labels %s/%s: %w", namespace, name, ErrPodNotFound)
	}
	p := w.byUID[uid]
	out := make(map[string]string, len(p.Labels)+len(p.Annotations))
	maps.Copy(out, p.Labels)
	maps.Copy(out, p.Annotations)
	return out, nil
}
