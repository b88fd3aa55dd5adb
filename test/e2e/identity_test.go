package e2e

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	gomysql "github.com/go-sql-driver/mysql"
	"golang.org/x/sys/unix"

	"github.com/sqlwarden/sqlwarden/internal/testoidc"
	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// The identity tests run the real daemon with the real eBPF redirect and a
// real OIDC issuer on loopback TLS. Every workload is a process in an
// enrolled cgroup with a private mount namespace, in which its own token
// directory is bind-mounted over token_path's directory: the daemon must
// read the token through /proc/PID/root to see the right one.

const idAudience = "sqlwarden"

var (
	idTraceparent   = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	idTraceID       = "4bf92f3577b34da6a3ce929d0e0e4736"
	idDeniedMessage = "ERROR 1045 (28000): sqlwarden: no verified workload identity: "
	// The issuer's keys (internal/testoidc): RSA and EC are published, Rogue never is.
	idRSA, idRogue, idEC = func() (*rsa.PrivateKey, *rsa.PrivateKey, *ecdsa.PrivateKey) {
		k := testoidc.TestKeys()
		return k.RSA, k.Rogue, k.EC
	}()
)

// e2eIssuer serves OIDC discovery and a JWKS (one RSA, one EC key) over
// loopback TLS; its CA certificate is in caFile.
type e2eIssuer struct {
	*testoidc.Issuer
	url    string
	caFile string
}

func newE2EIssuer(t *testing.T) *e2eIssuer {
	t.Helper()
	iss := testoidc.New(t)
	return &e2eIssuer{Issuer: iss, url: iss.URL, caFile: iss.CAFile}
}

// claims are good claims for sub, with extra merged in (nil deletes a key).
func (iss *e2eIssuer) claims(sub string, extra map[string]any) map[string]any {
	return iss.Claims(sub, idAudience, extra)
}

func signJWT(t *testing.T, alg jose.SignatureAlgorithm, key crypto.Signer, kid string, claims map[string]any) string {
	return testoidc.Sign(t, alg, key, kid, claims)
}

// algNoneJWT is an unsigned token.
func algNoneJWT(claims map[string]any) string { return testoidc.AlgNone(claims) }

// hs256PublicKeyJWT is the key-confusion forgery: HMAC keyed with the
// issuer's public key, which anyone can fetch from the JWKS.
func hs256PublicKeyJWT(t *testing.T, claims map[string]any) string {
	return testoidc.HS256WithPublicKey(t, "rsa-1", claims)
}

// idEnv is a redirect environment whose daemon verifies OIDC tokens.
type idEnv struct {
	*redirectEnv
	iss    *e2eIssuer
	tmp    string
	nsDir  string // token_path's directory, as the host and an unmounted workload see it
	agentB string // a second enrolled cgroup
}

const idTokenFile = "token"

func newIdentityEnv(t *testing.T) *idEnv {
	testutil.RequirePrivileged(t)
	m := testutil.StartMariaDB(t)
	root := m.Open(t, "")
	for _, u := range []string{"warden_a", "warden_b"} {
		for _, q := range []string{
			fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s-pass'", u, u),
			fmt.Sprintf("ALTER USER '%s'@'%%' IDENTIFIED BY '%s-pass'", u, u),
			fmt.Sprintf("GRANT SELECT ON test.* TO '%s'@'%%'", u),
		} {
			if _, err := root.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	iss := newE2EIssuer(t)
	tmp := t.TempDir()
	ie := &idEnv{iss: iss, tmp: tmp, nsDir: filepath.Join(tmp, "ns")}
	if err := os.Mkdir(ie.nsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ids := fmt.Sprintf(`  oidc:
    issuer: %s
    audience: %s
    token_path: %s
    ca_file: %s
    model_claim: model
    tool_call_claim: tool_call
    groups_claim: groups
    backend: default
  rules:
    - name: agent-a
      backend: a
    - name: agent-b
      backend: b
  allow_password_token: true
`, iss.url, idAudience, filepath.Join(ie.nsDir, idTokenFile), iss.caFile)
	backends := fmt.Sprintf(`  - name: default
    address: %[1]s
    user: warden
    password: warden-pass
  - name: a
    address: %[1]s
    user: warden_a
    password: warden_a-pass
  - name: b
    address: %[1]s
    user: warden_b
    password: warden_b-pass
`, m.Addr)
	ie.redirectEnv = newRedirectEnvWith(t, redirectOptions{Identities: ids, Backends: backends})
	ie.agentB = ie.mkCgroups(t, "agent-b")
	ie.cli("enroll", "--cgroup", ie.agentB)
	return ie
}

// mkCgroups creates nested cgroups under the test root and returns the
// deepest; they are removed at cleanup (before the root).
func (ie *idEnv) mkCgroups(t *testing.T, rel ...string) string {
	t.Helper()
	dir := ie.root
	var made []string
	for _, r := range rel {
		dir = filepath.Join(dir, r)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		made = append(made, dir)
	}
	t.Cleanup(func() {
		for i := len(made) - 1; i >= 0; i-- {
			evacuate(made[i], ie.v2)
			if err := os.Remove(made[i]); err != nil {
				t.Logf("remove cgroup %s: %v", made[i], err)
			}
		}
	})
	return dir
}

// tokenDir makes a workload's private token directory holding tok.
func (ie *idEnv) tokenDir(t *testing.T, name, tok string) string {
	t.Helper()
	dir := filepath.Join(ie.tmp, "w-"+name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTokenFile(t, dir, tok)
	return dir
}

// writeTokenFile replaces dir/token atomically, as kubelet rotates tokens.
func writeTokenFile(t *testing.T, dir, tok string) {
	t.Helper()
	tmp := filepath.Join(dir, ".token.tmp")
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, idTokenFile)); err != nil {
		t.Fatal(err)
	}
}

// workload runs argv in cgroup cg, in a private mount namespace where src
// (if not "") is bind-mounted over token_path's directory.
func (ie *idEnv) workload(cg, src string, argv ...string) *exec.Cmd {
	// unshare(1) makes the new namespace's mounts private, so the bind stays
	// inside it. The cgroup is joined last, just before exec.
	script := `mount --make-rprivate / && { [ -z "$1" ] || mount --bind "$1" "$2"; } && echo $$ > "$0/cgroup.procs" && shift 2 && exec "$@"`
	return exec.Command("unshare", append([]string{"-m", "sh", "-c", script, cg, src, ie.nsDir}, argv...)...)
}

// mariadb runs the CLI as a workload toward the original destination and
// returns its output and pid (unshare and sh exec, so the pid is the
// client's).
func (ie *idEnv) mariadb(cg, src, user, pass, query string, flags ...string) (string, uint32, error) {
	h, p, _ := net.SplitHostPort(ie.orig)
	argv := append([]string{"mariadb", "-h", h, "-P", p, "-u", user, "-p" + pass,
		"--skip-ssl", "--connect-timeout=5", "--batch", "--skip-column-names"}, flags...)
	argv = append(argv, "-e", query)
	cmd := ie.workload(cg, src, argv...)
	out, err := cmd.CombinedOutput()
	var pid uint32
	if cmd.Process != nil {
		pid = uint32(cmd.Process.Pid)
	}
	return string(out), pid, err
}

func (ie *idEnv) recordFor(t *testing.T, event string, pid uint32) *record.Record {
	t.Helper()
	return ie.d.WaitFor(t, fmt.Sprintf("%s of pid %d", event, pid), func(r *record.Record) bool {
		return r.Event == event && r.Workload != nil && r.Workload.PID == pid
	})
}

// wantRefused checks the client got ERR 1045 with reason and that the
// connection's session.denied record says the same.
func (ie *idEnv) wantRefused(t *testing.T, out string, pid uint32, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want refusal %q, the client succeeded:\n%s", reason, out)
	}
	if !strings.Contains(out, idDeniedMessage+reason+"\n") && !strings.HasSuffix(strings.TrimSpace(out), idDeniedMessage+reason) {
		t.Errorf("client output %q, want %q", out, idDeniedMessage+reason)
	}
	rec := ie.recordFor(t, record.EventSessionDenied, pid)
	if rec.Reason != reason {
		t.Errorf("session.denied reason %q, want %q", rec.Reason, reason)
	}
	if rec.Workload.Cgroup == "" || rec.Workload.CgroupID == 0 {
		t.Errorf("session.denied workload %+v", rec.Workload)
	}
}

// wantAccepted checks out and returns the session.start record.
func (ie *idEnv) wantAccepted(t *testing.T, out string, pid uint32, err error, want string) *record.Record {
	t.Helper()
	if err != nil || strings.TrimSpace(out) != want {
		t.Fatalf("want %q, got %v:\n%s", want, err, out)
	}
	return ie.recordFor(t, record.EventSessionStart, pid)
}

// statementOf returns the statement record of session containing sub.
func (ie *idEnv) statementOf(t *testing.T, session, sub string) *record.Record {
	t.Helper()
	return ie.d.WaitFor(t, "statement "+sub, func(r *record.Record) bool {
		return r.Event == record.EventStatement && r.SessionID == session && strings.Contains(r.SQL, sub)
	})
}

func wantAttributed(t *testing.T, what string, got *record.Attributed, value, source string) {
	t.Helper()
	if got == nil || got.Value != value || got.Source != source {
		t.Errorf("attribution %s = %+v, want {%s %s}", what, got, value, source)
	}
}

func TestIdentityOIDCRefusals(t *testing.T) {
	ie := newIdentityEnv(t)
	iss := ie.iss
	good := func(extra map[string]any) map[string]any { return iss.claims("agent-a", extra) }
	now := time.Now()

	// A positive control in the same shape, so every refusal below is the token's fault.
	dir := ie.tokenDir(t, "control", signJWT(t, jose.RS256, idRSA, "rsa-1", good(nil)))
	out, pid, err := ie.mariadb(ie.agent, dir, "whoever", "not-the-password", "SELECT 'control'")
	ie.wantAccepted(t, out, pid, err, "control")

	cases := []struct {
		name, token, reason string
	}{
		{"expired", signJWT(t, jose.RS256, idRSA, "rsa-1", good(map[string]any{
			"iat": now.Add(-2 * time.Hour).Unix(), "nbf": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()})), "token expired"},
		{"not-yet-valid", signJWT(t, jose.RS256, idRSA, "rsa-1", good(map[string]any{
			"nbf": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()})), "token not yet valid"},
		{"wrong-audience", signJWT(t, jose.RS256, idRSA, "rsa-1", good(map[string]any{"aud": []string{"some-other-service"}})), "wrong audience"},
		{"wrong-issuer", signJWT(t, jose.RS256, idRSA, "rsa-1", good(map[string]any{"iss": "https://issuer.invalid"})), "wrong issuer"},
		{"alg-none", algNoneJWT(good(nil)), "unsupported algorithm none"},
		{"hs256-public-key", hs256PublicKeyJWT(t, good(nil)), "unsupported algorithm HS256"},
		{"unknown-key", signJWT(t, jose.RS256, idRogue, "rogue-1", good(nil)), "unknown signing key"},
		{"forged-known-kid", signJWT(t, jose.RS256, idRogue, "rsa-1", good(nil)), "signature invalid"},
		{"no-expiry", signJWT(t, jose.ES256, idEC, "ec-1", good(map[string]any{"exp": nil})), "token has no expiry"},
		{"garbage", "not-a-jwt", "token malformed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := ie.tokenDir(t, c.name, c.token)
			out, pid, err := ie.mariadb(ie.agent, dir, "whoever", "not-the-password", "SELECT 'must-not-run'")
			ie.wantRefused(t, out, pid, err, c.reason)
		})
	}

	t.Run("missing-file", func(t *testing.T) {
		// No bind mount: the workload sees token_path's directory empty.
		// It even types the backend's real user and password.
		out, pid, err := ie.mariadb(ie.agent, "", "warden", "warden-pass", "SELECT 'must-not-run'")
		ie.wantRefused(t, out, pid, err, "token file missing")
	})
	t.Run("unreadable-file", func(t *testing.T) {
		// A directory where the token should be: root reads mode 000 files,
		// but no one reads a directory as a token.
		dir := filepath.Join(ie.tmp, "w-unreadable")
		if err := os.MkdirAll(filepath.Join(dir, idTokenFile), 0o755); err != nil {
			t.Fatal(err)
		}
		out, pid, err := ie.mariadb(ie.agent, dir, "whoever", "x", "SELECT 'must-not-run'")
		ie.wantRefused(t, out, pid, err, "token file unreadable")
	})
	t.Run("fifo", func(t *testing.T) {
		// A FIFO planted at the path must neither hang the daemon nor pass.
		dir := filepath.Join(ie.tmp, "w-fifo")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mkfifo(filepath.Join(dir, idTokenFile), 0o644); err != nil {
			t.Fatal(err)
		}
		out, pid, err := ie.mariadb(ie.agent, dir, "whoever", "x", "SELECT 'must-not-run'")
		ie.wantRefused(t, out, pid, err, "token file unreadable")
	})
	t.Run("symlink-escape", func(t *testing.T) {
		// An absolute symlink is resolved inside the workload's root: it
		// cannot make the daemon read a good token the workload cannot see.
		outside := filepath.Join(ie.tmp, "daemon-only")
		if err := os.Mkdir(outside, 0o700); err != nil {
			t.Fatal(err)
		}
		writeTokenFile(t, outside, signJWT(t, jose.RS256, idRSA, "rsa-1", good(nil)))
		dir := filepath.Join(ie.tmp, "w-symlink")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/proc/1/root"+filepath.Join(outside, idTokenFile), filepath.Join(dir, idTokenFile)); err != nil {
			t.Fatal(err)
		}
		out, pid, err := ie.mariadb(ie.agent, dir, "whoever", "x", "SELECT 'must-not-run'")
		if err == nil || !strings.Contains(out, "1045") {
			t.Fatalf("a symlink through /proc/1/root was followed: %v\n%s", err, out)
		}
		if rec := ie.recordFor(t, record.EventSessionDenied, pid); !strings.HasPrefix(rec.Reason, "token file") {
			t.Errorf("reason %q", rec.Reason)
		}
	})
	t.Run("process-gone", func(t *testing.T) { ie.processGone(t) })

	// The guard never saw a connection: every refusal came from the proxy.
	if n := ie.guard.count.Load(); n != 0 {
		t.Errorf("%d connections reached the original destination directly", n)
	}
	// None of the refused statements reached the database or the journal.
	for _, r := range ie.d.Records(t) {
		if r.Event == record.EventStatement && strings.Contains(r.SQL, "must-not-run") {
			t.Errorf("a refused connection's statement was audited: %+v", r)
		}
	}
}

// processGone connects from a workload with a valid token, takes a copy of
// its socket (pidfd_getfd), lets the workload exit and is reaped, then
// completes the MySQL handshake on the copy: the connecting process is gone
// when the proxy looks it up.
func (ie *idEnv) processGone(t *testing.T) {
	dir := ie.tokenDir(t, "gone", signJWT(t, jose.RS256, idRSA, "rsa-1", ie.iss.claims("agent-a", nil)))
	h, p, _ := net.SplitHostPort(ie.orig)
	cmd := ie.workload(ie.agent, dir, "bash", "-c", `exec 3<>"/dev/tcp/$0/$1" && echo ready && read -r _`, h, p)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("workload: %q %v", line, err)
	}
	pid := cmd.Process.Pid
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.PidfdGetfd(pidfd, 3, 0)
	unix.Close(pidfd)
	if err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Logf("workload exit: %v", err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("workload %d still in /proc: %v", pid, err)
	}
	f := os.NewFile(uintptr(fd), "handoff")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	gomysql.RegisterDialContext("handoff", func(ctx context.Context, addr string) (net.Conn, error) {
		var c net.Conn
		once.Do(func() { c = conn })
		if c == nil {
			return nil, errors.New("the handed-off connection was used already")
		}
		return c, nil
	})
	db, err := sql.Open("mysql", "whoever:x@handoff(gone)/?timeout=5s")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Ping()
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1045 || me.Message != "sqlwarden: no verified workload identity: process gone" {
		t.Fatalf("handshake after the workload exited: %v", err)
	}
	if rec := ie.recordFor(t, record.EventSessionDenied, uint32(pid)); rec.Reason != "process gone" {
		t.Errorf("session.denied reason %q, want %q", rec.Reason, "process gone")
	}
}

func TestIdentityOIDCAccepted(t *testing.T) {
	ie := newIdentityEnv(t)
	iss := ie.iss

	t.Run("two-workloads-two-backend-users", func(t *testing.T) {
		dirA := ie.tokenDir(t, "a", signJWT(t, jose.RS256, idRSA, "rsa-1", iss.claims("agent-a", map[string]any{"groups": []string{"agents", "readers"}})))
		dirB := ie.tokenDir(t, "b", signJWT(t, jose.ES256, idEC, "ec-1", iss.claims("agent-b", nil)))
		// Both type a wrong DSN user and password; the database sees
		// the daemon's credential for each identity.
		outA, pidA, errA := ie.mariadb(ie.agent, dirA, "whoever", "not-the-password", "SELECT CURRENT_USER()")
		outB, pidB, errB := ie.mariadb(ie.agentB, dirB, "whoever", "wrong-too", "SELECT CURRENT_USER()")
		stA := ie.wantAccepted(t, outA, pidA, errA, "warden_a@%")
		stB := ie.wantAccepted(t, outB, pidB, errB, "warden_b@%")
		for _, c := range []struct {
			st            *record.Record
			name, user    string
			backend, cgrp string
		}{{stA, "agent-a", "warden_a", "a", "/agent"}, {stB, "agent-b", "warden_b", "b", "/agent-b"}} {
			id := c.st.Identity
			if id == nil || id.Name != c.name || id.Source != "oidc" || id.Subject != c.name || id.Issuer != iss.url {
				t.Errorf("%s: identity %+v", c.name, id)
			}
			if c.st.Backend == nil || c.st.Backend.Name != c.backend || c.st.Backend.User != c.user {
				t.Errorf("%s: backend %+v", c.name, c.st.Backend)
			}
			if c.st.Client == nil || c.st.Client.User != "whoever" {
				t.Errorf("%s: client %+v (the DSN user is recorded)", c.name, c.st.Client)
			}
			if !strings.HasSuffix(c.st.Workload.Cgroup, c.cgrp) {
				t.Errorf("%s: workload cgroup %q", c.name, c.st.Workload.Cgroup)
			}
		}
		if g := stA.Identity.Groups; len(g) != 2 || g[0] != "agents" || g[1] != "readers" {
			t.Errorf("groups %v", g)
		}
		// The agent's DSN password never reaches the journal.
		raw, _ := json.Marshal(ie.d.Records(t))
		if strings.Contains(string(raw), "not-the-password") {
			t.Error("the DSN password is in the journal")
		}
	})

	t.Run("own-network-namespace", func(t *testing.T) {
		// A pod-like workload: its own netns behind a veth; its database
		// "lives" at the host end, an address this test assigns.
		ns, hostIP, peerIP := newPodNetns(t)
		orig := net.JoinHostPort(hostIP, "3306")
		guard := newGuard(t, orig)

		dir := ie.tokenDir(t, "netns", signJWT(t, jose.ES256, idEC, "ec-1", iss.claims("agent-b", nil)))
		// The cgroup is joined before `ip netns exec`, which remounts /sys;
		// its private mount namespace inherits the token's bind mount.
		cmd := ie.workload(ie.agentB, dir, "ip", "netns", "exec", ns, "mariadb", "-h", hostIP, "-P", "3306",
			"-u", "whoever", "-pwrong", "--skip-ssl", "--connect-timeout=5", "--batch", "--skip-column-names", "-e", "SELECT CURRENT_USER()")
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "warden_b@%" {
			t.Fatalf("workload in its own netns: %v\n%s", err, out)
		}
		if guard.count.Load() != 0 {
			t.Fatal("the netns connection reached its original destination directly")
		}
		st := ie.d.WaitFor(t, "netns session.start", func(r *record.Record) bool {
			return r.Event == record.EventSessionStart && r.Destination == orig
		})
		if st.Identity == nil || st.Identity.Name != "agent-b" || st.Workload.Netns == 0 || !strings.HasPrefix(st.Client.Addr, peerIP+":") {
			t.Errorf("netns session.start: identity %+v workload %+v client %+v", st.Identity, st.Workload, st.Client)
		}
	})

	t.Run("rotation", func(t *testing.T) {
		// One long-lived client process: it reconnects after its token file
		// was rotated, and the new token (new claims) binds the new session.
		dir := ie.tokenDir(t, "rot", signJWT(t, jose.RS256, idRSA, "rsa-1", iss.claims("agent-a", map[string]any{"tool_call": "call-1"})))
		h, p, _ := net.SplitHostPort(ie.orig)
		cmd := ie.workload(ie.agent, dir, "mariadb", "-h", h, "-P", p, "-u", "whoever", "-pwrong",
			"--skip-ssl", "--connect-timeout=5", "--batch", "--skip-column-names", "--unbuffered")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		rd := bufio.NewReader(stdout)
		fmt.Fprintln(stdin, "SELECT CONCAT('rot-', 1);")
		line, err := rd.ReadString('\n')
		if err != nil || line != "rot-1\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("first query: %q %v %s", line, err, stderr.String())
		}
		writeTokenFile(t, dir, signJWT(t, jose.RS256, idRSA, "rsa-1", iss.claims("agent-a", map[string]any{"tool_call": "call-2"})))
		fmt.Fprintln(stdin, "\\r")
		fmt.Fprintln(stdin, "SELECT CONCAT('rot-', 2);")
		stdin.Close()
		rest, _ := io.ReadAll(rd)
		if err := cmd.Wait(); err != nil || !strings.Contains(string(rest), "rot-2") {
			t.Fatalf("after rotation: %v\n%s\n%s", err, rest, stderr.String())
		}
		pid := uint32(cmd.Process.Pid)
		var starts []*record.Record
		for _, r := range ie.d.Records(t) {
			if r.Event == record.EventSessionStart && r.Workload != nil && r.Workload.PID == pid {
				starts = append(starts, r)
			}
		}
		if len(starts) != 2 {
			t.Fatalf("%d sessions for the rotating client, want 2", len(starts))
		}
		for i, st := range starts {
			want := fmt.Sprintf("call-%d", i+1)
			if got := st.Identity.Claims["tool_call"]; got != want {
				t.Errorf("session %d: tool_call claim %v, want %s", i+1, got, want)
			}
			stmt := ie.statementOf(t, st.SessionID, fmt.Sprintf("'rot-', %d", i+1))
			if stmt.Attribution == nil {
				t.Fatalf("session %d: no attribution", i+1)
			}
			wantAttributed(t, "tool_call", stmt.Attribution.ToolCall, want, "claim")
		}
	})

	t.Run("attribution", func(t *testing.T) {
		q := "SELECT 1 /*model='gpt-x',traceparent='" + idTraceparent + "'*/"
		// Without a model claim: the comment is the only source.
		dir := ie.tokenDir(t, "attr-comment", signJWT(t, jose.RS256, idRSA, "rsa-1", iss.claims("agent-a", nil)))
		out, pid, err := ie.mariadb(ie.agent, dir, "whoever", "x", q, "--comments")
		st := ie.wantAccepted(t, out, pid, err, "1")
		stmt := ie.statementOf(t, st.SessionID, "model=")
		if stmt.Attribution == nil {
			t.Fatalf("no attribution on %+v", stmt)
		}
		wantAttributed(t, "model", stmt.Attribution.Model, "gpt-x", "comment")
		wantAttributed(t, "trace_id", stmt.Attribution.TraceID, idTraceID, "comment")

		// A verified model claim wins over what the comment says.
		dir = ie.tokenDir(t, "attr-claim", signJWT(t, jose.RS256, idRSA, "rsa-1", iss.claims("agent-a", map[string]any{"model": "claude-verified"})))
		out, pid, err = ie.mariadb(ie.agent, dir, "whoever", "x", q, "--comments")
		st = ie.wantAccepted(t, out, pid, err, "1")
		stmt = ie.statementOf(t, st.SessionID, "model=")
		if stmt.Attribution == nil {
			t.Fatalf("no attribution on %+v", stmt)
		}
		wantAttributed(t, "model", stmt.Attribution.Model, "claude-verified", "claim")
		wantAttributed(t, "trace_id", stmt.Attribution.TraceID, idTraceID, "comment")
	})

	t.Run("pod-binding", func(t *testing.T) {
		const podUID = "3f9c1a52-7d4e-4b8a-9c61-2e5f0a7b8c9d"
		const otherUID = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
		ctr := ie.mkCgroups(t, "kubepods", "burstable", "pod"+podUID, "ctr")
		ie.cli("enroll", "--cgroup", filepath.Dir(ctr)) // the pod's cgroup covers its containers
		kube := func(uid string) map[string]any {
			return map[string]any{"kubernetes.io": map[string]any{
				"namespace":      "agents",
				"pod":            map[string]any{"name": "agent-7", "uid": uid},
				"serviceaccount": map[string]any{"name": "agent", "uid": "5e0c2f1a-0000-4000-8000-000000000001"},
			}}
		}
		sub := "system:serviceaccount:agents:agent"
		other := ie.tokenDir(t, "pod-other", signJWT(t, jose.RS256, idRSA, "rsa-1", iss.claims(sub, kube(otherUID))))
		out, pid, err := ie.mariadb(ctr, other, "whoever", "x", "SELECT 'must-not-run'")
		ie.wantRefused(t, out, pid, err, "token belongs to another pod")

		own := ie.tokenDir(t, "pod-own", signJWT(t, jose.RS256, idRSA, "rsa-1", iss.claims(sub, kube(podUID))))
		out, pid, err = ie.mariadb(ctr, own, "whoever", "x", "SELECT 'own-pod'")
		st := ie.wantAccepted(t, out, pid, err, "own-pod")
		if p := st.Identity.Pod; p == nil || p.UID != podUID || p.Name != "agent-7" || p.Namespace != "agents" {
			t.Errorf("pod %+v", st.Identity.Pod)
		}
		if st.Identity.Subject != sub || st.Backend.User != "warden" {
			t.Errorf("identity %+v backend %+v", st.Identity, st.Backend)
		}
	})

	t.Run("explicit-token-as-password", func(t *testing.T) {
		tok := signJWT(t, jose.RS256, idRSA, "rsa-1", iss.claims("agent-b", nil))
		open := func(params string) (string, error) {
			db, err := sql.Open("mysql", fmt.Sprintf("tokenuser:%s@tcp(%s)/?timeout=5s&allowCleartextPasswords=true&%s", tok, ie.d.Listen, params))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var u string
			err = db.QueryRow("SELECT CURRENT_USER()").Scan(&u)
			return u, err
		}
		// Over TLS: accepted, and the token's identity picks the backend.
		u, err := open("tls=skip-verify")
		if err != nil || u != "warden_b@%" {
			t.Fatalf("token as password over TLS: %q %v", u, err)
		}
		st := ie.d.WaitFor(t, "explicit session.start", func(r *record.Record) bool {
			return r.Event == record.EventSessionStart && r.Client != nil && r.Client.User == "tokenuser"
		})
		if st.Identity == nil || st.Identity.Name != "agent-b" || st.Identity.Source != "oidc" || !st.Client.TLS {
			t.Errorf("explicit session.start %+v %+v", st.Identity, st.Client)
		}
		// The same without TLS: refused before the token is asked for.
		_, err = open("tls=false")
		var me *gomysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1045 || !strings.Contains(me.Message, "requires TLS") {
			t.Fatalf("token as password without TLS: %v", err)
		}
		den := ie.d.WaitFor(t, "explicit session.denied", func(r *record.Record) bool {
			return r.Event == record.EventSessionDenied && r.Client != nil && r.Client.User == "tokenuser" && !r.Client.TLS
		})
		if !strings.Contains(den.Reason, "requires TLS") || !strings.HasSuffix(me.Message, den.Reason) {
			t.Errorf("reason %q, client message %q", den.Reason, me.Message)
		}
		// A pod-bound token is worthless without a workload to bind it to.
		tok = signJWT(t, jose.RS256, idRSA, "rsa-1", iss.claims("system:serviceaccount:agents:agent", map[string]any{
			"kubernetes.io": map[string]any{"namespace": "agents", "pod": map[string]any{"name": "p", "uid": "3f9c1a52-7d4e-4b8a-9c61-2e5f0a7b8c9d"}}}))
		_, err = open("tls=skip-verify")
		if !errors.As(err, &me) || me.Number != 1045 || !strings.HasSuffix(me.Message, "pod-bound token without a workload process") {
			t.Fatalf("pod-bound token as password: %v", err)
		}
		// The backend's own password, explicitly and over TLS, is no identity.
		db, _ := sql.Open("mysql", fmt.Sprintf("warden:warden-pass@tcp(%s)/?timeout=5s&tls=skip-verify&allowCleartextPasswords=true", ie.d.Listen))
		defer db.Close()
		if err := db.Ping(); !errors.As(err, &me) || me.Number != 1045 {
			t.Fatalf("backend password on the explicit listener: %v", err)
		}
	})
}
