package identity

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// DefaultTokenPath is where Kubernetes mounts a pod's default service-account token.
const DefaultTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// Config is the `identities:` section of the daemon's configuration.
type Config struct {
	// OIDC verifies tokens read from the workload (a projected service-account
	// token or any OIDC provider's token). Nil disables it.
	OIDC *OIDCConfig `yaml:"oidc"`
	// Static binds cgroups to names without a token, for hosts without an
	// issuer. Matched before OIDC; the most specific cgroup wins.
	Static []StaticIdentity `yaml:"static"`
	// Rules map identities to backends; the first match wins, else the
	// identity's own default backend.
	Rules []BackendRule `yaml:"rules"`
	// AllowPasswordToken lets an explicit (non-redirected) client present its
	// token as the password (mysql_clear_password), and only over TLS.
	AllowPasswordToken bool `yaml:"allow_password_token"`
	// Clients authenticate explicit (non-redirected) connections by a
	// password only sqlwarden knows; see Client.
	Clients []Client `yaml:"clients"`
}

// OIDCConfig says which issuer to trust, for which audience, where the token
// lives inside the workload and how claims map onto the identity.
type OIDCConfig struct {
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
	// TokenPath is resolved inside the connecting process's root
	// (/proc/PID/root), never in the daemon's.
	TokenPath string `yaml:"token_path"`
	// AllowedAlgs defaults to RS256 and ES256. "none" and HMAC algorithms are
	// refused whatever this says.
	AllowedAlgs []string `yaml:"allowed_algs"`
	// CAFile holds the PEM CA(s) the issuer's TLS certificate chains to; empty
	// uses the system pool.
	CAFile string `yaml:"ca_file"`
	// IssuerTokenFile holds a bearer token the daemon presents to the
	// issuer's discovery and JWKS endpoints: in-cluster, its own
	// service-account token when anonymous discovery is not allowed. Re-read
	// on every fetch, so rotation needs nothing.
	IssuerTokenFile string `yaml:"issuer_token_file"`

	// Claim mappings; dotted paths reach into objects ("kubernetes.io.pod.name").
	NameClaim     string `yaml:"name_claim"`      // default "sub"
	GroupsClaim   string `yaml:"groups_claim"`    // string or list of strings
	ModelClaim    string `yaml:"model_claim"`     // attribution: which model acts
	ToolCallClaim string `yaml:"tool_call_claim"` // attribution: which tool call
	TraceIDClaim  string `yaml:"trace_id_claim"`  // attribution: a trace id or W3C traceparent

	// Backend is the default backend for OIDC identities; empty leaves the
	// choice to the daemon (its first backend).
	Backend string `yaml:"backend"`
	// RequirePodBinding demands that the token's kubernetes.io pod uid equals
	// the pod of the connecting process's cgroup. Unset means: required
	// whenever the token carries a kubernetes.io claim.
	RequirePodBinding *bool `yaml:"require_pod_binding"`
}

// StaticIdentity binds every process in a cgroup (or below it) to a name.
type StaticIdentity struct {
	Name string `yaml:"name"`
	// Cgroup is a cgroup v2 path, either as mounted
	// (/sys/fs/cgroup/agents/agent-1) or relative to the hierarchy root
	// (/agents/agent-1).
	Cgroup string `yaml:"cgroup"`
	// Backend defaults, as for OIDC, to the daemon's choice.
	Backend string `yaml:"backend"`
}

// BackendRule maps matching identities to a backend. Every condition that is
// set must hold; an unset condition matches anything.
type BackendRule struct {
	// Name and Subject are exact or glob patterns (path.Match syntax, e.g.
	// "system:serviceaccount:agents:*").
	Name    string `yaml:"name"`
	Subject string `yaml:"subject"`
	Source  string `yaml:"source"` // oidc | static
	// Groups matches when the identity is in any of them.
	Groups []string `yaml:"groups"`
	// Claims must all equal the identity's verified claims (dotted paths;
	// numbers and booleans compare by their printed form).
	Claims  map[string]string `yaml:"claims"`
	Backend string            `yaml:"backend"`
}

func (c *OIDCConfig) withDefaults() OIDCConfig {
	o := *c
	if o.TokenPath == "" {
		o.TokenPath = DefaultTokenPath
	}
	if len(o.AllowedAlgs) == 0 {
		o.AllowedAlgs = []string{"RS256", "ES256"}
	}
	if o.NameClaim == "" {
		o.NameClaim = "sub"
	}
	return o
}

// asymmetricAlgs are the JWS algorithms a token may be signed with: public-key
// ones only, so a public key can never double as an HMAC secret.
var asymmetricAlgs = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

// Validate reports the first configuration mistake.
func (c *Config) Validate() error {
	if o := c.OIDC; o != nil {
		if o.Issuer == "" {
			return errors.New("identities.oidc.issuer: required")
		}
		if o.Audience == "" {
			return errors.New("identities.oidc.audience: required")
		}
		if o.TokenPath != "" && !path.IsAbs(o.TokenPath) {
			return fmt.Errorf("identities.oidc.token_path %q: must be absolute", o.TokenPath)
		}
		for _, a := range o.AllowedAlgs {
			if !asymmetricAlgs[a] {
				return fmt.Errorf("identities.oidc.allowed_algs: %q is not an asymmetric JWS algorithm", a)
			}
		}
	}
	seen := map[string]bool{}
	for i, s := range c.Static {
		if s.Name == "" {
			return fmt.Errorf("identities.static[%d].name: required", i)
		}
		if s.Cgroup == "" || !strings.HasPrefix(s.Cgroup, "/") {
			return fmt.Errorf("identities.static[%d] (%s).cgroup %q: must be an absolute path", i, s.Name, s.Cgroup)
		}
		if seen[s.Cgroup] {
			return fmt.Errorf("identities.static[%d] (%s).cgroup %q: bound twice", i, s.Name, s.Cgroup)
		}
		seen[s.Cgroup] = true
	}
	for i, r := range c.Rules {
		if r.Backend == "" {
			return fmt.Errorf("identities.rules[%d].backend: required", i)
		}
		for _, p := range []string{r.Name, r.Subject} {
			if _, err := path.Match(p, ""); err != nil {
				return fmt.Errorf("identities.rules[%d]: pattern %q: %w", i, p, err)
			}
		}
		if r.Source != "" && r.Source != SourceOIDC && r.Source != SourceStatic {
			return fmt.Errorf("identities.rules[%d].source %q: want oidc or static", i, r.Source)
		}
	}
	return nil
}
