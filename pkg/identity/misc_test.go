package identity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestPodUIDFromCgroup(t *testing.T) {
	const uid = "0f9ae2c4-6c53-4b53-9d0e-2b1d1d1f4a01"
	tests := map[string]string{
		"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f9ae2c4_6c53_4b53_9d0e_2b1d1d1f4a01.slice/cri-containerd-ab12.scope":                 uid,
		"/kubepods.slice/kubepods-pod0f9ae2c4_6c53_4b53_9d0e_2b1d1d1f4a01.slice":                                                                              uid,
		"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod0f9ae2c4_6c53_4b53_9d0e_2b1d1d1f4a01.slice/x": uid,
		"/kubepods/burstable/pod0f9ae2c4-6c53-4b53-9d0e-2b1d1d1f4a01/8c2f":                                                                                    uid,
		"/kubepods/pod0F9AE2C4-6C53-4B53-9D0E-2B1D1D1F4A01/8c2f":                                                                                              uid,
		"/kubepods/besteffort/pod6ee3a9f4d3a8b9c1aa0e2b1d1d1f4a01/ctr":                                                                                        "6ee3a9f4d3a8b9c1aa0e2b1d1d1f4a01", // static pod
		"/system.slice/pod0f9ae2c4-6c53-4b53-9d0e-2b1d1d1f4a01":                                                                                               "",                                 // not under kubepods
		"/kubepods/burstable/podnotauid/x":                                                                                                                    "",
		"/user.slice/user-1000.slice/session-3.scope":                                                                                                         "",
		"":  "",
		"/": "",
	}
	for cg, want := range tests {
		if got := PodUIDFromCgroup(cg); got != want {
			t.Errorf("PodUIDFromCgroup(%q) = %q, want %q", cg, got, want)
		}
	}
	v2, pod := parseProcCgroup([]byte("12:memory:/kubepods/burstable/pod" + uid + "/c\n0::/kubepods/burstable/pod" + uid + "/c\n"))
	if v2 != "/kubepods/burstable/pod"+uid+"/c" || pod != uid {
		t.Errorf("parseProcCgroup: %q %q", v2, pod)
	}
}

func TestBackendRules(t *testing.T) {
	rules := []BackendRule{
		{Subject: "system:serviceaccount:reporting:*", Backend: "reports"},
		{Groups: []string{"admins", "dba"}, Backend: "admin"},
		{Claims: map[string]string{"kubernetes.io.namespace": "batch", "tier": "2"}, Backend: "batch"},
		{Name: "agent-1", Source: "static", Backend: "agent1"},
	}
	tests := []struct {
		id   Identity
		want string
	}{
		{Identity{Subject: "system:serviceaccount:reporting:r", Backend: "default"}, "reports"},
		{Identity{Subject: "x", Groups: []string{"users", "dba"}, Backend: "default"}, "admin"},
		{Identity{Claims: map[string]any{"kubernetes.io": map[string]any{"namespace": "batch"}, "tier": 2.0}, Backend: "default"}, "batch"},
		{Identity{Claims: map[string]any{"kubernetes.io": map[string]any{"namespace": "batch"}}, Backend: "default"}, "default"},
		{Identity{Name: "agent-1", Source: "static", Backend: "default"}, "agent1"},
		{Identity{Name: "agent-1", Source: "oidc", Backend: "own"}, "own"},
	}
	for i, tt := range tests {
		if got := BackendFor(rules, &tt.id); got != tt.want {
			t.Errorf("%d: backend %q, want %q", i, got, tt.want)
		}
	}
}

func TestConfigYAML(t *testing.T) {
	src := `
oidc:
  issuer: https://kubernetes.default.svc.cluster.local
  audience: sqlwarden
  token_path: /var/run/secrets/sqlwarden/token
  allowed_algs: [RS256]
  ca_file: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
  issuer_token_file: /var/run/secrets/kubernetes.io/serviceaccount/token
  name_claim: sub
  groups_claim: groups
  model_claim: sqlwarden.io/model
  tool_call_claim: tool_call
  trace_id_claim: traceparent
  backend: default
  require_pod_binding: true
static:
  - name: agent-1
    cgroup: /sys/fs/cgroup/unified/agents/agent-1
    backend: default
rules:
  - subject: "system:serviceaccount:reporting:*"
    groups: [readers]
    claims: {kubernetes.io.namespace: reporting}
    backend: reports
allow_password_token: true
`
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.OIDC.TokenPath != "/var/run/secrets/sqlwarden/token" || !*c.OIDC.RequirePodBinding || c.Static[0].Cgroup == "" ||
		c.Rules[0].Claims["kubernetes.io.namespace"] != "reporting" || !c.AllowPasswordToken || c.OIDC.TraceIDClaim != "traceparent" {
		t.Fatalf("%+v %+v", c, c.OIDC)
	}
	d := (&OIDCConfig{}).withDefaults()
	if d.TokenPath != DefaultTokenPath || d.NameClaim != "sub" || len(d.AllowedAlgs) != 2 || d.Backend != "" {
		t.Fatalf("defaults %+v", d)
	}
	for _, bad := range []Config{
		{OIDC: &OIDCConfig{Audience: "a"}},
		{OIDC: &OIDCConfig{Issuer: "i"}},
		{OIDC: &OIDCConfig{Issuer: "i", Audience: "a", AllowedAlgs: []string{"HS256"}}},
		{OIDC: &OIDCConfig{Issuer: "i", Audience: "a", AllowedAlgs: []string{"none"}}},
		{OIDC: &OIDCConfig{Issuer: "i", Audience: "a", TokenPath: "relative/token"}},
		{Static: []StaticIdentity{{Name: "x", Cgroup: "relative"}}},
		{Static: []StaticIdentity{{Name: "x", Cgroup: "/a"}, {Name: "y", Cgroup: "/a"}}},
		{Rules: []BackendRule{{Name: "x"}}},
		{Rules: []BackendRule{{Name: "[", Backend: "b"}}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

func TestCredentialSource(t *testing.T) {
	if c, err := NewCredentialSource("warden", "inline", "").Get(); err != nil || c != (Credential{"warden", "inline"}) {
		t.Fatalf("inline: %+v %v", c, err)
	}
	dir := t.TempDir()
	// A Kubernetes secret mount: key -> ..data/key, ..data -> timestamped dir.
	write := func(gen, pass string) {
		d := filepath.Join(dir, gen)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "password"), []byte(pass), 0o600)
		tmp := filepath.Join(dir, "..data_tmp")
		os.Symlink(gen, tmp)
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	write("..2024_01", "s3cret\n")
	os.Symlink("..data/password", filepath.Join(dir, "password"))
	src := NewCredentialSource("warden", "ignored", filepath.Join(dir, "password"))
	get := func(want string) {
		t.Helper()
		c, err := src.Get()
		if err != nil || c.User != "warden" || c.Password != want {
			t.Fatalf("got %+v, %v; want %q", c, err, want)
		}
	}
	get("s3cret")
	get("s3cret")
	write("..2024_02", "rotated\r\n") // same size, new inode
	get("rotated")
	// In-place rewrite with the same size: mtime differs.
	p := filepath.Join(dir, "..2024_02", "password")
	os.WriteFile(p, []byte("rotate2\r\n"), 0o600)
	os.Chtimes(p, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	get("rotate2")
	os.RemoveAll(filepath.Join(dir, "..2024_02"))
	if _, err := src.Get(); err == nil {
		t.Fatal("missing file gave a credential")
	}
}
