package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// The client matrix: every client library an agent is likely to use connects
// through the proxy to the private MariaDB and runs the same four steps — a
// text query, a statement with parameters (prepared server-side where the
// library can), an error, and a TLS connection — printing one line per step.
// The test checks those lines and the audit records each step produced.

// clientEnv is what a client script needs to reach the proxy.
type clientEnv struct {
	host, port, user, pass, db, tag, ca string
	// failLogin: the login is expected to fail; the client's output (its
	// error message) is returned instead of the four steps' lines.
	failLogin bool
}

func (e clientEnv) environ() []string {
	return append(os.Environ(), "SW_HOST="+e.host, "SW_PORT="+e.port, "SW_USER="+e.user, "SW_PASS="+e.pass,
		"SW_DB="+e.db, "SW_TAG="+e.tag, "SW_CA="+e.ca)
}

type clientCase struct {
	tag string
	// serverPrepare: the library prepares server-side, so the parameterised
	// statement is a COM_STMT_PREPARE + COM_STMT_EXECUTE with decoded params;
	// otherwise the library interpolates and sends a COM_QUERY.
	serverPrepare bool
	// sqlPrepare: the statement uses SQL-level PREPARE/EXECUTE (the CLI).
	sqlPrepare bool
	// prepareAll: the library prepares every statement, even one without
	// parameters (DBD::MariaDB with mariadb_server_prepare, PDO without
	// emulation), so the text query is an EXECUTE too.
	prepareAll bool
	clientName string // expected _client_name connection attribute
	program    bool   // the client sets program_name=sw-<tag>
	run        func(t *testing.T, e clientEnv) string
}

func clientsDir() string { return filepath.Join(testutil.RepoRoot(), "test", "clients") }

// runClient runs a client program and returns its output. A missing runtime
// is a failure: scripts/install-deps.sh installs every one of them.
func runClient(t *testing.T, e clientEnv, dir string, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil && !filepath.IsAbs(name) {
		t.Fatalf("client runtime %s missing (run scripts/install-deps.sh): %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = e.environ()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if e.failLogin {
		if err == nil {
			t.Fatalf("%s %v succeeded; want a failed login\nstdout:\n%s", name, args, out)
		}
		return string(out) + stderr.String()
	}
	if err != nil {
		t.Fatalf("%s %v: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, out, stderr.String())
	}
	return string(out)
}

// nodeDeps installs mysql2 from the committed package-lock.json (idempotent;
// scripts/install-deps.sh runs the same script).
var nodeOnce sync.Once

func nodeDeps(t *testing.T) {
	nodeOnce.Do(func() {
		out, err := exec.Command("bash", filepath.Join(clientsDir(), "node", "install.sh")).CombinedOutput()
		if err != nil {
			t.Fatalf("install node client deps: %v\n%s", err, out)
		}
	})
	if _, err := os.Stat(filepath.Join(clientsDir(), "node", "node_modules", "mysql2")); err != nil {
		t.Fatalf("mysql2 not installed: %v", err)
	}
}

const connectorJ = "/usr/share/java/mariadb-java-client.jar"

// javaClient compiles the Connector/J client into a temporary directory.
func javaClient(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(connectorJ); err != nil {
		t.Fatalf("MariaDB Connector/J missing (libmariadb-java; run scripts/install-deps.sh): %v", err)
	}
	dir := t.TempDir()
	out, err := exec.Command("javac", "-cp", connectorJ, "-d", dir, filepath.Join(clientsDir(), "java", "Client.java")).CombinedOutput()
	if err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	return dir
}

// goClient is go-sql-driver/mysql with real server-side prepares.
func goClient(t *testing.T, e clientEnv) string {
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(e.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	if err := gomysql.RegisterTLSConfig("sqlwarden-matrix", &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	dsn := fmt.Sprintf("%s:%s@tcp(%s:%s)/%s?interpolateParams=false&connectionAttributes=program_name:sw-%s", e.user, e.pass, e.host, e.port, e.db, e.tag)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if e.failLogin {
		err := db.Ping()
		if err == nil {
			t.Fatal("go-sql-driver login succeeded; want a failed login")
		}
		return err.Error()
	}
	var name string
	var qty int
	if err := db.QueryRow(fmt.Sprintf("SELECT name FROM items WHERE id = 1 AND '%s' = '%s'", e.tag, e.tag)).Scan(&name); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(&out, "text", name)
	if err := db.QueryRow(fmt.Sprintf("SELECT name, qty FROM items WHERE id = ? AND name = ? AND '%s' = '%s'", e.tag, e.tag), 2, "pear").Scan(&name, &qty); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(&out, "prepared", name, qty)
	_, err = db.Exec("SELECT * FROM no_such_table_" + e.tag)
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		fmt.Fprintln(&out, "error", me.Number)
	} else {
		fmt.Fprintln(&out, "error", err)
	}
	db.Close()

	tdb, err := sql.Open("mysql", dsn+"&tls=sqlwarden-matrix")
	if err != nil {
		t.Fatal(err)
	}
	defer tdb.Close()
	var v string
	if err := tdb.QueryRow(fmt.Sprintf("SELECT '%s-tls'", e.tag)).Scan(&v); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(&out, "tls", v)
	return out.String()
}

// cliClient is the mariadb command-line client; its "prepared statement" is
// SQL-level PREPARE/EXECUTE, the only kind it has.
func cliClient(t *testing.T, e clientEnv) string {
	base := []string{"-h", e.host, "-P", e.port, "-u", e.user, "-p" + e.pass, "-D", e.db, "--batch", "--skip-column-names"}
	var out strings.Builder
	run := func(extra []string, sqlText string) (string, error) {
		cmd := exec.Command("mariadb", append(append(append([]string{}, base...), extra...), "-e", sqlText)...)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	o, err := run([]string{"--skip-ssl"}, fmt.Sprintf("SELECT name FROM items WHERE id = 1 AND '%s' = '%s'", e.tag, e.tag))
	if e.failLogin {
		if err == nil {
			t.Fatalf("mariadb login succeeded; want a failed login\n%s", o)
		}
		return o
	}
	if err != nil {
		t.Fatalf("mariadb: %v\n%s", err, o)
	}
	fmt.Fprintln(&out, "text", strings.TrimSpace(o))
	o, err = run([]string{"--skip-ssl"}, "PREPARE s FROM 'SELECT name, qty FROM items WHERE id = ? AND name = ? AND 1 = 1'; SET @a = 2, @b = 'pear'; EXECUTE s USING @a, @b")
	if err != nil {
		t.Fatalf("mariadb: %v\n%s", err, o)
	}
	fmt.Fprintln(&out, "prepared", strings.ReplaceAll(strings.TrimSpace(o), "\t", " "))
	o, err = run([]string{"--skip-ssl"}, "SELECT * FROM no_such_table_"+e.tag)
	if err == nil {
		fmt.Fprintln(&out, "error none")
	} else if i := strings.Index(o, "ERROR "); i >= 0 {
		fmt.Fprintln(&out, "error", strings.Fields(o[i:])[1])
	} else {
		t.Fatalf("mariadb error: %v\n%s", err, o)
	}
	o, err = run([]string{"--ssl", "--ssl-ca=" + e.ca, "--ssl-verify-server-cert"}, fmt.Sprintf("SELECT '%s-tls'", e.tag))
	if err != nil {
		t.Fatalf("mariadb tls: %v\n%s", err, o)
	}
	fmt.Fprintln(&out, "tls", strings.TrimSpace(o))
	return out.String()
}

var clientCases = []clientCase{
	{tag: "cli", sqlPrepare: true, clientName: "libmariadb", run: cliClient},
	{tag: "go", serverPrepare: true, clientName: "Go-MySQL-Driver", program: true, run: goClient},
	{tag: "pymysql", clientName: "pymysql", program: true, run: func(t *testing.T, e clientEnv) string {
		return runClient(t, e, clientsDir(), "/usr/bin/python3", "python/client.py", "pymysql")
	}},
	{tag: "mysqldb", clientName: "libmariadb", run: func(t *testing.T, e clientEnv) string {
		return runClient(t, e, clientsDir(), "/usr/bin/python3", "python/client.py", "mysqldb")
	}},
	{tag: "node", serverPrepare: true, clientName: "Node-MySQL-2", program: true, run: func(t *testing.T, e clientEnv) string {
		nodeDeps(t)
		return runClient(t, e, filepath.Join(clientsDir(), "node"), "node", "client.js")
	}},
	{tag: "java", serverPrepare: true, clientName: "MariaDB Connector/J", program: true, run: func(t *testing.T, e clientEnv) string {
		dir := javaClient(t)
		return runClient(t, e, clientsDir(), "java", "-cp", dir+":"+connectorJ, "Client")
	}},
	{tag: "perl", serverPrepare: true, prepareAll: true, clientName: "libmariadb", run: func(t *testing.T, e clientEnv) string {
		return runClient(t, e, clientsDir(), "perl", "perl/client.pl")
	}},
	{tag: "mysqli", serverPrepare: true, clientName: "mysqlnd", run: func(t *testing.T, e clientEnv) string {
		return runClient(t, e, clientsDir(), "php", "php/client.php", "mysqli")
	}},
	{tag: "pdo", serverPrepare: true, prepareAll: true, clientName: "mysqlnd", run: func(t *testing.T, e clientEnv) string {
		return runClient(t, e, clientsDir(), "php", "php/client.php", "pdo")
	}},
}

// writeCert generates a self-signed certificate for 127.0.0.1 that the
// clients verify against (it is its own CA).
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "proxy.crt"), filepath.Join(dir, "proxy.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestClientMatrix(t *testing.T) {
	certDir := t.TempDir()
	cert, key := writeCert(t, certDir)
	d := harness.Start(t, harness.Options{Extra: fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\n", cert, key)})
	host, port := d.HostPort()
	for _, c := range clientCases {
		t.Run(c.tag, func(t *testing.T) {
			db := "cm_" + c.tag
			setupDB(t, d.Maria, db)
			e := clientEnv{host: host, port: port, user: harness.ClientUser, pass: harness.ClientPassword, db: db, tag: c.tag, ca: cert}
			out := c.run(t, e)
			want := fmt.Sprintf("text apple\nprepared pear 20\nerror 1146\ntls %s-tls\n", c.tag)
			if out != want {
				t.Fatalf("%s output:\n%s\nwant:\n%s", c.tag, out, want)
			}
			checkClientAudit(t, d, c)
		})
	}
}

func checkClientAudit(t *testing.T, d *harness.Daemon, c clientCase) {
	t.Helper()
	recs := d.WaitOutcomes(t)
	starts := map[string]*record.Record{}
	for _, r := range recs {
		if r.Event == record.EventSessionStart {
			starts[r.SessionID] = r
		}
	}
	tag := c.tag
	text := fmt.Sprintf("SELECT name FROM items WHERE id = 1 AND '%s' = '%s'", tag, tag)
	command := "COM_QUERY"
	if c.prepareAll {
		command = "COM_STMT_EXECUTE"
	}
	st, out := harness.PairCommand(t, recs, command, text)
	if st.DB != "cm_"+tag || out.Status != record.StatusSuccess || out.Rows == nil || *out.Rows != 1 ||
		len(out.Columns) != 1 || out.Columns[0] != "name" {
		t.Errorf("text query records: %+v / %+v", st, out)
	}
	start := starts[st.SessionID]
	if start == nil || start.Client == nil || start.Client.TLS {
		t.Fatalf("session.start of the plain session: %+v", start)
	}
	if got := start.Client.Attrs["_client_name"]; got != c.clientName {
		t.Errorf("_client_name = %q, want %q (attrs %v)", got, c.clientName, start.Client.Attrs)
	}
	if c.program && start.Client.Attrs["program_name"] != "sw-"+tag {
		t.Errorf("program_name = %q, want sw-%s (attrs %v)", start.Client.Attrs["program_name"], tag, start.Client.Attrs)
	}

	prep := fmt.Sprintf("SELECT name, qty FROM items WHERE id = ? AND name = ? AND '%s' = '%s'", tag, tag)
	switch {
	case c.serverPrepare:
		_, pout := harness.PairCommand(t, recs, "COM_STMT_PREPARE", prep)
		if pout.Status != record.StatusSuccess {
			t.Errorf("prepare outcome %+v", pout)
		}
		ex, eout := harness.PairCommand(t, recs, "COM_STMT_EXECUTE", prep)
		if len(ex.Params) != 2 || fmt.Sprint(ex.Params[0].Value) != "2" || ex.Params[1].Value != "pear" || ex.Params[0].Type == "" {
			t.Errorf("execute params %+v", ex.Params)
		}
		if eout.Status != record.StatusSuccess || eout.Rows == nil || *eout.Rows != 1 {
			t.Errorf("execute outcome %+v", eout)
		}
	case c.sqlPrepare:
		_, o := harness.Pair(t, recs, "EXECUTE s USING @a, @b")
		if o.Status != record.StatusSuccess || *o.Rows != 1 {
			t.Errorf("SQL EXECUTE outcome %+v", o)
		}
	default:
		inter := fmt.Sprintf("SELECT name, qty FROM items WHERE id = 2 AND name = 'pear' AND '%s' = '%s'", tag, tag)
		st, o := harness.Pair(t, recs, inter)
		if st.Command != "COM_QUERY" || o.Status != record.StatusSuccess || *o.Rows != 1 {
			t.Errorf("interpolated query records %+v / %+v", st, o)
		}
	}

	_, out = harness.Pair(t, recs, "SELECT * FROM no_such_table_"+tag)
	if out.Status != record.StatusError || out.Error == nil || out.Error.Code != 1146 {
		t.Errorf("error outcome %+v", out)
	}

	var tlsStmt *record.Record
	for _, r := range recs {
		if r.Event == record.EventStatement && strings.HasPrefix(r.SQL, fmt.Sprintf("SELECT '%s-tls'", tag)) {
			tlsStmt = r
		}
	}
	if tlsStmt == nil {
		t.Fatal("no statement record from the TLS connection")
	}
	if s := starts[tlsStmt.SessionID]; s == nil || s.Client == nil || !s.Client.TLS {
		t.Errorf("TLS session.start: %+v", s)
	}
}

// TestGeneratedCertificate: with no certificate configured the proxy offers
// TLS with a self-signed one it generates; clients that do not verify use it.
func TestGeneratedCertificate(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	host, port := d.HostPort()
	out, err := exec.Command("mariadb", "-h", host, "-P", port, "-u", harness.ClientUser, "-p"+harness.ClientPassword,
		"--ssl", "--skip-ssl-verify-server-cert", "--batch", "--skip-column-names", "-e", "SELECT 'cli-selfsigned'").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "cli-selfsigned" {
		t.Fatalf("mariadb --ssl: %v\n%s", err, out)
	}
	db, err := sql.Open("mysql", d.DSN("", "tls=skip-verify"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRow("SELECT 'go-selfsigned'").Scan(&v); err != nil || v != "go-selfsigned" {
		t.Fatalf("go-sql-driver tls=skip-verify: %q %v", v, err)
	}
	db.Close()
	recs := d.WaitOutcomes(t)
	starts := map[string]*record.Record{}
	for _, r := range recs {
		if r.Event == record.EventSessionStart {
			starts[r.SessionID] = r
		}
	}
	for _, q := range []string{"SELECT 'cli-selfsigned'", "SELECT 'go-selfsigned'"} {
		st, _ := harness.Pair(t, recs, q)
		if s := starts[st.SessionID]; s == nil || !s.Client.TLS {
			t.Errorf("%s: session.start %+v", q, s)
		}
	}
}
