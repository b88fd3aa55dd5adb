package daemon

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"sync"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/identity"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// identitiesConfig is the `identities:` section: pkg/identity's keys plus
// explicit clients for hosts without the eBPF redirect.
type identitiesConfig struct {
	identity.Config `yaml:",inline"`
	// Clients authenticate explicit (non-redirected) connections by a
	// password only sqlwarden knows (never the database's). The workload's
	// identity is then only as good as that secret; prefer the redirect and
	// a verified token, or allow_password_token over TLS.
	Clients []clientUser `yaml:"clients"`
}

type clientUser struct {
	User         string `yaml:"user"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	Name         string `yaml:"name"` // identity name; default the user
	Backend      string `yaml:"backend"`

	cred *identity.CredentialSource
}

// authenticator binds connections to identities.
type authenticator struct {
	resolver *identity.Resolver // nil when no oidc/static identities are configured
	cfg      identitiesConfig
	clients  map[string]*clientUser
	rsaKey   *rsa.PrivateKey
	sha2     sha2Cache
	defaultB string
}

func newAuthenticator(r *identity.Resolver, cfg identitiesConfig, key *rsa.PrivateKey, defaultBackend string) (*authenticator, error) {
	a := &authenticator{resolver: r, cfg: cfg, clients: map[string]*clientUser{}, rsaKey: key, defaultB: defaultBackend}
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
		c.cred = identity.NewCredentialSource(c.User, c.Password, c.PasswordFile)
		a.clients[c.User] = c
	}
	return a, nil
}

func (a *authenticator) Authenticate(ctx context.Context, req *proxy.AuthRequest) (*proxy.Identity, error) {
	hs := req.Handshake
	if req.Origin != nil {
		if a.resolver == nil {
			return nil, &proxy.DeniedError{Reason: "no identity source is configured (identities.oidc or identities.static)"}
		}
		id, err := a.resolver.Resolve(ctx, identity.Request{
			PID: req.Origin.PID, StartTime: req.Origin.StartTime, CgroupID: req.Origin.CgroupID, CgroupPath: req.Workload.Cgroup,
			NetnsCookie: req.Origin.NetnsCookie, ClientUser: hs.User, TLS: hs.TLS,
		})
		if err != nil {
			return nil, denied(err)
		}
		if err := wire.AcceptAny(req.Conn, hs); err != nil {
			return nil, err
		}
		return a.finish(id), nil
	}

	// An explicit client: a proxy-side password, or a token as the password.
	if c := a.clients[hs.User]; c != nil {
		cred, err := c.cred.Get()
		if err != nil {
			return nil, &proxy.DeniedError{Reason: "client credential unavailable: " + err.Error()}
		}
		if err := wire.VerifyPassword(req.Conn, hs, cred.Password, a.rsaKey, &a.sha2); err != nil {
			if errors.Is(err, wire.ErrAuthFailed) {
				return nil, &proxy.DeniedError{Reason: fmt.Sprintf("password for explicit client %q does not match", hs.User)}
			}
			return nil, err
		}
		return &proxy.Identity{
			Name: c.Name, Backend: c.Backend,
			Record: &record.Identity{Name: c.Name, Source: "static", Subject: "client:" + c.User},
			Attribute: func(sql string) *record.Attribution {
				return identity.Attribute(nil, nil, identity.ParseSQLComment(sql))
			},
		}, nil
	}
	if a.cfg.AllowPasswordToken && a.resolver != nil {
		if !hs.TLS {
			return nil, &proxy.DeniedError{Reason: "a token presented as password requires TLS"}
		}
		var token string
		if hs.AuthPlugin == gm.AUTH_CLEAR_PASSWORD && len(hs.AuthResponse) > 0 {
			token = string(trimNul(hs.AuthResponse))
		} else {
			t, err := wire.Cleartext(req.Conn)
			if err != nil {
				return nil, err
			}
			token = t
		}
		id, err := a.resolver.Resolve(ctx, identity.Request{ClientUser: hs.User, PasswordToken: token, TLS: true})
		if err != nil {
			return nil, denied(err)
		}
		return a.finish(id), nil
	}
	return nil, &proxy.DeniedError{Reason: fmt.Sprintf("connection was not redirected and no explicit client matches user %q", hs.User)}
}

func (a *authenticator) finish(id *identity.Identity) *proxy.Identity {
	if id.Backend == "" {
		id.Backend = a.defaultB
	}
	var labels map[string]string
	if id.Pod != nil {
		labels = id.Pod.Labels
	}
	return toProxyIdentity(id, labels)
}

func denied(err error) error {
	var de *identity.DeniedError
	if errors.As(err, &de) {
		return &proxy.DeniedError{Reason: de.Reason}
	}
	return &proxy.DeniedError{Reason: err.Error()}
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
