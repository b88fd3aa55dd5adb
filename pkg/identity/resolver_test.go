package identity

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/host"
)

func TestResolveOIDC(t *testing.T) {
	iss := newTestIssuer(t)
	tokenPath := filepath.Join(t.TempDir(), "run/secrets/sqlwarden/token")
	cfg := iss.oidcConfig(tokenPath)
	cfg.GroupsClaim = "groups"
	cfg.ModelClaim = "ai.model"
	r := newResolver(t, Config{OIDC: cfg})
	w := startWorkload(t)

	valid := iss.claims("system:serviceaccount:agents:alpha")
	valid["groups"] = []string{"agents", "readers"}
	valid["ai"] = map[string]any{"model": "claude-x"}
	with := func(k string, v any) map[string]any {
		c := iss.claims("system:serviceaccount:agents:alpha")
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	now := time.Now()

	tests := []struct {
		name   string
		token  string
		reason string // "" = accepted
	}{
		{"valid RS256", sign(t, jose.RS256, rsaKey, "rsa-1", valid), ""},
		{"valid ES256", sign(t, jose.ES256, ecKey, "ec-1", valid), ""},
		{"expired", sign(t, jose.RS256, rsaKey, "rsa-1", with("exp", now.Add(-time.Minute).Unix())), ReasonExpired},
		{"not yet valid", sign(t, jose.RS256, rsaKey, "rsa-1", with("nbf", now.Add(time.Hour).Unix())), ReasonNotYetValid},
		{"no expiry", sign(t, jose.RS256, rsaKey, "rsa-1", with("exp", nil)), ReasonNoExpiry},
		{"wrong audience", sign(t, jose.RS256, rsaKey, "rsa-1", with("aud", []string{"kubernetes"})), ReasonWrongAudience},
		{"wrong issuer", sign(t, jose.RS256, rsaKey, "rsa-1", with("iss", "https://evil.example")), ReasonWrongIssuer},
		{"alg none", unsigned(valid), "unsupported algorithm none"},
		{"HS256 with the public key", hs256WithPublicKey(t, "rsa-1", valid), "unsupported algorithm HS256"},
		{"unknown key", sign(t, jose.RS256, rogueKey, "rogue-1", valid), ReasonUnknownKey},
		{"known kid, other key", sign(t, jose.RS256, rogueKey, "rsa-1", valid), ReasonSignatureInvalid},
		{"tampered payload", func() string {
			p := strings.Split(sign(t, jose.RS256, rsaKey, "rsa-1", valid), ".")
			p[1] = b64(with("sub", "system:serviceaccount:kube-system:admin"))
			return strings.Join(p, ".")
		}(), ReasonSignatureInvalid},
		{"garbage", "not a token", ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeToken(t, tokenPath, tt.token)
			id, err := r.Resolve(context.Background(), Request{PID: uint32(w.Process.Pid), ClientUser: "root"})
			if tt.reason != "" {
				wantDenied(t, id, err, tt.reason)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.Name != "system:serviceaccount:agents:alpha" || id.Source != SourceOIDC || id.Issuer != iss.url ||
				id.Backend != "" || id.Model != "claude-x" || len(id.Groups) != 2 || id.Expiry.Before(now) {
				t.Fatalf("identity %+v", id)
			}
			a := id.Audit()
			if a.Name != id.Name || a.Source != "oidc" || a.Claims["sub"] != id.Subject {
				t.Fatalf("audit identity %+v", a)
			}
		})
	}
}

func TestTokenRotation(t *testing.T) {
	iss := newTestIssuer(t)
	tokenPath := filepath.Join(t.TempDir(), "token")
	r := newResolver(t, Config{OIDC: iss.oidcConfig(tokenPath)})
	w := startWorkload(t)
	req := Request{PID: uint32(w.Process.Pid)}

	writeToken(t, tokenPath, sign(t, jose.RS256, rsaKey, "rsa-1", iss.claims("first")))
	for range 3 {
		id, err := r.Resolve(context.Background(), req)
		if err != nil || id.Name != "first" {
			t.Fatalf("got %+v, %v", id, err)
		}
	}
	if n := r.verifications.Load(); n != 1 {
		t.Fatalf("%d verifications for one token, want 1 (cache)", n)
	}

	// kubelet rotates the file: the new content has a new hash and is verified.
	writeToken(t, tokenPath, sign(t, jose.ES256, ecKey, "ec-1", iss.claims("second")))
	id, err := r.Resolve(context.Background(), req)
	if err != nil || id.Name != "second" {
		t.Fatalf("after rotation got %+v, %v", id, err)
	}
	if n := r.verifications.Load(); n != 2 {
		t.Fatalf("%d verifications after rotation, want 2", n)
	}

	// An expired token in the file is refused even though an earlier one was cached.
	c := iss.claims("third")
	c["exp"] = time.Now().Add(-time.Second).Unix()
	writeToken(t, tokenPath, sign(t, jose.RS256, rsaKey, "rsa-1", c))
	id, err = r.Resolve(context.Background(), req)
	wantDenied(t, id, err, ReasonExpired)

	// A cached identity is dropped at its token's expiry.
	writeToken(t, tokenPath, sign(t, jose.RS256, rsaKey, "rsa-1", iss.claims("second")))
	r.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	id, err = r.Resolve(context.Background(), req)
	wantDenied(t, id, err, ReasonExpired)
}

func TestTokenFile(t *testing.T) {
	iss := newTestIssuer(t)
	dir := t.TempDir()
	tokenPath := filepath.Join(dir, "token")
	r := newResolver(t, Config{OIDC: iss.oidcConfig(tokenPath)})
	w := startWorkload(t)
	req := Request{PID: uint32(w.Process.Pid)}
	resolve := func() (*Identity, error) { return r.Resolve(context.Background(), req) }

	t.Run("missing", func(t *testing.T) {
		id, err := resolve()
		wantDenied(t, id, err, ReasonTokenMissing)
	})
	t.Run("empty", func(t *testing.T) {
		writeToken(t, tokenPath, "")
		defer os.Remove(tokenPath)
		id, err := resolve()
		wantDenied(t, id, err, ReasonTokenMissing)
	})
	t.Run("directory", func(t *testing.T) {
		os.Mkdir(tokenPath, 0o755)
		defer os.Remove(tokenPath)
		id, err := resolve()
		wantDenied(t, id, err, ReasonTokenUnreadable)
	})
	t.Run("fifo does not block", func(t *testing.T) {
		if err := syscall.Mkfifo(tokenPath, 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(tokenPath)
		done := make(chan error, 1)
		go func() { _, err := resolve(); done <- err }()
		select {
		case err := <-done:
			wantDenied(t, nil, err, ReasonTokenUnreadable)
		case <-time.After(5 * time.Second):
			t.Fatal("resolve blocked on a FIFO")
		}
	})
	t.Run("too large", func(t *testing.T) {
		writeToken(t, tokenPath, strings.Repeat("a", maxTokenSize+10))
		defer os.Remove(tokenPath)
		id, err := resolve()
		wantDenied(t, id, err, ReasonTokenUnreadable)
	})
	t.Run("magic link", func(t *testing.T) {
		// /proc/self/... inside the workload would be resolved by the daemon.
		os.Symlink("/proc/self/root"+tokenPath+".real", tokenPath)
		writeToken(t, tokenPath+".real", sign(t, jose.RS256, rsaKey, "rsa-1", iss.claims("x")))
		defer os.Remove(tokenPath)
		id, err := resolve()
		wantDenied(t, id, err, ReasonTokenUnreadable)
	})
	t.Run("unreadable", func(t *testing.T) {
		writeToken(t, tokenPath, sign(t, jose.RS256, rsaKey, "rsa-1", iss.claims("x")))
		defer os.Remove(tokenPath)
		if os.Geteuid() == 0 {
			// root reads mode 000; make a path component unusable instead.
			sub := filepath.Join(dir, "notadir")
			os.WriteFile(sub, nil, 0o600)
			r2 := newResolver(t, Config{OIDC: iss.oidcConfig(filepath.Join(sub, "token"))})
			id, err := r2.Resolve(context.Background(), req)
			wantDenied(t, id, err, ReasonTokenUnreadable)
			return
		}
		os.Chmod(tokenPath, 0)
		id, err := resolve()
		wantDenied(t, id, err, ReasonTokenUnreadable)
	})
}

func TestProcessGone(t *testing.T) {
	iss := newTestIssuer(t)
	tokenPath := filepath.Join(t.TempDir(), "token")
	writeToken(t, tokenPath, sign(t, jose.RS256, rsaKey, "rsa-1", iss.claims("alpha")))
	r := newResolver(t, Config{OIDC: iss.oidcConfig(tokenPath)})

	t.Run("exited", func(t *testing.T) {
		w := startWorkload(t)
		pid := uint32(w.Process.Pid)
		w.Process.Kill()
		w.Wait()
		id, err := r.Resolve(context.Background(), Request{PID: pid})
		wantDenied(t, id, err, ReasonProcessGone)
	})
	t.Run("pid reused", func(t *testing.T) {
		w := startWorkload(t)
		p, err := host.OpenProc("/proc", uint32(w.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		start, err := p.StartTime()
		p.Close()
		if err != nil {
			t.Fatal(err)
		}
		id, err := r.Resolve(context.Background(), Request{PID: uint32(w.Process.Pid), StartTime: start})
		if err != nil || id.Name != "alpha" {
			t.Fatalf("same process: %+v, %v", id, err)
		}
		id, err = r.Resolve(context.Background(), Request{PID: uint32(w.Process.Pid), StartTime: start - 1})
		wantDenied(t, id, err, ReasonProcessGone)
	})
	t.Run("no pid", func(t *testing.T) {
		id, err := r.Resolve(context.Background(), Request{})
		wantDenied(t, id, err, ReasonNoProcess)
	})
}

const (
	podA = "0f9ae2c4-6c53-4b53-9d0e-2b1d1d1f4a01"
	podB = "7c1d4e55-9a1b-4e2f-8c3d-5e6f7a8b9c02"
)

func kubeClaimsFor(iss *testIssuer, podUID string) map[string]any {
	c := iss.claims("system:serviceaccount:agents:alpha")
	c["kubernetes.io"] = map[string]any{
		"namespace":      "agents",
		"pod":            map[string]any{"name": "alpha-0", "uid": podUID},
		"serviceaccount": map[string]any{"name": "alpha", "uid": "5d1b1d2e-0000-4000-8000-000000000001"},
	}
	return c
}

func TestPasswordToken(t *testing.T) {
	iss := newTestIssuer(t)
	cfg := Config{OIDC: iss.oidcConfig("/nonexistent/token"), AllowPasswordToken: true}
	r := newResolver(t, cfg)
	ctx := context.Background()
	podCgroup := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(podA, "-", "_") + ".slice/cri-containerd-abc.scope"

	tok := sign(t, jose.RS256, rsaKey, "rsa-1", kubeClaimsFor(iss, podA))
	id, err := r.Resolve(ctx, Request{PasswordToken: tok, TLS: true, CgroupPath: podCgroup})
	if err != nil || id.Pod == nil || id.Pod.UID != podA || id.Pod.Name != "alpha-0" {
		t.Fatalf("got %+v, %v", id, err)
	}
	id, err = r.Resolve(ctx, Request{PasswordToken: tok, TLS: false, CgroupPath: podCgroup})
	wantDenied(t, id, err, ReasonTokenNeedsTLS)

	other := sign(t, jose.RS256, rsaKey, "rsa-1", kubeClaimsFor(iss, podB))
	id, err = r.Resolve(ctx, Request{PasswordToken: other, TLS: true, CgroupPath: podCgroup})
	wantDenied(t, id, err, ReasonOtherPod)

	id, err = r.Resolve(ctx, Request{PasswordToken: tok, TLS: true})
	wantDenied(t, id, err, ReasonPodBoundNoWorkload)

	// Without allow_password_token the password is ignored, never a token.
	r2 := newResolver(t, Config{OIDC: iss.oidcConfig("/nonexistent/token")})
	id, err = r2.Resolve(ctx, Request{PasswordToken: tok, TLS: true, CgroupPath: podCgroup})
	wantDenied(t, id, err, ReasonNoProcess)

	// Binding explicitly off: a non-Kubernetes host.
	off := false
	cfg.OIDC.RequirePodBinding = &off
	r3 := newResolver(t, cfg)
	if _, err := r3.Resolve(ctx, Request{PasswordToken: tok, TLS: true}); err != nil {
		t.Fatal(err)
	}
}

func TestPodBindingNotInPod(t *testing.T) {
	iss := newTestIssuer(t)
	tokenPath := filepath.Join(t.TempDir(), "token")
	r := newResolver(t, Config{OIDC: iss.oidcConfig(tokenPath)})
	w := startWorkload(t)
	// The test process (and its child) is in no kubepods cgroup.
	writeToken(t, tokenPath, sign(t, jose.RS256, rsaKey, "rsa-1", kubeClaimsFor(iss, podA)))
	id, err := r.Resolve(context.Background(), Request{PID: uint32(w.Process.Pid)})
	wantDenied(t, id, err, ReasonOtherPod)

	on := true
	cfg := iss.oidcConfig(tokenPath)
	cfg.RequirePodBinding = &on
	r2 := newResolver(t, Config{OIDC: cfg})
	writeToken(t, tokenPath, sign(t, jose.RS256, rsaKey, "rsa-1", iss.claims("plain")))
	id, err = r2.Resolve(context.Background(), Request{PID: uint32(w.Process.Pid)})
	wantDenied(t, id, err, ReasonNoPodClaim)
}

func TestStaticOwnCgroup(t *testing.T) {
	w := startWorkload(t)
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	own, _ := parseProcCgroup(b)
	if own == "" {
		testutil.PrivilegedUnavailable(t, "this process is in no cgroup v2 hierarchy")
	}
	r := newResolver(t, Config{
		Static: []StaticIdentity{{Name: "agent-1", Cgroup: own, Backend: "reporting"}},
		Rules:  []BackendRule{{Name: "agent-*", Source: "static", Backend: "agents"}},
	})
	id, err := r.Resolve(context.Background(), Request{PID: uint32(w.Process.Pid)})
	if err != nil || id.Name != "agent-1" || id.Source != SourceStatic || id.Backend != "agents" {
		t.Fatalf("got %+v, %v", id, err)
	}
	// The proxy saw the connection in another cgroup than the process is in.
	id, err = r.Resolve(context.Background(), Request{PID: uint32(w.Process.Pid), CgroupPath: "/elsewhere"})
	wantDenied(t, id, err, ReasonCgroupChanged)

	r2 := newResolver(t, Config{Static: []StaticIdentity{{Name: "x", Cgroup: "/no/such/cgroup"}}})
	id, err = r2.Resolve(context.Background(), Request{PID: uint32(w.Process.Pid)})
	wantDenied(t, id, err, ReasonNoIdentity)
}

func TestResolveConcurrent(t *testing.T) {
	iss := newTestIssuer(t)
	tokenPath := filepath.Join(t.TempDir(), "token")
	r := newResolver(t, Config{OIDC: iss.oidcConfig(tokenPath), Rules: []BackendRule{{Name: "alpha", Backend: "b1"}}})
	w := startWorkload(t)
	writeToken(t, tokenPath, sign(t, jose.RS256, rsaKey, "rsa-1", iss.claims("alpha")))
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			id, err := r.Resolve(context.Background(), Request{PID: uint32(w.Process.Pid)})
			if err == nil {
				if id.Backend != "b1" {
					err = errors.New("backend " + id.Backend)
				}
				id.Backend = "mutated by a caller"
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestIssuerAccess(t *testing.T) {
	iss := newTestIssuer(t)
	iss.RequireBearer("daemon-token")
	ctx := context.Background()
	cfg := iss.oidcConfig("/token")
	if _, err := NewResolver(ctx, Config{OIDC: cfg}, nil); err == nil {
		t.Fatal("discovery without the issuer token succeeded")
	}
	cfg.IssuerTokenFile = filepath.Join(t.TempDir(), "daemon-token")
	os.WriteFile(cfg.IssuerTokenFile, []byte("daemon-token\n"), 0o600)
	if _, err := NewResolver(ctx, Config{OIDC: cfg}, nil); err != nil {
		t.Fatal(err)
	}
	// The issuer's TLS certificate must chain to ca_file.
	cfg.CAFile = ""
	if _, err := NewResolver(ctx, Config{OIDC: cfg}, nil); err == nil {
		t.Fatal("untrusted issuer certificate accepted")
	}
}
