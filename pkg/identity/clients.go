package identity

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"sync"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// Client is an explicit (non-redirected) client of identities.clients: it
// authenticates by a password only sqlwarden knows (never the database's).
// The workload's identity is then only as good as that secret; prefer the
// redirect and a verified token, or allow_password_token over TLS.
type Client struct {
	User         string `yaml:"user"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	Name         string `yaml:"name"` // identity name; default the user
	Backend      string `yaml:"backend"`

	cred *CredentialSource
}

// Bound is a connection bound to an identity: what the proxy carries for
// the session (its layout is the proxy's Identity).
type Bound struct {
	Name    string
	Backend string // backend name from the config
	Record  *record.Identity
	// Attribute derives model / tool call attribution for a statement from
	// verified claims, pod metadata and the statement's own SQL comment.
	Attribute func(sql string) *record.Attribution
}

// Authenticator binds connections to identities: a redirected connection
// by its origin (the Resolver), an explicit one by its client password or,
// with allow_password_token over TLS, a token presented as the password.
type Authenticator struct {
	resolver *Resolver // nil when no oidc/static identities are configured
	cfg      Config
	clients  map[string]*Client
	rsaKey   *rsa.PrivateKey
	sha2     sha2Cache
	defaultB string
}

// NewAuthenticator checks cfg.Clients and fills their defaults. r may be
// nil (no oidc or static identities); key serves caching_sha2 full auth.
func NewAuthenticator(r *Resolver, cfg Config, key *rsa.PrivateKey, defaultBackend string) (*Authenticator, error) {
	a := &Authenticator{resolver: r, cfg: cfg, clients: map[string]*Client{}, rsaKey: key, defaultB: defaultBackend}
	for i := range cfg.Clients {
		c := &cfg.Clients[i]
		if c.User == "" {
			return nil, fmt.Errorf("identities.clients[%d]: user is required", i)
		}
		if c.Name == "" {
			c.Name = c.User
		}
		if c.Backend == "" {
			c.Backend = defaultBackend
		}
		c.cred = NewCredentialSource(c.User, c.Password, c.PasswordFile)
		a.clients[c.User] = c
	}
	return a, nil
}

// Authenticate binds the connection whose handshake response is hs to an
// identity, continuing the auth exchange on conn where needed. origin holds
// the redirect's facts (pid, start time, cgroup, netns) and is nil for an
// explicit client. A *DeniedError refuses with its reason; other errors
// are the connection's.
func (a *Authenticator) Authenticate(ctx context.Context, conn *wire.Conn, hs *wire.HandshakeResponse, origin *Request) (*Bound, error) {
	if origin != nil {
		if a.resolver == nil {
			return nil, &DeniedError{Reason: "no identity source is configured (identities.oidc or identities.static)"}
		}
		req := *origin
		req.ClientUser, req.TLS = hs.User, hs.TLS
		id, err := a.resolver.Resolve(ctx, req)
		if err != nil {
			return nil, denied(err)
		}
		if err := wire.AcceptAny(conn, hs); err != nil {
			return nil, err
		}
		return a.finish(id), nil
	}

	// An explicit client: a proxy-side password, or a token as the password.
	if c := a.clients[hs.User]; c != nil {
		cred, err := c.cred.Get()
		if err != nil {
			return nil, &DeniedError{Reason: "client credential unavailable: " + err.Error()}
		}
		if err := wire.VerifyPassword(conn, hs, cred.Password, a.rsaKey, &a.sha2); err != nil {
			if errors.Is(err, wire.ErrAuthFailed) {
				return nil, &DeniedError{Reason: fmt.Sprintf("password for explicit client %q does not match", hs.User)}
			}
			return nil, err
		}
		return &Bound{
			Name: c.Name, Backend: c.Backend,
			Record: &record.Identity{Name: c.Name, Source: "static", Subject: "client:" + c.User},
			Attribute: func(sql string) *record.Attribution {
				return Attribute(nil, nil, ParseSQLComment(sql))
			},
		}, nil
	}
	if a.cfg.AllowPasswordToken && a.resolver != nil {
		if !hs.TLS {
			return nil, &DeniedError{Reason: "a token presented as password requires TLS"}
		}
		var token string
		if hs.AuthPlugin == gm.AUTH_CLEAR_PASSWORD && len(hs.AuthResponse) > 0 {
			token = string(trimNul(hs.AuthResponse))
		} else {
			t, err := wire.Cleartext(conn)
			if err != nil {
				return nil, err
			}
			token = t
		}
		id, err := a.resolver.Resolve(ctx, Request{ClientUser: hs.User, PasswordToken: token, TLS: true})
		if err != nil {
			return nil, denied(err)
		}
		return a.finish(id), nil
	}
	return nil, &DeniedError{Reason: fmt.Sprintf("connection was not redirected and no explicit client matches user %q", hs.User)}
}

func (a *Authenticator) finish(id *Identity) *Bound {
	if id.Backend == "" {
		id.Backend = a.defaultB
	}
	var labels map[string]string
	if id.Pod != nil {
		labels = id.Pod.Labels
	}
	return id.Bind(labels)
}

// Bind is what the proxy carries for a verified identity: its record, and
// attribution from its claims, podLabels and each statement's comment.
func (id *Identity) Bind(podLabels map[string]string) *Bound {
	return &Bound{
		Name:    id.Name,
		Backend: id.Backend,
		Record:  id.Audit(),
		Attribute: func(sql string) *record.Attribution {
			return Attribute(id, podLabels, ParseSQLComment(sql))
		},
	}
}

// denied makes any resolver error a refusal whose reason the client sees.
func denied(err error) error {
	var de *DeniedError
	if errors.As(err, &de) {
		return &DeniedError{Reason: de.Reason}
	}
	return &DeniedError{Reason: err.Error()}
}

func trimNul(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// sha2Cache remembers explicit clients that passed caching_sha2 full auth.
type sha2Cache struct{ m sync.Map }

func (c *sha2Cache) Known(user, password string) bool {
	v, ok := c.m.Load(user)
	return ok && v.(string) == password
}

func (c *sha2Cache) Remember(user, password string) { c.m.Store(user, password) }
