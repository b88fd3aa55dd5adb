package approval

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

func TestOIDCVerifier(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const issuer = "https://issuer.test"
	v := oidc.NewVerifier(issuer, &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{key.Public()}}, &oidc.Config{ClientID: "sqlwarden-approvers", SupportedSigningAlgs: []string{oidc.ES256}})
	auth := NewOIDCVerifierWith(OIDCConfig{Issuer: issuer, ClientID: "sqlwarden-approvers", Groups: []string{"dba"}}, v)

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	token := func(claims map[string]any) string {
		base := map[string]any{"iss": issuer, "aud": "sqlwarden-approvers", "sub": "u1", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
		for k, v := range claims {
			base[k] = v
		}
		b, _ := json.Marshal(base)
		jws, err := signer.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := jws.CompactSerialize()
		return s
	}
	for _, tc := range []struct {
		name   string
		claims map[string]any
		ok     bool
		who    string
	}{
		{"dba", map[string]any{"email": "ann@example.com", "groups": []string{"dba"}}, true, "ann@example.com"},
		{"not an approver", map[string]any{"email": "bob@example.com", "groups": []string{"dev"}}, false, ""},
		{"wrong audience", map[string]any{"aud": "other", "groups": []string{"dba"}}, false, ""},
		{"expired", map[string]any{"exp": time.Now().Add(-time.Hour).Unix(), "groups": []string{"dba"}}, false, ""},
		{"wrong issuer", map[string]any{"iss": "https://evil.test", "groups": []string{"dba"}}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api/v1/approvals", nil)
			r.Header.Set("Authorization", "Bearer "+token(tc.claims))
			p, err := auth.Authenticate(r)
			if (err == nil) != tc.ok {
				t.Fatalf("Authenticate = %+v, %v; want ok %v", p, err, tc.ok)
			}
			if tc.ok && (p.Name != tc.who || p.Method != "oidc") {
				t.Errorf("principal = %+v", p)
			}
		})
	}
	// AnyOf: the static token still works alongside OIDC.
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+testToken)
	if p, err := AnyOf(auth, StaticToken(testToken)).Authenticate(r); err != nil || p.Method != "token" {
		t.Errorf("AnyOf = %+v, %v", p, err)
	}
}
