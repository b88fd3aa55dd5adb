package testoidc

import (
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
	"path/filepath"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Keys are generated once per test process: RSA and EC are published in the
// JWKS (key ids "rsa-1", "ec-1"); Rogue never is.
type Keys struct {
	RSA, Rogue *rsa.PrivateKey
	EC         *ecdsa.PrivateKey
}

var (
	keysOnce sync.Once
	keys     Keys
)

// TestKeys returns the process's test keys.
func TestKeys() Keys {
	keysOnce.Do(func() {
		var err error
		if keys.RSA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if keys.Rogue, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if keys.EC, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
	return keys
}

// Issuer is a running test issuer on 127.0.0.1.
type Issuer struct {
	URL    string // the issuer URL (https://127.0.0.1:port)
	CAFile string // PEM of its TLS certificate, for a verifier's ca_file
	Keys   Keys

	mu     sync.Mutex
	jwks   int
	bearer string
}

// New starts an issuer, stopped at the end of the test.
func New(t testing.TB) *Issuer {
	t.Helper()
	iss := &Issuer{Keys: TestKeys()}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss.URL,
			"jwks_uri":                              iss.URL + "/openid/v1/jwks",
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
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: iss.Keys.RSA.Public(), KeyID: "rsa-1", Algorithm: "RS256", Use: "sig"},
			{Key: iss.Keys.EC.Public(), KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
		}})
	})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		iss.mu.Lock()
		want := iss.bearer
		iss.mu.Unlock()
		if want != "" && r.Header.Get("Authorization") != "Bearer "+want {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	iss.URL = srv.URL
	iss.CAFile = filepath.Join(t.TempDir(), "issuer-ca.pem")
	if err := os.WriteFile(iss.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return iss
}

// JWKSFetches counts requests for the key set.
func (iss *Issuer) JWKSFetches() int {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.jwks
}

// RequireBearer makes every request need this bearer token ("" for none).
func (iss *Issuer) RequireBearer(token string) {
	iss.mu.Lock()
	iss.bearer = token
	iss.mu.Unlock()
}

// Claims are valid claims for sub and audience, with extra merged in (a nil
// value deletes the key).
func (iss *Issuer) Claims(sub, audience string, extra map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": iss.URL,
		"aud": []string{audience},
		"sub": sub,
		"iat": now.Add(-time.Minute).Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// Sign makes a compact JWS of claims with a real key.
func Sign(t testing.TB, alg jose.SignatureAlgorithm, key crypto.Signer, kid string, claims map[string]any) string {
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

// AlgNone is an unsigned token.
func AlgNone(claims map[string]any) string {
	return b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64(claims) + "."
}

// HS256WithPublicKey is the key-confusion forgery: HMAC keyed with the
// issuer's RSA public key, which anyone can fetch from the JWKS.
func HS256WithPublicKey(t testing.TB, kid string, claims map[string]any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(TestKeys().RSA.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	in := b64(map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + b64(claims)
	m := hmac.New(sha256.New, pubPEM)
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
