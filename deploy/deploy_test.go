// Tests that the deployment files are what the daemon needs: every manifest
// parses into its Kubernetes type, the DaemonSet has the mounts, host
// namespaces and exactly the capabilities the daemon uses, the ConfigMap's
// config and policy load with the daemon's own parsers, the dashboard only
// charts metrics the daemon exports, the fleet overlay (deploy/kubernetes-fleet)
// adds NATS and nothing else, and the systemd unit runs the daemon.
package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/pkg/config"
	"github.com/sqlwarden/sqlwarden/pkg/identity"
	"github.com/sqlwarden/sqlwarden/pkg/metrics"
	"github.com/sqlwarden/sqlwarden/pkg/policy"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
)

// doc is one YAML document of a manifest file.
type doc struct {
	file string
	kind string
	name string
	raw  []byte
}

// manifests reads every document of every YAML file under dirs.
func manifests(t *testing.T, dirs ...string) []doc {
	t.Helper()
	var out []doc
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no manifests in %s (%v)", dir, err)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dec := yaml.NewDecoder(bytes.NewReader(data))
			for i := 0; ; i++ {
				var n yaml.Node
				if err := dec.Decode(&n); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatalf("%s document %d: %v", f, i, err)
				}
				var meta struct {
					APIVersion string `yaml:"apiVersion"`
					Kind       string `yaml:"kind"`
					Metadata   struct {
						Name string `yaml:"name"`
					} `yaml:"metadata"`
				}
				if err := n.Decode(&meta); err != nil {
					t.Fatalf("%s document %d: %v", f, i, err)
				}
				raw, err := yaml.Marshal(&n)
				if err != nil {
					t.Fatal(err)
				}
				if meta.Kind == "Kustomization" {
					continue
				}
				if meta.APIVersion == "" || meta.Kind == "" || meta.Metadata.Name == "" {
					t.Errorf("%s document %d: apiVersion, kind and metadata.name are required", f, i)
				}
				out = append(out, doc{file: f, kind: meta.Kind, name: meta.Metadata.Name, raw: raw})
			}
		}
	}
	return out
}

// strict decodes a manifest into its typed API object; unknown fields (a
// typo, a misplaced key) fail the test.
func strict(t *testing.T, d doc, into any) {
	t.Helper()
	if err := sigsyaml.UnmarshalStrict(d.raw, into); err != nil {
		t.Fatalf("%s %s/%s: %v", filepath.Base(d.file), d.kind, d.name, err)
	}
}

func find(t *testing.T, docs []doc, kind string) []doc {
	t.Helper()
	var out []doc
	for _, d := range docs {
		if d.kind == kind {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s manifest", kind)
	}
	return out
}

type deployment struct {
	docs    []doc
	ds      appsv1.DaemonSet
	cm      corev1.ConfigMap
	secret  corev1.Secret
	cfg     *config.Config
	main    corev1.Container
	volumes map[string]corev1.Volume
}

func load(t *testing.T) *deployment {
	t.Helper()
	d := &deployment{docs: manifests(t, "kubernetes", "examples"), volumes: map[string]corev1.Volume{}}
	for _, m := range d.docs {
		var obj any
		switch m.kind {
		case "DaemonSet":
			obj = &d.ds
		case "ConfigMap":
			obj = &d.cm
		case "Secret":
			obj = &d.secret
		case "ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "Service":
			obj = &corev1.Service{}
		case "Namespace":
			obj = &corev1.Namespace{}
		case "Pod":
			obj = &corev1.Pod{}
		case "ClusterRole":
			obj = &rbacv1.ClusterRole{}
		case "ClusterRoleBinding":
			obj = &rbacv1.ClusterRoleBinding{}
		case "ServiceMonitor":
			continue // a CRD; checked by TestServiceMonitor
		default:
			t.Errorf("%s: unexpected kind %s", m.file, m.kind)
			continue
		}
		strict(t, m, obj)
	}
	spec := d.ds.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("DaemonSet has %d containers, want 1", len(spec.Containers))
	}
	d.main = spec.Containers[0]
	for _, v := range spec.Volumes {
		d.volumes[v.Name] = v
	}
	cfg, err := config.Parse([]byte(d.cm.Data["config.yaml"]))
	if err != nil {
		t.Fatalf("ConfigMap config.yaml: %v", err)
	}
	d.cfg = cfg
	return d
}

// mountOf returns the container's mount at path and its volume.
func (d *deployment) mountOf(t *testing.T, c corev1.Container, mountPath string) (corev1.VolumeMount, corev1.Volume) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath == mountPath {
			return m, d.volumes[m.Name]
		}
	}
	t.Fatalf("container %s mounts nothing at %s", c.Name, mountPath)
	return corev1.VolumeMount{}, corev1.Volume{}
}

// fileVolume returns which mount of the main container a file path lies in.
func (d *deployment) fileVolume(t *testing.T, file string) (corev1.VolumeMount, corev1.Volume, string) {
	t.Helper()
	var best corev1.VolumeMount
	for _, m := range d.main.VolumeMounts {
		if strings.HasPrefix(file, m.MountPath+"/") && len(m.MountPath) > len(best.MountPath) {
			best = m
		}
	}
	if best.Name == "" {
		t.Fatalf("%s is on no volume of the DaemonSet", file)
	}
	return best, d.volumes[best.Name], strings.TrimPrefix(file, best.MountPath+"/")
}

func TestDaemonSet(t *testing.T) {
	d := load(t)
	spec := d.ds.Spec.Template.Spec
	if !spec.HostPID {
		t.Error("hostPID must be true: workload tokens are read through /proc/<host pid>/root")
	}
	if !spec.HostNetwork {
		t.Error("hostNetwork must be true: the node address and listener live in the node's network namespace")
	}
	if d.ds.Spec.Selector == nil || d.ds.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != d.ds.Spec.Template.Labels["app.kubernetes.io/name"] {
		t.Error("selector does not match the pod template's labels")
	}

	sc := d.main.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("the daemon container has no securityContext.capabilities")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("the daemon container must not be privileged")
	}
	var add []string
	for _, c := range sc.Capabilities.Add {
		add = append(add, string(c))
	}
	slices.Sort(add)
	if want := []string{"BPF", "NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"}; !slices.Equal(add, want) {
		t.Errorf("capabilities add = %v, want exactly %v", add, want)
	}
	if len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("capabilities drop = %v, want [ALL]", sc.Capabilities.Drop)
	}
	checkCapabilityComments(t, filepath.Join("kubernetes", "daemonset.yaml"))

	// cgroup v2: the host's hierarchy where the daemon runs it.
	m, v := d.mountOf(t, d.main, "/sys/fs/cgroup")
	if v.HostPath == nil || v.HostPath.Path != "/sys/fs/cgroup" {
		t.Errorf("/sys/fs/cgroup is not the host's (volume %+v)", v.VolumeSource)
	}
	if m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationHostToContainer {
		t.Error("/sys/fs/cgroup needs HostToContainer propagation (hybrid hosts mount cgroup2 below it)")
	}
	// bpffs: the host's, so pins outlive the container.
	m, v = d.mountOf(t, d.main, "/sys/fs/bpf")
	if v.HostPath == nil || v.HostPath.Path != "/sys/fs/bpf" {
		t.Errorf("/sys/fs/bpf is not the host's (volume %+v)", v.VolumeSource)
	}
	if m.MountPropagation == nil || *m.MountPropagation == corev1.MountPropagationNone {
		t.Error("/sys/fs/bpf needs mount propagation")
	}
	if m.ReadOnly {
		t.Error("/sys/fs/bpf must be writable (pins)")
	}
	// Bidirectional propagation is only allowed in a privileged container:
	// the init container that mounts bpffs on the host, never the daemon.
	for _, c := range spec.InitContainers {
		for _, im := range c.VolumeMounts {
			if im.MountPropagation != nil && *im.MountPropagation == corev1.MountPropagationBidirectional {
				if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
					t.Errorf("init container %s: Bidirectional propagation needs privileged", c.Name)
				}
				if im.MountPath != "/sys/fs/bpf" {
					t.Errorf("init container %s: Bidirectional mount at %s", c.Name, im.MountPath)
				}
			}
		}
	}
	for _, vm := range d.main.VolumeMounts {
		if vm.MountPropagation != nil && *vm.MountPropagation == corev1.MountPropagationBidirectional {
			t.Errorf("the daemon container mounts %s Bidirectional: Kubernetes refuses it without privileged", vm.MountPath)
		}
	}

	// The node name for the pod watcher's field selector.
	var nodeEnv bool
	for _, e := range d.main.Env {
		if e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
			nodeEnv = true
		}
	}
	if !nodeEnv {
		t.Error("NODE_NAME is not set from spec.nodeName")
	}

	// run --config FILE, with FILE the ConfigMap's config.yaml.
	args := append(append([]string{}, d.main.Command...), d.main.Args...)
	i := slices.Index(args, "--config")
	if len(args) == 0 || args[0] != "run" || i < 0 || i+1 >= len(args) {
		t.Fatalf("container args %v: want run --config FILE", args)
	}
	_, cv, key := d.fileVolume(t, args[i+1])
	if cv.ConfigMap == nil || cv.ConfigMap.Name != d.cm.Name || key != "config.yaml" {
		t.Errorf("--config %s is not the ConfigMap's config.yaml", args[i+1])
	}

	// The admin port: probes and the ServiceMonitor reach what admin_listen binds.
	_, port, err := net.SplitHostPort(d.cfg.AdminListen)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, p := range d.main.Ports {
		if p.Name == "admin" && p.ContainerPort > 0 && port == strconv.Itoa(int(p.ContainerPort)) {
			found = true
		}
	}
	if !found {
		t.Errorf("no container port named admin = admin_listen's port %s", port)
	}
	if host, _, _ := net.SplitHostPort(d.cfg.AdminListen); host == "127.0.0.1" {
		t.Error("admin_listen on loopback: the kubelet's probes and Prometheus can't reach it")
	}

	var sa string
	for _, m := range d.docs {
		if m.kind == "ServiceAccount" {
			sa = m.name
		}
	}
	if spec.ServiceAccountName != sa {
		t.Errorf("serviceAccountName %q, want the ServiceAccount %q", spec.ServiceAccountName, sa)
	}
}

// checkCapabilityComments requires a comment giving the reason just above
// every added capability.
func checkCapabilityComments(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	capLine := regexp.MustCompile(`^\s*-\s*(BPF|NET_ADMIN|SYS_ADMIN|SYS_PTRACE)\s*$`)
	n := 0
	for i, l := range lines {
		m := capLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n++
		var comment []string
		for j := i - 1; j >= 0 && strings.HasPrefix(strings.TrimSpace(lines[j]), "#"); j-- {
			comment = append(comment, lines[j])
		}
		if !strings.Contains(strings.Join(comment, " "), m[1]+":") {
			t.Errorf("%s:%d: capability %s has no comment giving its reason", file, i+1, m[1])
		}
	}
	if n != 4 {
		t.Errorf("%s: %d capability lines, want 4", file, n)
	}
}

func TestConfigMap(t *testing.T) {
	d := load(t)
	c := d.cfg
	if !c.Redirect.Enabled || !c.Kubernetes.Enabled {
		t.Error("the DaemonSet config must enable redirect and kubernetes enrollment")
	}
	if c.Redirect.NodeAddress == "" {
		t.Error("redirect.node_address is empty: pods can't reach the node's loopback")
	}
	if c.Redirect.PinDir != "/sys/fs/bpf/sqlwarden" && !strings.HasPrefix(c.Redirect.PinDir, "/sys/fs/bpf/") {
		t.Errorf("redirect.pin_dir %s is not on the host bpffs mount", c.Redirect.PinDir)
	}

	// The policy file is the ConfigMap's policy.yaml and it compiles.
	_, pv, key := d.fileVolume(t, c.Policy.File)
	if pv.ConfigMap == nil || pv.ConfigMap.Name != d.cm.Name {
		t.Errorf("policy.file %s is not in the ConfigMap volume", c.Policy.File)
	}
	pol, ok := d.cm.Data[key]
	if !ok {
		t.Fatalf("ConfigMap has no %s for policy.file", key)
	}
	if err := policy.Check([]byte(pol)); err != nil {
		t.Errorf("ConfigMap %s: %v", key, err)
	}

	// Backend passwords come from the mounted Secret.
	for _, b := range c.Backends {
		if b.Password != "" {
			t.Errorf("backend %s: inline password in a ConfigMap", b.Name)
		}
		_, sv, key := d.fileVolume(t, b.PasswordFile)
		if sv.Secret == nil || sv.Secret.SecretName != d.secret.Name {
			t.Errorf("backend %s password_file %s is not in the Secret volume", b.Name, b.PasswordFile)
		}
		if _, ok := d.secret.StringData[key]; !ok {
			if _, ok := d.secret.Data[key]; !ok {
				t.Errorf("Secret %s has no key %s for backend %s", d.secret.Name, key, b.Name)
			}
		}
	}

	// Out of the box a node needs nothing but its backend: approvals in
	// memory, the journal on the node. NATS is the fleet overlay's
	// (TestFleetOverlay).
	if ap := c.Policy.Approvals; ap.Store != "memory" || ap.NATS.URL != "" {
		t.Errorf("policy.approvals: store %q url %q: the base config must not need NATS", ap.Store, ap.NATS.URL)
	}

	// The sections other packages decode, decoded as strictly as the daemon does.
	var ids identity.Config
	decodeStrict(t, &c.Identities, &ids)
	if err := ids.Validate(); err != nil {
		t.Errorf("identities: %v", err)
	}
	var acfg audit.Config
	decodeStrict(t, &c.Audit, &acfg)
	if _, av, _ := d.fileVolume(t, acfg.Dir+"/x"); av.HostPath == nil {
		t.Errorf("audit.dir %s is not on a hostPath volume: the journal must outlive the pod", acfg.Dir)
	}
	if len(acfg.Sinks) != 0 {
		t.Errorf("audit.sinks %+v: the base config must need no sink (the fleet overlay adds NATS)", acfg.Sinks)
	}

	// The agent example mounts its token where the daemon reads it.
	if ids.OIDC == nil {
		t.Fatal("identities.oidc is not configured")
	}
	var agent corev1.Pod
	for _, m := range d.docs {
		if m.kind == "Pod" {
			strict(t, m, &agent)
		}
	}
	if agent.Annotations["sqlwarden.io/intercept"] != "true" {
		t.Error("examples/agent.yaml lacks the intercept annotation")
	}
	var tokenOK bool
	for _, c := range agent.Spec.Containers {
		for _, m := range c.VolumeMounts {
			for _, v := range agent.Spec.Volumes {
				if v.Name != m.Name || v.Projected == nil {
					continue
				}
				for _, s := range v.Projected.Sources {
					if s.ServiceAccountToken != nil && path.Join(m.MountPath, s.ServiceAccountToken.Path) == ids.OIDC.TokenPath &&
						s.ServiceAccountToken.Audience == ids.OIDC.Audience {
						tokenOK = true
					}
				}
			}
		}
	}
	if !tokenOK {
		t.Errorf("examples/agent.yaml projects no token with audience %s at %s", ids.OIDC.Audience, ids.OIDC.TokenPath)
	}
}

// TestFleetOverlay: deploy/kubernetes-fleet is the base with approvals and
// the journal shared through NATS JetStream — a kustomize overlay that
// replaces config.yaml with one differing from the base's only in the NATS
// settings, and adds the NATS credentials to the Secret the DaemonSet mounts.
func TestFleetOverlay(t *testing.T) {
	base := load(t)
	data, err := os.ReadFile(filepath.Join("kubernetes-fleet", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `yaml:"resources"`
		Patches   []struct {
			Path string `yaml:"path"`
		} `yaml:"patches"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(k.Resources, []string{"../kubernetes"}) {
		t.Errorf("kubernetes-fleet resources %v, want the base ../kubernetes only", k.Resources)
	}
	var patches []string
	for _, p := range k.Patches {
		patches = append(patches, p.Path)
	}
	files, _ := filepath.Glob(filepath.Join("kubernetes-fleet", "*.yaml"))
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(patches, b) {
			t.Errorf("kubernetes-fleet/kustomization.yaml does not patch with %s", b)
		}
	}

	var cm corev1.ConfigMap
	var secret corev1.Secret
	for _, m := range manifests(t, "kubernetes-fleet") {
		switch m.kind {
		case "ConfigMap":
			strict(t, m, &cm)
		case "Secret":
			strict(t, m, &secret)
		default:
			t.Errorf("%s: unexpected kind %s in the overlay", m.file, m.kind)
		}
	}
	if cm.Name != base.cm.Name || cm.Namespace != base.cm.Namespace || secret.Name != base.secret.Name || secret.Namespace != base.secret.Namespace {
		t.Fatalf("the overlay patches ConfigMap %s/%s and Secret %s/%s, not the base's %s/%s and %s/%s",
			cm.Namespace, cm.Name, secret.Namespace, secret.Name, base.cm.Namespace, base.cm.Name, base.secret.Namespace, base.secret.Name)
	}
	if len(cm.Data) != 1 || cm.Data["config.yaml"] == "" {
		t.Errorf("the overlay's ConfigMap sets %d keys: want config.yaml only (policy.yaml stays the base's)", len(cm.Data))
	}
	c, err := config.Parse([]byte(cm.Data["config.yaml"]))
	if err != nil {
		t.Fatalf("kubernetes-fleet config.yaml: %v", err)
	}

	// Approvals shared through the bucket, the journal shipped to the
	// stream, both with the credentials the overlay adds to the Secret.
	ap := c.Policy.Approvals
	if ap.Store != "nats" || ap.NATS.URL == "" || ap.NATS.Bucket != "SQLWARDEN_APPROVALS" {
		t.Errorf("policy.approvals: store %q url %q bucket %q: the fleet's nodes must share approvals", ap.Store, ap.NATS.URL, ap.NATS.Bucket)
	}
	var acfg audit.Config
	decodeStrict(t, &c.Audit, &acfg)
	var shipped bool
	for _, s := range acfg.Sinks {
		if s.Type == "nats" && s.NATS.Stream == "SQLWARDEN_AUDIT" && s.NATS.CredsFile == ap.NATS.CredsFile {
			shipped = true
		}
	}
	if !shipped {
		t.Error("audit.sinks: no nats sink to the SQLWARDEN_AUDIT stream with the approvals' credentials")
	}
	_, sv, key := base.fileVolume(t, ap.NATS.CredsFile)
	if sv.Secret == nil || sv.Secret.SecretName != secret.Name {
		t.Errorf("nats creds_file %s is not in the Secret volume", ap.NATS.CredsFile)
	} else if _, ok := secret.StringData[key]; !ok {
		t.Errorf("the overlay's Secret has no key %s for the NATS credentials", key)
	}

	// Nothing else differs from the base's config.
	var b, f map[string]any
	if err := yaml.Unmarshal([]byte(base.cm.Data["config.yaml"]), &b); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &f); err != nil {
		t.Fatal(err)
	}
	sub := func(m map[string]any, key string) map[string]any {
		v, _ := m[key].(map[string]any)
		if v == nil {
			t.Fatalf("config has no %s section", key)
		}
		return v
	}
	delete(sub(f, "audit"), "sinks")
	fa := sub(sub(f, "policy"), "approvals")
	delete(fa, "nats")
	fa["store"] = sub(sub(b, "policy"), "approvals")["store"]
	if !reflect.DeepEqual(b, f) {
		bb, _ := yaml.Marshal(b)
		fb, _ := yaml.Marshal(f)
		t.Errorf("kubernetes-fleet config.yaml differs from the base's in more than the NATS settings:\nbase:\n%s\nfleet without them:\n%s", bb, fb)
	}
}

func decodeStrict(t *testing.T, n *yaml.Node, into any) {
	t.Helper()
	b, err := yaml.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil {
		t.Errorf("decode %T: %v", into, err)
	}
}

func TestRBAC(t *testing.T) {
	docs := manifests(t, "kubernetes")
	var role rbacv1.ClusterRole
	for _, d := range find(t, docs, "ClusterRole") {
		strict(t, d, &role)
	}
	if len(role.Rules) != 1 {
		t.Fatalf("ClusterRole has %d rules, want 1 (pods)", len(role.Rules))
	}
	r := role.Rules[0]
	verbs := slices.Clone(r.Verbs)
	slices.Sort(verbs)
	if !slices.Equal(r.APIGroups, []string{""}) || !slices.Equal(r.Resources, []string{"pods"}) || !slices.Equal(verbs, []string{"get", "list", "watch"}) {
		t.Errorf("ClusterRole rule %+v, want get/list/watch on core pods only", r)
	}
	var bound bool
	for _, d := range find(t, docs, "ClusterRoleBinding") {
		var b rbacv1.ClusterRoleBinding
		strict(t, d, &b)
		if b.RoleRef.Name == role.Name {
			for _, s := range b.Subjects {
				bound = bound || (s.Kind == "ServiceAccount" && s.Name == "sqlwarden" && s.Namespace == "sqlwarden")
			}
		}
	}
	if !bound {
		t.Error("the ClusterRole is not bound to the sqlwarden ServiceAccount")
	}
}

func TestServiceMonitor(t *testing.T) {
	docs := manifests(t, "kubernetes")
	var svc corev1.Service
	strict(t, find(t, docs, "Service")[0], &svc)
	var sm struct {
		APIVersion string         `json:"apiVersion"`
		Kind       string         `json:"kind"`
		Metadata   map[string]any `json:"metadata"`
		Spec       struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			NamespaceSelector struct {
				MatchNames []string `json:"matchNames"`
			} `json:"namespaceSelector"`
			Endpoints []struct {
				Port        string           `json:"port"`
				Path        string           `json:"path"`
				Interval    string           `json:"interval"`
				Relabelings []map[string]any `json:"relabelings"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
	strict(t, find(t, docs, "ServiceMonitor")[0], &sm)
	if sm.APIVersion != "monitoring.coreos.com/v1" {
		t.Errorf("ServiceMonitor apiVersion %s", sm.APIVersion)
	}
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Labels[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s; the Service is labelled %v", k, v, svc.Labels)
		}
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Fatalf("ServiceMonitor endpoints %+v: want one at /metrics", sm.Spec.Endpoints)
	}
	var portOK bool
	for _, p := range svc.Spec.Ports {
		portOK = portOK || p.Name == sm.Spec.Endpoints[0].Port
	}
	if !portOK {
		t.Errorf("ServiceMonitor port %s is not a port of the Service", sm.Spec.Endpoints[0].Port)
	}
	if _, err := time.ParseDuration(sm.Spec.Endpoints[0].Interval); err != nil {
		t.Errorf("interval: %v", err)
	}
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("kubernetes", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(k.Resources, b) {
			t.Errorf("kustomization.yaml does not list %s", b)
		}
	}
}

// exportedNames is every series name the daemon's registry exposes, with all
// collectors registered and every label set touched.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New(metrics.Options{})
	m.ConnOpened()
	m.ConnClosed("closed")
	m.Statement("SELECT", "success", time.Millisecond, time.Microsecond)
	m.Bytes(1, 1)
	m.Decision("default", "allow")
	m.Masked(1)
	m.IdentityFailure("token expired")
	m.ObserveSync(time.Millisecond)
	if err := m.RegisterJournal(func() audit.Stats {
		return audit.Stats{Sinks: []audit.SinkStats{{Name: "s", Type: "nats"}}}
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterRedirect(func() (metrics.RedirectCounters, error) { return metrics.RedirectCounters{}, nil }); err != nil {
		t.Fatal(err)
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if mf.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[mf.GetName()+s] = true
			}
		}
	}
	return names
}

func TestDashboard(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("grafana", "sqlwarden-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title      string `json:"title"`
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Error("dashboard needs a uid and a title")
	}
	names := exportedNames(t)
	ref := regexp.MustCompile(`\bsqlwarden_[a-z0-9_]+`)
	ids := map[int]bool{}
	charted := map[string]bool{}
	var exprs []string
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			if s, ok := q["query"].(string); ok {
				exprs = append(exprs, s)
			}
		}
	}
	for _, e := range exprs {
		refs := ref.FindAllString(e, -1)
		if len(refs) == 0 && !strings.Contains(e, "label_values") {
			t.Errorf("query %q references no sqlwarden metric", e)
		}
		for _, n := range refs {
			charted[n] = true
			if !names[n] {
				t.Errorf("dashboard query %q uses %s, which the daemon does not export", e, n)
			}
		}
	}
	// Every family an operator watches (connections, statements, latency,
	// masking, policy, approvals, audit, sinks, identity, redirect) is on the dashboard.
	for _, n := range []string{
		"sqlwarden_proxy_connections_active", "sqlwarden_proxy_connections_total", "sqlwarden_proxy_statements_total",
		"sqlwarden_proxy_statement_duration_seconds_bucket", "sqlwarden_proxy_added_latency_seconds_bucket",
		"sqlwarden_proxy_bytes_total", "sqlwarden_masking_values_masked_total", "sqlwarden_policy_decisions_total",
		"sqlwarden_policy_approvals_pending", "sqlwarden_audit_records_total", "sqlwarden_audit_sync_duration_seconds_bucket",
		"sqlwarden_audit_sink_lag_records", "sqlwarden_audit_sink_errors_total", "sqlwarden_identity_failures_total",
		"sqlwarden_redirect_connects_total", "sqlwarden_redirect_lookups_total",
	} {
		if !charted[n] {
			t.Errorf("the dashboard does not chart %s", n)
		}
	}
}

// unit parses a systemd unit file into section → key → values.
func unit(t *testing.T, file string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string][]string{}
	sec := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			sec = l[1 : len(l)-1]
			out[sec] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || sec == "" {
				t.Fatalf("%s: bad line %q", file, l)
			}
			out[sec][k] = append(out[sec][k], v)
		}
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	file := filepath.Join("systemd", "sqlwarden.service")
	u := unit(t, file)
	svc := u["Service"]
	if len(svc["ExecStart"]) != 1 || !regexp.MustCompile(`^/\S+/sqlwarden run --config /\S+\.yaml$`).MatchString(svc["ExecStart"][0]) {
		t.Errorf("ExecStart = %v, want /…/sqlwarden run --config /…/config.yaml", svc["ExecStart"])
	}
	caps := strings.Fields(strings.Join(svc["CapabilityBoundingSet"], " "))
	slices.Sort(caps)
	if want := []string{"CAP_BPF", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"}; !slices.Equal(caps, want) {
		t.Errorf("CapabilityBoundingSet = %v, want %v", caps, want)
	}
	// Hardening must not take away what BPF and cgroups need.
	for k, bad := range map[string]string{"ProtectKernelTunables": "yes", "ProtectControlGroups": "yes", "PrivateDevices": "yes", "PrivateNetwork": "yes"} {
		if slices.Contains(svc[k], bad) {
			t.Errorf("%s=%s would break the redirect", k, bad)
		}
	}
	if !slices.Contains(svc["SystemCallFilter"], "@system-service bpf perf_event_open") {
		t.Errorf("SystemCallFilter %v must allow bpf", svc["SystemCallFilter"])
	}
	if len(u["Install"]["WantedBy"]) == 0 {
		t.Error("no [Install] WantedBy")
	}

	// systemd's own checker (Debian package systemd, which
	// scripts/install-deps.sh installs): point ExecStart at a real executable
	// so only the unit's syntax and directives are judged.
	t.Run("systemd-analyze", func(t *testing.T) { systemdVerify(t, file) })
}

func systemdVerify(t *testing.T, file string) {
	sa := testutil.RequireTool(t, "systemd-analyze")
	data, _ := os.ReadFile(file)
	self, _ := os.Executable()
	fixed := regexp.MustCompile(`(?m)^ExecStart=\S+`).ReplaceAll(data, []byte("ExecStart="+self))
	dir := t.TempDir()
	p := filepath.Join(dir, "sqlwarden.service")
	if err := os.WriteFile(p, fixed, 0o644); err != nil {
		t.Fatal(err)
	}
	// verify exits 0 even for unknown keys and bad values, and may fail for
	// reasons that are not the unit's without a running systemd: judge the
	// diagnostics about this file.
	out, _ := exec.Command(sa, "verify", p).CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "sqlwarden.service:") {
			t.Errorf("systemd-analyze verify: %s", l)
		}
	}
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var from, stages []string
	var build, copyFrom, entry bool
	text := strings.ReplaceAll(string(data), "\\\n", " ") // join continued lines
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			from = append(from, f[1])
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				stages = append(stages, f[3])
			}
		case "RUN":
			build = build || strings.Contains(l, "go build") && strings.Contains(l, "./cmd/sqlwarden")
		case "COPY":
			for _, s := range stages {
				copyFrom = copyFrom || strings.Contains(l, "--from="+s)
			}
		case "ENTRYPOINT":
			entry = strings.Contains(l, "sqlwarden")
		}
	}
	if len(from) < 2 || len(stages) == 0 {
		t.Errorf("want a multi-stage build, FROM lines %v", from)
	}
	if !build || !copyFrom || !entry {
		t.Errorf("Dockerfile: go build of ./cmd/sqlwarden %v, COPY --from the build stage %v, ENTRYPOINT sqlwarden %v", build, copyFrom, entry)
	}
}
