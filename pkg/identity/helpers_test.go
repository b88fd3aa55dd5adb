package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const testAudience = "sqlwarden"

var (
	keysOnce         sync.Once
	rsaKey, rogueKey *rsa.PrivateKey
	ecKey            *ecdsa.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if rogueKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
}

// testIssuer is a real OIDC issuer on loopback TLS: discovery and JWKS with
// an RSA and an EC key.
type testIssuer struct {
	srv    *httptest.Server
	url    string
	caFile string
	mu     sync.Mutex
	jwks   int    // JWKS fetches
	bearer string // if set, required on every request
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	testKeys(t)
	iss := &testIssuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss.url,
			"jwks_uri":                              iss.url + "/openid/v1/jwks",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		})
	})
	mux.HandleFunc("/openid/v1/jwks", func(w http.ResponseWriter, r *http.Request) {
		iss.mu.Lock()
		iss.jwks++
		iss.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: rsaKey.Public(), KeyID: "rsa-1", Algorithm: "RS256", Use: "sig"},
			{Key: ecKey.Public(), KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
		}})
	})
	iss.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		iss.mu.Lock()
		want := iss.bearer
		iss.mu.Unlock()
		if want != "" && r.Header.Get("Authorization") != "Bearer "+want {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})) // listens on 127.0.0.1
	t.Cleanup(iss.srv.Close)
	iss.url = iss.srv.URL
	iss.caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: iss.srv.Certificate().Raw})
	if err := os.WriteFile(iss.caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return iss
}

func (iss *testIssuer) claims(sub string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": iss.url,
		"aud": []string{testAudience},
		"sub": sub,
		"iat": now.Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
}

func (iss *testIssuer) oidcConfig(tokenPath string) *OIDCConfig {
	return &OIDCConfig{Issuer: iss.url, Audience: testAudience, TokenPath: tokenPath, CAFile: iss.caFile}
}

// sign makes a compact JWS with a real key.
func sign(t testing.TB, alg jose.SignatureAlgorithm, key crypto.Signer, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// unsigned is an alg=none token.
func unsigned(claims map[string]any) string {
	return b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64(claims) + "."
}

// hs256WithPublicKey is the classic key-confusion forgery: HMAC keyed with
// the issuer's public key, which anyone can fetch.
func hs256WithPublicKey(t testing.TB, kid string, claims map[string]any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(rsaKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	in := b64(map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + b64(claims)
	m := hmac.New(sha256.New, pubPEM)
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// startWorkload runs a real child process (sleep) and stops it at cleanup.
func startWorkload(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func writeToken(t *testing.T, path, tok string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // atomic, as kubelet does
		t.Fatal(err)
	}
}

func newResolver(t *testing.T, cfg Config) *Resolver {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := NewResolver(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wantDenied checks err is a *DeniedError with reason.
func wantDenied(t *testing.T, id *Identity, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("resolved %+v, want refusal %q", id, reason)
	}
	de, ok := err.(*DeniedError)
	if !ok {
		t.Fatalf("error %T %v, want *DeniedError %q", err, err, reason)
	}
	if de.Reason != reason {
		t.Fatalf("reason %q (%v), want %q", de.Reason, de.Err, reason)
	}
	if want := "no verified workload identity: " + reason; err.Error() != want {
		t.Fatalf("message %q, want %q", err.Error(), want)
	}
}
