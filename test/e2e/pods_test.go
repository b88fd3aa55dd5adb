package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/host"
	"github.com/sqlwarden/sqlwarden/pkg/k8s"
	"github.com/sqlwarden/sqlwarden/redirect"
)

// TestPodEnrollmentRedirects runs the pod watcher against a fake API server
// with the real eBPF redirect attached at a test-only cgroup: a "container"
// of an annotated pod, started after its pod cgroup appeared, has its
// connect() sent to the proxy with its cgroup as the origin; a container of
// a pod without the annotation connects directly; after the pod is deleted
// its containers connect directly again.
func TestPodEnrollmentRedirects(t *testing.T) {
	testutil.RequirePrivileged(t)
	testutil.RequireTool(t, "bash")
	mount, err := host.CgroupV2Mount()
	if err != nil {
		t.Fatal(err)
	}

	// A private bpffs: pins never touch /sys/fs/bpf.
	bpffs := t.TempDir()
	if err := unix.Mount("bpffs", bpffs, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(bpffs, unix.MNT_DETACH) })
	pinDir := filepath.Join(bpffs, "sqlwarden")

	// The test cgroup where the programs attach (never the machine's root).
	prefix := fmt.Sprintf("/sqlwarden-test-pods-%d-%d", os.Getpid(), rand.IntN(1<<30))
	root := filepath.Join(mount, prefix)
	var made []string
	mkdir := func(dir string) string {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for d := dir; d != mount && d != filepath.Dir(root); d = filepath.Dir(d) {
			if !contains(made, d) {
				made = append(made, d)
			}
		}
		return dir
	}
	mkdir(root)
	t.Cleanup(func() {
		// deepest first
		for changed := true; changed; {
			changed = false
			for i, d := range made {
				if d != "" && os.Remove(d) == nil {
					made[i], changed = "", true
				}
			}
		}
		for _, d := range made {
			if d != "" {
				t.Logf("cgroup left behind: %s", d)
			}
		}
	})

	// The original destination and the proxy, both on loopback.
	orig := podsListen(t, "direct\n", nil)
	origAP := netip.MustParseAddrPort(orig.Addr().String())
	proxyPort := podsFreePort(t)
	r, err := redirect.Open(redirect.Config{
		ProxyAddr:  netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(proxyPort)),
		Ports:      []uint16{origAP.Port()},
		CgroupRoot: root,
		PinDir:     pinDir,
		Log:        slog.New(slog.NewTextHandler(podsLog{t}, nil)),
	})
	if err != nil {
		t.Fatalf("open redirect: %v", err)
	}
	t.Cleanup(func() {
		r.Close()
		if err := redirect.Uninstall(pinDir, netip.Addr{}); err != nil {
			t.Logf("uninstall: %v", err)
		}
	})
	origins := make(chan host.Origin, 16)
	podsListen(t, "proxy\n", func(c net.Conn) {
		o, err := r.Lookup(c.RemoteAddr().(*net.TCPAddr).AddrPort(), c.LocalAddr().(*net.TCPAddr).AddrPort())
		if err == nil {
			origins <- o
		}
	}, fmt.Sprintf("127.0.0.1:%d", proxyPort))

	cs := fake.NewClientset()
	w, err := k8s.New(k8s.Options{Client: cs, NodeName: "node-a", Enroller: r, CgroupMount: mount,
		CgroupPrefix: prefix, PollInterval: 10 * time.Millisecond, Log: slog.New(slog.NewTextHandler(podsLog{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	newPod := func(uid, name string, intercept bool) {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "agents", UID: types.UID(uid)},
			Spec:   corev1.PodSpec{NodeName: "node-a"},
			Status: corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSBurstable}}
		if intercept {
			p.Annotations = map[string]string{k8s.AnnotationIntercept: "true"}
		}
		if _, err := cs.CoreV1().Pods("agents").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	podDir := func(uid string) string {
		return filepath.Join(root, "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"+strings.ReplaceAll(uid, "-", "_")+".slice")
	}

	const agentUID, plainUID = "7a7a7a7a-0000-4000-8000-000000000001", "7a7a7a7a-0000-4000-8000-000000000002"
	newPod(agentUID, "agent", true)
	newPod(plainUID, "plain", false)
	// The kubelet makes the pod cgroups, then a container cgroup in each.
	agentCtr := mkdir(filepath.Join(podDir(agentUID), "cri-containerd-agent.scope"))
	plainCtr := mkdir(filepath.Join(podDir(plainUID), "cri-containerd-plain.scope"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if p, ok := w.PodByUID(agentUID); ok && p.Cgroup == podDir(agentUID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("agent pod not enrolled within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}

	if got := podsDial(t, agentCtr, orig.Addr().String()); got != "proxy" {
		t.Fatalf("annotated pod's container reached %q, want the proxy", got)
	}
	select {
	case o := <-origins:
		if o.Destination != origAP {
			t.Errorf("origin destination = %v, want %v", o.Destination, origAP)
		}
		var st unix.Stat_t
		if err := unix.Stat(agentCtr, &st); err != nil {
			t.Fatal(err)
		}
		if o.CgroupID != st.Ino {
			t.Errorf("origin cgroup id = %d, want the container's %d", o.CgroupID, st.Ino)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("proxy did not look up the connection's origin")
	}
	if got := podsDial(t, plainCtr, orig.Addr().String()); got != "direct" {
		t.Fatalf("plain pod's container reached %q, want the original destination", got)
	}

	if err := cs.CoreV1().Pods("agents").Delete(context.Background(), "agent", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var podIno unix.Stat_t
	if err := unix.Stat(podDir(agentUID), &podIno); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for enrolled := true; enrolled; {
		st, err := r.Status()
		if err != nil {
			t.Fatal(err)
		}
		enrolled = false
		for _, e := range st.Enrolled {
			enrolled = enrolled || e.CgroupID == podIno.Ino
		}
		if enrolled && time.Now().After(deadline) {
			t.Fatal("agent pod still enrolled 5s after deletion")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := podsDial(t, agentCtr, orig.Addr().String()); got != "direct" {
		t.Fatalf("deleted pod's container reached %q, want the original destination", got)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

type podsLog struct{ t *testing.T }

func (l podsLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func podsFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("no free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// podsListen serves greeting to every connection on addr (default: a random
// 127.0.x.y:3306 only this test uses).
func podsListen(t *testing.T, greeting string, onConn func(net.Conn), addr ...string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	if len(addr) > 0 {
		ln, err = net.Listen("tcp", addr[0])
	} else {
		for range 50 {
			a := fmt.Sprintf("127.0.%d.%d:3306", rand.IntN(250), 2+rand.IntN(250))
			if ln, err = net.Listen("tcp", a); err == nil {
				break
			}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if onConn != nil {
				onConn(c)
			}
			_, _ = io.WriteString(c, greeting)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

// podsDial connects to addr from a process in the cgroup dir and returns the
// first line the server sent ("proxy" or "direct").
func podsDial(t *testing.T, dir, addr string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cg, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	cmd := exec.Command("bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s && head -n1 <&3", host, port))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dial %s from %s: %v\n%s", addr, dir, err, out)
	}
	return strings.TrimSpace(string(out))
}
