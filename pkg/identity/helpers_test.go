package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sqlwarden/sqlwarden/internal/testoidc"
)

const testAudience = "sqlwarden"

// The test keys and issuer come from internal/testoidc (shared with the
// end-to-end tests); these names keep the tests short.
var rsaKey, rogueKey, ecKey = func() (*rsa.PrivateKey, *rsa.PrivateKey, *ecdsa.PrivateKey) {
	k := testoidc.TestKeys()
	return k.RSA, k.Rogue, k.EC
}()

func testKeys(testing.TB) {}

// testIssuer is a real OIDC issuer on loopback TLS: discovery and JWKS with
// an RSA and an EC key.
type testIssuer struct {
	*testoidc.Issuer
	url    string
	caFile string
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	iss := testoidc.New(t)
	return &testIssuer{Issuer: iss, url: iss.URL, caFile: iss.CAFile}
}

func (iss *testIssuer) claims(sub string) map[string]any {
	c := iss.Claims(sub, testAudience, nil)
	c["iat"] = time.Now().Unix()
	return c
}

func (iss *testIssuer) oidcConfig(tokenPath string) *OIDCConfig {
	return &OIDCConfig{Issuer: iss.url, Audience: testAudience, TokenPath: tokenPath, CAFile: iss.caFile}
}

// sign makes a compact JWS with a real key.
func sign(t testing.TB, alg jose.SignatureAlgorithm, key crypto.Signer, kid string, claims map[string]any) string {
	return testoidc.Sign(t, alg, key, kid, claims)
}

// unsigned is an alg=none token.
func unsigned(claims map[string]any) string { return testoidc.AlgNone(claims) }

// hs256WithPublicKey is the classic key-confusion forgery: HMAC keyed with
// the issuer's public key, which anyone can fetch.
func hs256WithPublicKey(t testing.TB, kid string, claims map[string]any) string {
	return testoidc.HS256WithPublicKey(t, kid, claims)
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

// b64 is base64url(JSON(v)), for hand-made token parts.
func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}
