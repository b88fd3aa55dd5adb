package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// nbfLeeway matches go-oidc's allowance for clock skew on "nbf".
const nbfLeeway = 5 * time.Minute

// minKeyRefresh bounds how often a token with an unknown key id can make the
// daemon fetch the issuer's JWKS: workloads choose the kid they present.
const minKeyRefresh = 10 * time.Second

// verifier checks tokens against one issuer, and says precisely why a token
// is refused.
type verifier struct {
	cfg  OIDCConfig
	algs []jose.SignatureAlgorithm
	v    *oidc.IDTokenVerifier
	keys *keySet
	now  func() time.Time
}

func newHTTPClient(caFile, tokenFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read ca_file %s: no PEM certificates", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	var rt http.RoundTripper = tr
	if tokenFile != "" {
		rt = &bearerTransport{base: tr, file: tokenFile}
	}
	return &http.Client{Transport: rt, Timeout: 10 * time.Second}, nil
}

// bearerTransport adds the token in file to every request.
type bearerTransport struct {
	base http.RoundTripper
	file string
}

func (b *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := os.ReadFile(b.file)
	if err != nil {
		return nil, fmt.Errorf("read issuer_token_file: %w", err)
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	return b.base.RoundTrip(req)
}

func newVerifier(ctx context.Context, cfg OIDCConfig, now func() time.Time) (*verifier, error) {
	client, err := newHTTPClient(cfg.CAFile, cfg.IssuerTokenFile)
	if err != nil {
		return nil, err
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, client), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover issuer %s: %w", cfg.Issuer, err)
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := provider.Claims(&meta); err != nil {
		return nil, fmt.Errorf("read discovery of %s: %w", cfg.Issuer, err)
	}
	if meta.JWKSURI == "" {
		return nil, fmt.Errorf("discover issuer %s: no jwks_uri", cfg.Issuer)
	}
	ks := &keySet{url: meta.JWKSURI, client: client, now: now}
	if _, err := ks.refresh(ctx, true); err != nil {
		return nil, fmt.Errorf("fetch keys of %s: %w", cfg.Issuer, err)
	}
	algs := make([]jose.SignatureAlgorithm, len(cfg.AllowedAlgs))
	for i, a := range cfg.AllowedAlgs {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	ks.algs = algs
	// Discovery gave the issuer (checked against the document) and its keys'
	// URL; verification uses our key set, so a refusal can say why.
	v := oidc.NewVerifier(cfg.Issuer, ks, &oidc.Config{
		ClientID:             cfg.Audience,
		SupportedSigningAlgs: cfg.AllowedAlgs,
		Now:                  now,
	})
	return &verifier{cfg: cfg, algs: algs, v: v, keys: ks, now: now}, nil
}

// verified is what a good token says.
type verified struct {
	claims map[string]any
	token  *oidc.IDToken
}

// verify checks raw and returns its claims, or a *DeniedError saying why not.
func (v *verifier) verify(ctx context.Context, raw string) (*verified, error) {
	alg, err := jwsAlg(raw)
	if err != nil {
		return nil, deny(ReasonMalformed, err)
	}
	if !slices.Contains(v.cfg.AllowedAlgs, alg) {
		return nil, deny(reasonUnsupportedAlg(sanitizeAlg(alg)), nil)
	}
	res := &sigResult{}
	tok, err := v.v.Verify(context.WithValue(ctx, sigResultKey{}, res), raw)
	if err != nil {
		return nil, v.classify(err, res)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, deny(ReasonMalformed, fmt.Errorf("decode claims: %w", err))
	}
	return &verified{claims: claims, token: tok}, nil
}

// classify turns a go-oidc refusal into a stable reason. The key set saw the
// signature; claims are then checked in go-oidc's own order.
func (v *verifier) classify(err error, res *sigResult) *DeniedError {
	if res.err != nil {
		return res.err
	}
	if res.payload == nil {
		return deny(ReasonMalformed, err)
	}
	var c struct {
		Iss string   `json:"iss"`
		Aud audience `json:"aud"`
		Exp *jsonNum `json:"exp"`
		Nbf *jsonNum `json:"nbf"`
	}
	if json.Unmarshal(res.payload, &c) != nil {
		return deny(ReasonMalformed, err)
	}
	var expired *oidc.TokenExpiredError
	switch {
	case c.Iss != v.cfg.Issuer:
		return deny(ReasonWrongIssuer, err)
	case !slices.Contains([]string(c.Aud), v.cfg.Audience):
		return deny(ReasonWrongAudience, err)
	case c.Exp == nil:
		return deny(ReasonNoExpiry, err)
	case errors.As(err, &expired):
		return deny(ReasonExpired, err)
	case c.Nbf != nil && v.now().Add(nbfLeeway).Before(c.Nbf.time()):
		return deny(ReasonNotYetValid, err)
	}
	return deny(ReasonInvalid, err)
}

// jwsAlg reads the "alg" of a compact JWS header without trusting anything.
func jwsAlg(raw string) (string, error) {
	h, _, ok := strings.Cut(raw, ".")
	if !ok {
		return "", errors.New("parse token: not a compact JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(h, "="))
	if err != nil {
		return "", fmt.Errorf("parse token header: %w", err)
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(b, &hdr); err != nil {
		return "", fmt.Errorf("parse token header: %w", err)
	}
	return hdr.Alg, nil
}

// sanitizeAlg keeps a workload-chosen alg printable and short in messages.
func sanitizeAlg(a string) string {
	if a == "" {
		return `""`
	}
	var b strings.Builder
	for _, r := range a {
		if b.Len() >= 16 {
			b.WriteString("…")
			break
		}
		if r < 0x21 || r > 0x7e {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}

type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*a = audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	*a = l
	return nil
}

type jsonNum float64

func (n jsonNum) time() time.Time {
	return time.Unix(int64(n), 0)
}

// sigResult carries the key set's verdict back through go-oidc, which only
// keeps its text.
type sigResult struct {
	payload []byte
	err     *DeniedError
}

type sigResultKey struct{}

// keySet is the issuer's JWKS, fetched at start and again when a token names
// a key id it lacks (at most every minKeyRefresh). It implements oidc.KeySet.
type keySet struct {
	url    string
	client *http.Client
	now    func() time.Time
	algs   []jose.SignatureAlgorithm

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time
}

func (k *keySet) refresh(ctx context.Context, force bool) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !force && k.now().Sub(k.fetched) < minKeyRefresh {
		return k.keys, nil
	}
	k.fetched = k.now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks: %s", resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode jwks: %w", err)
	}
	keys := set.Keys[:0]
	for _, key := range set.Keys {
		if key.Valid() && key.IsPublic() && (key.Use == "" || key.Use == "sig") {
			keys = append(keys, key)
		}
	}
	k.keys = keys
	return keys, nil
}

func (k *keySet) cached() []jose.JSONWebKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys
}

// VerifySignature implements oidc.KeySet.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	res, _ := ctx.Value(sigResultKey{}).(*sigResult)
	if res == nil {
		res = &sigResult{}
	}
	payload, d := k.verify(ctx, raw)
	res.payload, res.err = payload, d
	if d != nil {
		return nil, d
	}
	return payload, nil
}

func (k *keySet) verify(ctx context.Context, raw string) ([]byte, *DeniedError) {
	jws, err := jose.ParseSignedCompact(raw, k.algs)
	if err != nil {
		return nil, deny(ReasonMalformed, fmt.Errorf("parse token: %w", err))
	}
	if len(jws.Signatures) != 1 {
		return nil, deny(ReasonMalformed, errors.New("parse token: want exactly one signature"))
	}
	kid := jws.Signatures[0].Header.KeyID
	try := func(keys []jose.JSONWebKey) (payload []byte, known bool) {
		for i := range keys {
			if kid != "" && keys[i].KeyID != kid {
				continue
			}
			known = true
			if p, err := jws.Verify(&keys[i]); err == nil {
				return p, true
			}
		}
		return nil, known
	}
	p, known := try(k.cached())
	if p != nil {
		return p, nil
	}
	if !known {
		keys, err := k.refresh(ctx, false)
		if err != nil {
			return nil, deny(ReasonKeysUnavailable, err)
		}
		if p, known = try(keys); p != nil {
			return p, nil
		}
	}
	if !known {
		return nil, deny(ReasonUnknownKey, fmt.Errorf("verify token: no key %q in the issuer's key set", kid))
	}
	return nil, deny(ReasonSignatureInvalid, errors.New("verify token: signature does not match the issuer's key"))
}
