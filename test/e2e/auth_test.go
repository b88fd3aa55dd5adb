package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gm "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// sha2Result is what the proxy answered a raw caching_sha2_password login.
type sha2Result struct {
	fast bool              // 0x01 0x03: fast authentication succeeded
	full bool              // 0x01 0x04: the proxy wants the password itself
	err  *wire.ServerError // ERR (after the cleartext attempt, for full)
}

// rawSHA2Login logs in with caching_sha2_password by hand, so the test sees
// which path (fast or full) the proxy took. On a full-auth request it sends
// the password in clear over plain TCP, which the proxy must refuse.
func rawSHA2Login(t *testing.T, addr, user, pass string) sha2Result {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := wire.NewConn(nc, 0)
	g, seq, err := c.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	scramble, plugin := parseGreeting(t, g)
	if plugin != gm.AUTH_CACHING_SHA2_PASSWORD {
		t.Fatalf("greeting offers %q, want caching_sha2_password", plugin)
	}
	caps := uint32(gm.CLIENT_PROTOCOL_41 | gm.CLIENT_SECURE_CONNECTION | gm.CLIENT_PLUGIN_AUTH | gm.CLIENT_LONG_PASSWORD |
		gm.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA)
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, caps)
	b = binary.LittleEndian.AppendUint32(b, 1<<24)
	b = append(b, 45)
	b = append(b, make([]byte, 23)...)
	b = append(b, user...)
	b = append(b, 0)
	b = wire.AppendLenEncString(b, gm.CalcCachingSha2Password(scramble, pass))
	b = append(b, gm.AUTH_CACHING_SHA2_PASSWORD...)
	b = append(b, 0)
	c.Seq = seq + 1
	if err := c.WritePacket(b); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	p, seq, err := c.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	var r sha2Result
	switch {
	case len(p) == 2 && p[0] == 0x01 && p[1] == 0x03:
		r.fast = true
	case len(p) == 2 && p[0] == 0x01 && p[1] == 0x04:
		r.full = true
		c.Seq = seq + 1
		if err := c.WritePacket(append([]byte(pass), 0)); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	case p[0] == wire.ErrHeader:
		r.err, _ = wire.ParseErr(p)
		return r
	default:
		t.Fatalf("unexpected auth reply % x", p)
	}
	p, _, err = c.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	switch p[0] {
	case wire.OKHeader:
	case wire.ErrHeader:
		r.err, _ = wire.ParseErr(p)
	default:
		t.Fatalf("unexpected packet after auth % x", p)
	}
	return r
}

// parseGreeting returns the 20-byte nonce and the offered plugin.
func parseGreeting(t *testing.T, g []byte) ([]byte, string) {
	t.Helper()
	if len(g) < 1 || g[0] != 10 {
		t.Fatalf("greeting % x", g)
	}
	end := 1
	for end < len(g) && g[end] != 0 {
		end++
	}
	pos := end + 1 + 4 // version NUL, connection id
	scramble := append([]byte(nil), g[pos:pos+8]...)
	pos += 8 + 1 + 2 + 1 + 2 + 2 // part 1, filler, caps low, charset, status, caps high
	authLen := int(g[pos])
	pos += 1 + 10
	n := max(13, authLen-8)
	scramble = append(scramble, g[pos:pos+n-1]...) // drop the trailing NUL
	pos += n
	plugin, _, _ := strings.Cut(string(g[pos:]), "\x00")
	return scramble, plugin
}

func TestCachingSha2TowardClient(t *testing.T) {
	certDir := t.TempDir()
	cert, key := writeCert(t, certDir)
	ids := fmt.Sprintf("  clients:\n    - user: %s\n      password: %s\n      name: %s\n    - user: agent2\n      password: second-secret\n      name: agent-two\n",
		harness.ClientUser, harness.ClientPassword, harness.Identity)
	d := harness.Start(t, harness.Options{Identities: ids,
		Extra: fmt.Sprintf("client_auth_plugin: caching_sha2_password\ntls:\n  cert_file: %s\n  key_file: %s\n", cert, key)})

	// Nothing cached yet: full authentication, and a cleartext password
	// over plain TCP is refused.
	r := rawSHA2Login(t, d.Listen, harness.ClientUser, harness.ClientPassword)
	if !r.full || r.err == nil || r.err.Code != wire.ErrCodeAccessDenied {
		t.Fatalf("first login without TLS sending cleartext: %+v", r)
	}

	// go-sql-driver: full authentication with the RSA public key (no TLS).
	pool := x509.NewCertPool()
	pemBytes, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pemBytes)
	if err := gomysql.RegisterTLSConfig("sqlwarden-sha2", &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	query := func(dsn, q string) string {
		t.Helper()
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var v string
		if err := db.QueryRow(q).Scan(&v); err != nil {
			t.Fatalf("%s via %s: %v", q, dsn, err)
		}
		return v
	}
	rsaDSN := fmt.Sprintf("%s:%s@tcp(%s)/?allowNativePasswords=false", harness.ClientUser, harness.ClientPassword, d.Listen)
	if v := query(rsaDSN, "SELECT 'sha2-rsa'"); v != "sha2-rsa" {
		t.Fatalf("got %q", v)
	}
	// Now cached: fast authentication, and a wrong password fails it.
	if r := rawSHA2Login(t, d.Listen, harness.ClientUser, harness.ClientPassword); !r.fast || r.err != nil {
		t.Fatalf("second login: %+v, want fast auth", r)
	}
	if r := rawSHA2Login(t, d.Listen, harness.ClientUser, "wrong"); r.err == nil || r.err.Code != wire.ErrCodeAccessDenied {
		t.Fatalf("wrong password: %+v", r)
	}
	if v := query(rsaDSN, "SELECT 'sha2-fast'"); v != "sha2-fast" {
		t.Fatalf("got %q", v)
	}

	// agent2: full authentication over TLS (the password in clear, inside TLS).
	tlsDSN := fmt.Sprintf("agent2:second-secret@tcp(%s)/?allowNativePasswords=false&tls=sqlwarden-sha2", d.Listen)
	if v := query(tlsDSN, "SELECT 'sha2-tls'"); v != "sha2-tls" {
		t.Fatalf("got %q", v)
	}
	if r := rawSHA2Login(t, d.Listen, "agent2", "second-secret"); !r.fast || r.err != nil {
		t.Fatalf("agent2 after TLS full auth: %+v, want fast auth", r)
	}

	recs := d.WaitOutcomes(t)
	starts := map[string]*record.Record{}
	denied := 0
	for _, r := range recs {
		switch r.Event {
		case record.EventSessionStart:
			starts[r.SessionID] = r
		case record.EventSessionDenied:
			denied++
		}
	}
	if denied != 2 {
		t.Errorf("%d session.denied records, want 2 (cleartext without TLS, wrong password)", denied)
	}
	for q, want := range map[string]struct {
		id  string
		tls bool
	}{"SELECT 'sha2-rsa'": {harness.Identity, false}, "SELECT 'sha2-fast'": {harness.Identity, false}, "SELECT 'sha2-tls'": {"agent-two", true}} {
		st, out := harness.Pair(t, recs, q)
		s := starts[st.SessionID]
		if s == nil || s.Identity.Name != want.id || s.Client.TLS != want.tls || out.Status != record.StatusSuccess {
			t.Errorf("%s: session.start %+v outcome %+v", q, s, out)
		}
	}
}

// sha2Backend is a MySQL-8-style backend (go-mysql's server package) that
// requires caching_sha2_password, with an RSA key for full authentication
// without TLS and a certificate for TLS.
type sha2Backend struct {
	addr     string
	certFile string
	keyFile  string // its RSA public key (PEM)
	mu       sync.Mutex
	queries  []string
	tlsConns int
	conns    int
	probes   int
}

type sha2Handler struct {
	server.EmptyHandler
	b *sha2Backend
}

func (h sha2Handler) UseDB(string) error { return nil }

func (h sha2Handler) HandleQuery(q string) (*gm.Result, error) {
	if strings.HasPrefix(q, "SELECT @@session.sql_mode") {
		// What the proxy reads at login: how the session's SQL is lexed.
		rs, err := gm.BuildSimpleTextResultset([]string{"sql_mode", "character_set_client"},
			[][]any{{"ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION", "utf8mb4"}})
		if err != nil {
			return nil, err
		}
		return gm.NewResult(rs), nil
	}
	h.b.mu.Lock()
	h.b.queries = append(h.b.queries, q)
	h.b.mu.Unlock()
	v := strings.Trim(strings.TrimPrefix(q, "SELECT "), "'")
	rs, err := gm.BuildSimpleTextResultset([]string{"v"}, [][]any{{v}})
	if err != nil {
		return nil, err
	}
	return gm.NewResult(rs), nil
}

type cachingProvider struct{ *server.InMemoryProvider }

func startSha2Backend(t *testing.T, user, pass string) *sha2Backend {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mysql8"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	dir := t.TempDir()
	b := &sha2Backend{certFile: filepath.Join(dir, "mysql8.crt"), keyFile: filepath.Join(dir, "mysql8.pub")}
	if err := os.WriteFile(b.certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.keyFile, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv := server.NewServer("8.0.36-gomysql", gm.DEFAULT_COLLATION_ID, gm.AUTH_CACHING_SHA2_PASSWORD, pubPEM, tc)
	mem := server.NewInMemoryProvider()
	mem.AddUser(user, pass)
	// Wrapped: go-mysql verifies an InMemoryProvider's users by fast
	// authentication only; any other provider gets MySQL 8's cache, with a
	// full authentication at each user's first login.
	prov := cachingProvider{mem}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	b.addr = ln.Addr().String()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				sc, err := srv.NewCustomizedConn(nc, prov, sha2Handler{b: b})
				if err != nil {
					t.Logf("mysql8 backend handshake: %v", err)
					return
				}
				_, isTLS := sc.Conn.Conn.(*tls.Conn)
				b.mu.Lock()
				if sc.Attributes()["program_name"] == "sqlwarden-version-probe" {
					b.probes++
				} else {
					b.conns++
				}
				if isTLS && sc.Attributes()["program_name"] != "sqlwarden-version-probe" {
					b.tlsConns++
				}
				b.mu.Unlock()
				for !sc.Closed() {
					if err := sc.HandleCommand(); err != nil {
						return
					}
				}
			}()
		}
	}()
	return b
}

// TestCachingSha2Backend: the proxy logs into a backend that requires
// caching_sha2_password, by full authentication (without TLS, the password
// encrypted with the server's configured RSA key; cleartext inside TLS with
// the backend's certificate verified against the configured CA), then by
// fast authentication once the backend caches. Without TLS and without a
// configured key the login is refused: a key the server sends in
// plaintext could be anyone's, and the password with it.
func TestCachingSha2Backend(t *testing.T) {
	b := startSha2Backend(t, "sha2user", "sha2-pass")
	fresh := startSha2Backend(t, "sha2user", "sha2-pass") // nothing cached: every login is a full one
	backends := fmt.Sprintf("  - name: plain\n    address: %s\n    user: sha2user\n    password: sha2-pass\n    server_public_key_file: %s\n"+
		"  - name: secure\n    address: %s\n    user: sha2user\n    password: sha2-pass\n    tls:\n      enabled: true\n      ca_file: %s\n"+
		"  - name: unpinned\n    address: %s\n    user: sha2user\n    password: sha2-pass\n",
		b.addr, b.keyFile, b.addr, b.certFile, fresh.addr)
	ids := fmt.Sprintf("  clients:\n    - user: %s\n      password: %s\n      name: %s\n      backend: plain\n"+
		"    - user: agent2\n      password: second-secret\n      name: agent-two\n      backend: secure\n"+
		"    - user: agent3\n      password: third-secret\n      name: agent-three\n      backend: unpinned\n",
		harness.ClientUser, harness.ClientPassword, harness.Identity)
	d := harness.Start(t, harness.Options{Backends: backends, Identities: ids})

	// No TLS, no key: refused before a password leaves the daemon.
	if _, err := client.Connect(d.Listen, "agent3", "third-secret", ""); err == nil ||
		!strings.Contains(err.Error(), "full authentication without TLS needs the server's public key (server_public_key_file)") {
		t.Fatalf("login to a backend asking for full authentication without TLS or a key: %v", err)
	}

	// Before any client session reached it, the proxy learned the backend's
	// version (a probe at start) and greets with it.
	var greeting string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		nc, err := net.DialTimeout("tcp", d.Listen, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		g, _, err := wire.NewConn(nc, 0).ReadPacket()
		nc.Close()
		if err != nil {
			t.Fatal(err)
		}
		greeting, _, _ = strings.Cut(string(g[1:]), "\x00")
		if greeting == "8.0.36-gomysql" {
			break
		}
	}
	if greeting != "8.0.36-gomysql" {
		t.Fatalf("greeting version %q, want the backend's 8.0.36-gomysql", greeting)
	}

	for i, u := range []struct{ user, pass, tag string }{
		{harness.ClientUser, harness.ClientPassword, "rsa"}, {harness.ClientUser, harness.ClientPassword, "rsa-again"},
		{"agent2", "second-secret", "tls"}, {"agent2", "second-secret", "tls-again"},
	} {
		c, err := client.Connect(d.Listen, u.user, u.pass, "")
		if err != nil {
			t.Fatalf("connect %d (%s): %v\n", i, u.tag, err)
		}
		if c.GetServerVersion() != "8.0.36-gomysql" {
			t.Errorf("greeting version %q does not mirror the backend's", c.GetServerVersion())
		}
		r, err := c.Execute("SELECT 'via-" + u.tag + "'")
		if err != nil {
			t.Fatalf("query %s: %v", u.tag, err)
		}
		if v, _ := r.GetString(0, 0); v != "via-"+u.tag {
			t.Fatalf("query %s: got %q", u.tag, v)
		}
		c.Close()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conns != 4 || b.tlsConns != 2 || b.probes != 1 {
		t.Errorf("backend saw %d sessions, %d over TLS, %d version probes; want 4, 2 and 1", b.conns, b.tlsConns, b.probes)
	}
	recs := d.WaitOutcomes(t)
	st, out := harness.Pair(t, recs, "SELECT 'via-tls'")
	if out.Status != record.StatusSuccess || *out.Rows != 1 {
		t.Errorf("outcome %+v", out)
	}
	for _, r := range recs {
		if r.Event == record.EventSessionStart && r.SessionID == st.SessionID {
			if r.Backend == nil || r.Backend.Name != "secure" || r.Backend.User != "sha2user" || r.Backend.Address != b.addr {
				t.Errorf("session.start backend %+v", r.Backend)
			}
			return
		}
	}
	t.Error("no session.start for the TLS backend session")
}

// TestTLSPolicies: require_tls refuses a plaintext client with ER_SECURE_TRANSPORT_REQUIRED;
// toward the backend the certificate is verified against ca_file, and
// skip_verify is needed (and enough) to accept one signed by another CA.
func TestTLSPolicies(t *testing.T) {
	b := startSha2Backend(t, "sha2user", "sha2-pass")
	certDir := t.TempDir()
	cert, key := writeCert(t, certDir) // the proxy's client-facing cert: not the backend's CA
	backends := fmt.Sprintf("  - name: wrongca\n    address: %s\n    user: sha2user\n    password: sha2-pass\n    tls:\n      enabled: true\n      ca_file: %s\n"+
		"  - name: skipverify\n    address: %s\n    user: sha2user\n    password: sha2-pass\n    tls:\n      enabled: true\n      skip_verify: true\n",
		b.addr, cert, b.addr)
	ids := fmt.Sprintf("  clients:\n    - user: %s\n      password: %s\n      name: %s\n      backend: wrongca\n"+
		"    - user: agent2\n      password: second-secret\n      name: agent-two\n      backend: skipverify\n",
		harness.ClientUser, harness.ClientPassword, harness.Identity)
	d := harness.Start(t, harness.Options{Backends: backends, Identities: ids,
		Extra: fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\n  require_tls: true\n", cert, key)})

	pool := x509.NewCertPool()
	pemBytes, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pemBytes)
	if err := gomysql.RegisterTLSConfig("sqlwarden-policies", &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	open := func(user, pass, params string) error {
		db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/?%s", user, pass, d.Listen, params))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var v string
		return db.QueryRow("SELECT 'tls-policy'").Scan(&v)
	}
	var me *gomysql.MySQLError
	if err := open("agent2", "second-secret", "tls=false"); !errors.As(err, &me) || me.Number != wire.ErrCodeTLSRequired {
		t.Fatalf("plaintext client with require_tls: %v, want ERR %d", err, wire.ErrCodeTLSRequired)
	}
	if err := open("agent2", "second-secret", "tls=sqlwarden-policies"); err != nil {
		t.Fatalf("TLS client, skip_verify backend: %v", err)
	}
	err := open(harness.ClientUser, harness.ClientPassword, "tls=sqlwarden-policies")
	if !errors.As(err, &me) || !strings.Contains(me.Message, "certificate") {
		t.Fatalf("backend with a certificate from another CA: %v, want a certificate error", err)
	}
	b.mu.Lock()
	queries := strings.Join(b.queries, ",")
	b.mu.Unlock()
	if queries != "SELECT 'tls-policy'" {
		t.Fatalf("backend ran %q; only the skip_verify session should reach it", queries)
	}
	var reasons []string
	for _, r := range d.WaitOutcomes(t) {
		if r.Event == record.EventSessionDenied {
			reasons = append(reasons, r.Reason)
		}
	}
	if len(reasons) != 2 || !strings.Contains(reasons[0], "TLS is required") || !strings.Contains(reasons[1], "certificate") {
		t.Fatalf("session.denied reasons %q", reasons)
	}
}

// TestEd25519Backend: a MariaDB account that authenticates with ed25519;
// the proxy's backend login answers whatever plugin the backend asks for.
func TestEd25519Backend(t *testing.T) {
	m := testutil.StartMariaDB(t)
	root := m.Open(t, "")
	var n int
	if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519' AND PLUGIN_STATUS = 'ACTIVE'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		mustExec(t, root, "INSTALL SONAME 'auth_ed25519'")
	}
	mustExec(t, root, "DROP USER IF EXISTS 'sw_ed'@'%'")
	mustExec(t, root, "CREATE USER 'sw_ed'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-secret')")
	mustExec(t, root, "GRANT SELECT ON *.* TO 'sw_ed'@'%'")
	d := harness.Start(t, harness.Options{Backends: fmt.Sprintf("  - name: default\n    address: %s\n    user: sw_ed\n    password: ed-secret\n", m.Addr)})
	c, err := client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Execute("SELECT CURRENT_USER()")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := r.GetString(0, 0); v != "sw_ed@%" {
		t.Fatalf("backend user %q", v)
	}
	var plugin string
	if err := root.QueryRow("SELECT plugin FROM mysql.user WHERE user = 'sw_ed'").Scan(&plugin); err != nil || plugin != "ed25519" {
		t.Fatalf("account plugin %q %v", plugin, err)
	}
}
