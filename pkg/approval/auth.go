package approval

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
)

// ErrUnauthenticated is returned by an Authenticator for a request without
// acceptable credentials.
var ErrUnauthenticated = errors.New("unauthenticated")

// Principal is who an authenticated admin request comes from.
type Principal struct {
	// Name identifies the approver (an OIDC email or subject). Empty for a
	// shared static token, which cannot tell people apart.
	Name string
	// Method is how they authenticated: "token" or "oidc".
	Method string
}

// Authenticator checks an admin API request's credentials.
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// bearer returns the request's bearer token.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// StaticToken authenticates requests that carry this bearer token. An empty
// token accepts nothing.
func StaticToken(token string) Authenticator {
	return staticToken(sha256.Sum256([]byte(token)))
}

type staticToken [32]byte

func (s staticToken) Authenticate(r *http.Request) (Principal, error) {
	tok, ok := bearer(r)
	if !ok || [32]byte(s) == sha256.Sum256(nil) {
		return Principal{}, ErrUnauthenticated
	}
	got := sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(got[:], s[:]) != 1 {
		return Principal{}, ErrUnauthenticated
	}
	return Principal{Method: "token"}, nil
}

// OIDCConfig configures bearer-token authentication of approvers by an OIDC
// provider's ID tokens.
type OIDCConfig struct {
	Issuer   string
	ClientID string // the expected audience
	// NameClaim is the claim naming the approver; default "email", falling
	// back to the subject.
	NameClaim string
	// Approvers and Groups, when set, limit who may approve: the name must be
	// listed, or the "groups" claim must contain one of Groups.
	Approvers []string
	Groups    []string
}

// OIDCVerifier authenticates approvers by ID tokens from an OIDC provider.
type OIDCVerifier struct {
	cfg      OIDCConfig
	verifier *oidc.IDTokenVerifier
}

// NewOIDCVerifier discovers the provider at cfg.Issuer.
func NewOIDCVerifier(ctx context.Context, cfg OIDCConfig) (*OIDCVerifier, error) {
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover oidc provider: %w", err)
	}
	return NewOIDCVerifierWith(cfg, p.Verifier(&oidc.Config{ClientID: cfg.ClientID})), nil
}

// NewOIDCVerifierWith uses a ready verifier (for a static key set, or tests).
func NewOIDCVerifierWith(cfg OIDCConfig, v *oidc.IDTokenVerifier) *OIDCVerifier {
	if cfg.NameClaim == "" {
		cfg.NameClaim = "email"
	}
	return &OIDCVerifier{cfg: cfg, verifier: v}
}

// Authenticate verifies the bearer token's signature, issuer, audience and
// expiry, and the approver allow-lists.
func (o *OIDCVerifier) Authenticate(r *http.Request) (Principal, error) {
	tok, ok := bearer(r)
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	idt, err := o.verifier.Verify(r.Context(), tok)
	if err != nil {
		return Principal{}, fmt.Errorf("verify token: %w: %w", ErrUnauthenticated, err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Principal{}, fmt.Errorf("decode claims: %w: %w", ErrUnauthenticated, err)
	}
	name, _ := claims[o.cfg.NameClaim].(string)
	if name == "" {
		name = idt.Subject
	}
	if len(o.cfg.Approvers) > 0 || len(o.cfg.Groups) > 0 {
		allowed := slices.Contains(o.cfg.Approvers, name)
		if gs, ok := claims["groups"].([]any); ok && !allowed {
			for _, g := range gs {
				if s, ok := g.(string); ok && slices.Contains(o.cfg.Groups, s) {
					allowed = true
					break
				}
			}
		}
		if !allowed {
			return Principal{}, fmt.Errorf("check approver %s: %w", name, ErrUnauthenticated)
		}
	}
	return Principal{Name: name, Method: "oidc"}, nil
}

// AnyOf accepts a request that any of auths accepts, trying them in order.
func AnyOf(auths ...Authenticator) Authenticator { return anyOf(auths) }

type anyOf []Authenticator

func (a anyOf) Authenticate(r *http.Request) (Principal, error) {
	for _, x := range a {
		if p, err := x.Authenticate(r); err == nil {
			return p, nil
		}
	}
	return Principal{}, ErrUnauthenticated
}
