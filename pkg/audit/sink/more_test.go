package sink

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
)

func TestSinkResumesFromCursor(t *testing.T) {
	var mu sync.Mutex
	var got []uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc := bufio.NewScanner(r.Body)
		mu.Lock()
		defer mu.Unlock()
		for sc.Scan() {
			var seq uint64 // 0 (out of order) when the line does not decode
			if r, err := audit.DecodeLine(sc.Bytes()); err == nil {
				seq = r.Seq
			}
			got = append(got, seq)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	sc := audit.SinkConfig{Name: "siem", Type: audit.SinkWebhook, Webhook: audit.WebhookConfig{URL: srv.URL}}
	for round := 0; round < 3; round++ {
		j := openTest(t, dir, func(c *audit.Config) { c.Sinks = []audit.SinkConfig{sc} })
		for i := 0; i < 10; i++ {
			j.Append(stmt(i))
		}
		waitShipped(t, j, 5*time.Second)
		j.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 36 { // 3 × (open + 10 + close)
		t.Fatalf("shipped %d records, want 36", len(got))
	}
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("record %d shipped as seq %d: resumed from the wrong place", i+1, s)
		}
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
	return certFile, keyFile
}

func TestSyslogSinkTLS(t *testing.T) {
	certFile, keyFile := selfSigned(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lines := make(chan string, 100)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			s, err := br.ReadString('}')
			if err != nil {
				return
			}
			lines <- s
		}
	}()
	sc := audit.SinkConfig{Type: audit.SinkSyslog, Syslog: audit.SyslogConfig{Address: l.Addr().String(), TLS: audit.TLSConfig{Enabled: true, CAFile: certFile}}}
	j := openTest(t, t.TempDir(), func(c *audit.Config) { c.Sinks = []audit.SinkConfig{sc} })
	j.Append(stmt(1))
	waitShipped(t, j, 5*time.Second)
	select {
	case s := <-lines:
		if !strings.Contains(s, `[sqlwarden@32473 seq="1"`) {
			t.Fatalf("tls syslog got %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received over TLS")
	}
}
