package identity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/host"
)

func randName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// makeCgroup creates a cgroup (relative to the v2 hierarchy root) and removes
// it, and every cgroup below it, at cleanup. Register it before the workloads
// that move into it, so they are gone first.
func makeCgroup(t *testing.T, rel string) (dir string, id uint64) {
	t.Helper()
	mount, err := host.CgroupV2Mount()
	if err != nil {
		testutil.PrivilegedUnavailable(t, "%v", err)
	}
	dir = filepath.Join(mount, rel)
	top := filepath.Join(mount, strings.Split(strings.TrimPrefix(rel, "/"), "/")[0])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() { removeCgroupTree(t, top) })
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	return dir, st.Ino
}

func removeCgroupTree(t *testing.T, top string) {
	var dirs []string
	filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		var err error
		for range 50 { // a killed member may take a moment to leave
			if err = os.Remove(dirs[i]); err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove cgroup %s: %v", dirs[i], err)
		}
	}
}

func moveInto(t *testing.T, cgdir string, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(cgdir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatalf("move %d into %s: %v", pid, cgdir, err)
	}
}

func TestPodBindingCgroups(t *testing.T) {
	testutil.RequirePrivileged(t)
	iss := newTestIssuer(t)
	tokenPath := filepath.Join(t.TempDir(), "token")
	r := newResolver(t, Config{OIDC: iss.oidcConfig(tokenPath)})
	top := randName("sqlwarden-test-")

	layouts := map[string]string{
		"systemd":  "/" + top + ".slice/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(podA, "-", "_") + ".slice/cri-containerd-0123abcd.scope",
		"cgroupfs": "/" + top + "/kubepods/burstable/pod" + podA + "/0123abcd",
	}
	for driver, rel := range layouts {
		t.Run(driver, func(t *testing.T) {
			cgdir, cgid := makeCgroup(t, rel)
			w := startWorkload(t)
			moveInto(t, cgdir, w.Process.Pid)
			req := Request{PID: uint32(w.Process.Pid), CgroupID: cgid}
			ctx := context.Background()

			writeToken(t, tokenPath, sign(t, jose.RS256, rsaKey, "rsa-1", kubeClaimsFor(iss, podA)))
			id, err := r.Resolve(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if id.Pod == nil || id.Pod.UID != podA || id.Pod.Namespace != "agents" {
				t.Fatalf("identity %+v pod %+v", id, id.Pod)
			}

			// A token copied from another pod is worthless here.
			writeToken(t, tokenPath, sign(t, jose.RS256, rsaKey, "rsa-1", kubeClaimsFor(iss, podB)))
			id, err = r.Resolve(ctx, req)
			wantDenied(t, id, err, ReasonOtherPod)

			// The connection was made from another cgroup than the process is in now.
			writeToken(t, tokenPath, sign(t, jose.RS256, rsaKey, "rsa-1", kubeClaimsFor(iss, podA)))
			id, err = r.Resolve(ctx, Request{PID: uint32(w.Process.Pid), CgroupID: cgid + 1})
			wantDenied(t, id, err, ReasonCgroupChanged)
			id, err = r.Resolve(ctx, Request{PID: uint32(w.Process.Pid), CgroupID: cgid + 1, CgroupPath: rel})
			wantDenied(t, id, err, ReasonCgroupChanged)
			if _, err = r.Resolve(ctx, Request{PID: uint32(w.Process.Pid), CgroupID: cgid, CgroupPath: cgdir}); err != nil {
				t.Fatalf("mounted cgroup path form: %v", err)
			}
		})
	}
}

func TestStaticCgroups(t *testing.T) {
	testutil.RequirePrivileged(t)
	top := randName("sqlwarden-test-")
	agents, _ := makeCgroup(t, "/"+top+"/agents")
	one, _ := makeCgroup(t, "/"+top+"/agents/agent-1")
	two, _ := makeCgroup(t, "/"+top+"/agents/agent-2/worker")
	r := newResolver(t, Config{Static: []StaticIdentity{
		{Name: "agents", Cgroup: agents, Backend: "shared"},      // as mounted
		{Name: "agent-1", Cgroup: "/" + top + "/agents/agent-1"}, // hierarchy path
	}})
	w1, w2 := startWorkload(t), startWorkload(t)
	moveInto(t, one, w1.Process.Pid)
	moveInto(t, two, w2.Process.Pid)

	id, err := r.Resolve(context.Background(), Request{PID: uint32(w1.Process.Pid)})
	if err != nil || id.Name != "agent-1" || id.Source != SourceStatic || id.Backend != "" {
		t.Fatalf("agent-1: %+v, %v", id, err)
	}
	id, err = r.Resolve(context.Background(), Request{PID: uint32(w2.Process.Pid)})
	if err != nil || id.Name != "agents" || id.Backend != "shared" {
		t.Fatalf("ancestor binding: %+v, %v", id, err)
	}
	if a := id.Audit(); a.Source != "static" {
		t.Fatalf("audit source %q", a.Source)
	}
}

// TestWorkloadRoot runs the workload chrooted in its own mount namespace. The
// token path goes through an absolute symlink (/var/run -> /run) inside the
// workload's tree, and the daemon's own /run holds a decoy token at the same
// path: only in-root resolution finds the workload's token.
func TestWorkloadRoot(t *testing.T) {
	testutil.RequirePrivileged(t)
	testutil.RequireTool(t, "unshare")
	iss := newTestIssuer(t)
	uniq := randName("sqlwarden-test-")
	root := filepath.Join(t.TempDir(), "root")
	for _, d := range []string{"usr", "run/" + uniq, "var", "secrets"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	for name, target := range map[string]string{"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "var/run": "/run"} {
		os.Symlink(target, filepath.Join(root, name))
	}
	inside := sign(t, jose.RS256, rsaKey, "rsa-1", iss.claims("inside"))
	writeToken(t, filepath.Join(root, "run", uniq, "token"), inside)

	// The daemon's view: a decoy at /run/<uniq>/token and at a host-only path.
	decoy := sign(t, jose.RS256, rsaKey, "rsa-1", iss.claims("decoy"))
	hostDir := filepath.Join("/run", uniq)
	t.Cleanup(func() { os.RemoveAll(hostDir) })
	writeToken(t, filepath.Join(hostDir, "token"), decoy)
	hostOnly := filepath.Join(t.TempDir(), "hostonly", "token")
	writeToken(t, hostOnly, decoy)
	os.Symlink(hostOnly, filepath.Join(root, "escape"))
	os.Symlink(strings.Repeat("../", 20)+strings.TrimPrefix(hostOnly, "/"), filepath.Join(root, "escape-dotdot"))

	// A tmpfs only the workload's mount namespace has, holding its own token.
	script := `mount --rbind /usr "$0/usr" && mount -t tmpfs none "$0/secrets" && printf %s "$TOKEN" > "$0/secrets/token" && exec chroot "$0" /usr/bin/sleep 300`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, root)
	cmd.Env = append(os.Environ(), "TOKEN="+sign(t, jose.ES256, ecKey, "ec-1", iss.claims("mntns")))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := uint32(cmd.Process.Pid)
	testutil.Eventually(t, 10*time.Second, func() error {
		if link, err := os.Readlink("/proc/" + strconv.Itoa(int(pid)) + "/root"); link != root {
			return fmt.Errorf("workload never chrooted: root %q (%v)", link, err)
		}
		return nil
	})

	// The setup is meaningful: a naive read through /proc/PID/root follows the
	// absolute symlink in the daemon's root and gets the decoy.
	naive, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/root/var/run/" + uniq + "/token")
	if err != nil || strings.TrimSpace(string(naive)) != decoy {
		t.Fatalf("naive read: %v, decoy %v", err, strings.TrimSpace(string(naive)) == decoy)
	}

	tests := []struct {
		tokenPath, name, reason string
	}{
		{"/var/run/" + uniq + "/token", "inside", ""},
		{"/secrets/token", "mntns", ""},
		{"/escape", "", ReasonTokenMissing},
		{"/escape-dotdot", "", ReasonTokenMissing},
		{"/../../../../" + strings.TrimPrefix(hostOnly, "/"), "", ReasonTokenMissing},
	}
	for _, tt := range tests {
		t.Run(tt.tokenPath, func(t *testing.T) {
			r := newResolver(t, Config{OIDC: iss.oidcConfig(tt.tokenPath)})
			id, err := r.Resolve(context.Background(), Request{PID: pid})
			if tt.reason != "" {
				wantDenied(t, id, err, tt.reason)
				return
			}
			if err != nil || id.Name != tt.name {
				t.Fatalf("got %+v, %v; want %s", id, err, tt.name)
			}
		})
	}
}
